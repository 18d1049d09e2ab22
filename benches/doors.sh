#!/usr/bin/env bash
# One chat workload through the three doors of one chat-server: the chat
# protocol over TCP (`loadgen chat`), over WebSocket (`loadgen ws`), and
# HTTP (`loadgen chat-http`: POST + long poll). 1 room of 1,000 members,
# 1 sender, 64-byte messages, at each rate in DOORS_RATES; a fresh server
# (one event loop, room log in memory) per run, the three doors alternated
# rep by rep. Prints a markdown table of medians: deliveries/s, p99 from
# the scheduled send, server CPU per delivery, and its ratio to TCP's.
#
#   flock /work/notes/bench.lock bash benches/doors.sh        (shared machines)
#
# Knobs: DOORS_RATES ("100 500"), DOORS_REPS (3), DOORS_SECONDS (10),
# DOORS_CLIENTS (1000), DOORS_OUT (a directory to keep the JSON reports).
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${DOORS_RATES:-"100 500"}
REPS=${DOORS_REPS:-3}
SECONDS_RUN=${DOORS_SECONDS:-10}
CLIENTS=${DOORS_CLIENTS:-1000}
work=$(mktemp -d)
out=${DOORS_OUT:-$work}
mkdir -p "$out"
server_pid=""
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [[ -z ${DOORS_OUT:-} ]] && rm -rf "$work"
    return 0
}
trap cleanup EXIT

cargo build --release -q -p chat-server -p loadgen

# Two free ports at once (bound together, so never the same one twice).
ports() {
    python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])'
}

start_server() {
    read -r chat_port http_port < <(ports)
    cat > "$work/doors.toml" <<TOML
threads = 1
shutdown_grace_ms = 0
[chat]
listen = ["127.0.0.1:$chat_port"]
max_connections = 19500
rate_per_sec = 0
max_members_per_room = 2000
history_len = 10000
room_tail_bytes = 16777216
[http]
listen = ["127.0.0.1:$http_port"]
max_connections = 19500
logins_per_minute = 0
max_sessions = 20000
[store]
data_dir = "none"
TOML
    ./target/release/chat-server -c "$work/doors.toml" 2> "$work/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        grep -q "serving HTTP" "$work/server.log" 2>/dev/null && return 0
        sleep 0.05
    done
    cat "$work/server.log"
    return 1
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

for rate in $RATES; do
    for rep in $(seq 1 "$REPS"); do
        for door in chat ws chat-http; do
            start_server
            addr="127.0.0.1:$chat_port"
            [[ $door != chat ]] && addr="127.0.0.1:$http_port"
            echo "== rate $rate rep $rep: $door" >&2
            ./target/release/loadgen "$door" --addr "$addr" --clients "$CLIENTS" --rooms 1 --senders 1 \
                --rate "$rate" --size 64 --duration "${SECONDS_RUN}s" --warmup 2s \
                --server-pid "$server_pid" --json --quiet > "$out/$door-$rate-$rep.json" || true
            stop_server
        done
    done
done

python3 - "$out" "$RATES" "$REPS" "$CLIENTS" <<'PY'
import json, statistics, sys
out, rates, reps, clients = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4]
names = {"chat": "chat protocol over TCP", "ws": "WebSocket", "chat-http": "HTTP (POST + long poll)"}
print(f"| case | door | deliveries/s | p50 | p99 | server µs/delivery | server CPU | errors | ÷ TCP: µs/delivery | ÷ TCP: p99 |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
def fmt_us(us):
    return f"{us / 1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs"
for rate in rates:
    rows = {}
    for door in names:
        runs = []
        for rep in range(1, reps + 1):
            try:
                r = json.load(open(f"{out}/{door}-{rate}-{rep}.json"))
            except (OSError, ValueError):
                continue
            # A run that never connected measured nothing: said, not counted.
            if r["errors"]["connect"] or not (r.get("server") or {}).get("us_per", {}).get("delivery"):
                print(f"<!-- {door} {rate} rep {rep} left out: {r['errors'].get('first')} -->")
                continue
            runs.append(r)
        if not runs:
            continue
        med = lambda f: statistics.median(f(r) for r in runs)
        rows[door] = {
            "rate": med(lambda r: r["fanout"]["delivered"] / r["duration_s"]),
            "p50": med(lambda r: r["latency"]["p50_us"]),
            "p99": med(lambda r: r["latency"]["p99_us"]),
            "us": med(lambda r: r["server"]["us_per"]["delivery"]),
            "cpu": med(lambda r: r["server"]["cpu_percent"]),
            "errors": max(r["errors"]["total"] for r in runs),
            "us_each": [r["server"]["us_per"]["delivery"] for r in runs],
            "p99_each": [r["latency"]["p99_us"] for r in runs],
        }
    tcp = rows.get("chat")
    for door, r in rows.items():
        if door == "chat" or not tcp:
            ratio_us = ratio_p99 = "–"
        else:
            each = lambda k: ", ".join(f"{a / b:.2f}" for a, b in zip(r[k + "_each"], tcp[k + "_each"]))
            ratio_us = f"{r['us'] / tcp['us']:.2f}× ({each('us')})"
            ratio_p99 = f"{r['p99'] / tcp['p99']:.2f}× ({each('p99')})"
        print(f"| 1 room × {clients}, 1 sender, {rate} msgs/s | {names[door]} | {r['rate']:,.0f} | {fmt_us(r['p50'])} "
              f"| {fmt_us(r['p99'])} | {r['us']:.3f} | {r['cpu']:.0f} % | {r['errors']} | {ratio_us} | {ratio_p99} |")
PY
