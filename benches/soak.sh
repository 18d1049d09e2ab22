#!/usr/bin/env bash
# Soak: sustained mixed chat load on one chat-server process, sampling its
# RSS and open descriptors every second; fails if either keeps growing after
# warm-up, or if the load generator saw errors or lost deliveries.
#
# The load: the chat protocol (CLIENTS clients in ROOMS rooms, SENDERS of
# them posting RATE messages/s in all, open loop) plus HTTP posts to one of
# the same rooms (HTTP_RATE requests/s) and long-poll-free GETs.
#
#   bash benches/soak.sh                      # 60 s (what CI runs)
#   SOAK_SECONDS=600 bash benches/soak.sh     # the 10-minute soak of docs/BENCHMARKS.md
#
# Tunables (environment): SOAK_SECONDS, SOAK_RATE, SOAK_CLIENTS, SOAK_ROOMS,
# SOAK_SENDERS, SOAK_HTTP_RATE, SOAK_OUT (a directory to keep the samples).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL=${SOAK_SECONDS:-60}
# Half the peak measured for this workload on one loop (about 20,000
# msgs/s = 185,000 deliveries/s saturates the server's core; docs/BENCHMARKS.md).
RATE=${SOAK_RATE:-10000}
CLIENTS=${SOAK_CLIENTS:-1000}
ROOMS=${SOAK_ROOMS:-100}
SENDERS=${SOAK_SENDERS:-100}
HTTP_RATE=${SOAK_HTTP_RATE:-500}
CHAT_PORT=${SOAK_CHAT_PORT:-17731}
HTTP_PORT=${SOAK_HTTP_PORT:-18731}
# Samples before this point are warm-up (connections opening, buffers and
# history filling): a quarter of the run, at least 10 s.
WARMUP=$(( SECONDS_TOTAL / 4 > 10 ? SECONDS_TOTAL / 4 : 10 ))

log() { printf '== soak: %s\n' "$*"; }

log "building chat-server and loadgen (release)"
cargo build --release -q -p chat-server -p loadgen

work=$(mktemp -d)
out=${SOAK_OUT:-$work}
mkdir -p "$out"
server_pid=""
sampler_pid=""
cleanup() {
    [[ -n $sampler_pid ]] && kill "$sampler_pid" 2>/dev/null || true
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [[ -z ${SOAK_OUT:-} ]] && rm -rf "$work"
    return 0
}
trap cleanup EXIT

cat > "$work/soak.toml" <<TOML
threads = 1
shutdown_grace_ms = 2000
[chat]
listen = ["127.0.0.1:$CHAT_PORT"]
rate_per_sec = 0
max_connections = 5000
history_len = 100
[http]
listen = ["127.0.0.1:$HTTP_PORT"]
# Every generated client logs in from 127.0.0.1.
logins_per_minute = 0
[store]
# The durable room log: every message fsynced (in batches) before delivery.
data_dir = "$work/data"
fsync = "always"
# The log's page cache is bounded (cache_bytes, 64 MiB by default) but
# fills as the log grows: at this load it takes about 30 s, past the
# warm-up, and reads as growth. A small cache fills within the warm-up.
cache_bytes = 4194304
TOML

./target/release/chat-server -c "$work/soak.toml" 2> "$out/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q "serving HTTP" "$out/server.log" 2>/dev/null && break
    sleep 0.05
done
grep -q "serving HTTP" "$out/server.log" || { log "server did not start"; cat "$out/server.log"; exit 1; }

# One sample a second: elapsed seconds, RSS in KiB, open descriptors.
sample() {
    local t=0
    while kill -0 "$server_pid" 2>/dev/null; do
        local rss fds
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
        fds=$(ls "/proc/$server_pid/fd" 2>/dev/null | wc -l)
        echo "$t,$rss,$fds"
        sleep 1
        t=$((t + 1))
    done
}
echo "second,rss_kib,fds" > "$out/samples.csv"
sample >> "$out/samples.csv" &
sampler_pid=$!

log "${SECONDS_TOTAL}s: chat $CLIENTS clients / $ROOMS rooms / $SENDERS senders at $RATE msg/s, HTTP posts at $HTTP_RATE/s"
./target/release/loadgen chat --addr "127.0.0.1:$CHAT_PORT" --clients "$CLIENTS" --rooms "$ROOMS" \
    --senders "$SENDERS" --rate "$RATE" --size 64 --duration "${SECONDS_TOTAL}s" --warmup 0s \
    --server-pid "$server_pid" --json > "$out/chat.json" 2> "$out/chat.log" &
chat_pid=$!
# HTTP posts speak for a session (POST /session): its credential as a bearer.
credential=$(python3 - "$HTTP_PORT" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/session", data=b'{"nick":"soaker"}',
                             headers={"Content-Type": "application/json"}, method="POST")
print(json.load(urllib.request.urlopen(req, timeout=10))["session"])
PY
)
./target/release/loadgen http --url "http://127.0.0.1:$HTTP_PORT/rooms/room0/messages" --method POST \
    --header 'Content-Type: application/json' --header "Authorization: Bearer $credential" \
    --body '{"nick":"soaker","text":"soak"}' \
    --connections 10 --rate "$HTTP_RATE" --duration "${SECONDS_TOTAL}s" --warmup 0s \
    --json > "$out/http.json" 2> "$out/http.log" &
http_pid=$!
status=0
wait "$chat_pid" || { log "chat load failed (exit $?)"; status=1; }
wait "$http_pid" || { log "http load failed (exit $?)"; status=1; }
kill "$sampler_pid" 2>/dev/null || true
sampler_pid=""

# Flat means: after warm-up, RSS stays within 10 % (+ 4 MiB) of its value
# at the end of warm-up, and the last quarter's mean is no higher than the
# second quarter's by more than that; descriptors move by at most 4. Only
# samples while the load runs count: a generator that finishes late (an
# open-loop HTTP schedule behind on a loaded machine) leaves samples with
# the chat clients already gone.
verdict=$(awk -F, -v warm="$WARMUP" -v end="$((SECONDS_TOTAL - 2))" '
    NR == 1 { next }
    $1 == warm { base = $2 }
    $1 >= warm && $1 <= end { n++; rss[n] = $2; fd[n] = $3; if ($2 > max) max = $2;
                 if (minfd == "" || $3 < minfd) minfd = $3; if ($3 > maxfd) maxfd = $3 }
    END {
        if (n < 4 || base == 0) { print "FAIL too few samples after warm-up (" n ")"; exit }
        q = int(n / 4); s2 = 0; s4 = 0
        for (i = q + 1; i <= 2 * q; i++) s2 += rss[i]
        for (i = n - q + 1; i <= n; i++) s4 += rss[i]
        m2 = s2 / q; m4 = s4 / q
        limit = base * 1.10 + 4096
        ok = (max <= limit) && (m4 <= m2 * 1.10 + 4096) && (maxfd - minfd <= 4)
        printf "%s rss_kib: at_warmup=%d max_after=%d (limit %d) mean_q2=%d mean_q4=%d; fds: %d..%d\n",
            ok ? "OK" : "FAIL", base, max, limit, m2, m4, minfd, maxfd
    }' "$out/samples.csv")
log "$verdict"
[[ $verdict == OK* ]] || status=1

# The generator's own verdict: no errors, nothing lost.
python3 - "$out/chat.json" "$out/http.json" <<'PY' || status=1
import json, sys
chat = json.load(open(sys.argv[1]))
http = json.load(open(sys.argv[2]))
f, lat = chat["fanout"], chat["latency"]
print(f"== soak: chat {f['messages_per_s']:.0f} msgs/s, {f['deliveries_per_s']:.0f} deliveries/s, "
      f"p99 {lat['p99_us'] / 1000:.1f} ms, missing {f['missing']}, duplicates {f['duplicates']}, "
      f"reordered {f['reordered']}; server CPU {chat.get('server', {}).get('cpu_percent', 0):.0f}%")
print(f"== soak: http {http['frames_per_s']:.0f} requests/s, p99 {http['latency']['p99_us'] / 1000:.1f} ms")
bad = [f"{name}: {rep['errors']['total']} errors, first: {rep['errors']['first']}"
       for name, rep in (("chat", chat), ("http", http)) if rep["errors"]["total"]]
bad += [f"chat: {f[k]} {k}" for k in ("missing", "duplicates", "reordered") if f[k]]
if bad:
    print("== soak: FAIL " + "; ".join(bad))
    sys.exit(1)
PY
log "samples in $out/samples.csv"
[[ $status -eq 0 ]] && log "passed" || log "FAILED"
exit "$status"
