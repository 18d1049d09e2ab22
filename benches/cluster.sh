#!/usr/bin/env bash
# The cluster's fan-out against one node, same run (issue 16):
# one room of 1,000 members, 1 sender, 64 B, at RATES msgs/s, on
#   single: one chat-server (no Redis),
#   two:    two nodes on one Redis, members split over them (loadgen --also),
#   three:  three nodes on one Redis.
# Every server process (nodes, Redis) is pinned to core 0 and the generator
# to core 1, so CPU is compared, not raw rates: server µs/delivery sums the
# nodes' and Redis' CPU over the measured window (loadgen --also-pid).
# Setups alternate within each rep; the summary gives medians over REPS and
# the ratio to the single node's median at the same rate.
#
# Usage: benches/cluster.sh [OUT.jsonl]   (RATES, REPS, DURATION, WARMUP;
# CLIENTS, ROOMS, SENDERS for another layout: 1000, 100, 100 is 100 rooms
# of 10 with a sender in each)
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-"500 1000 2000"}
REPS=${REPS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CLIENTS=${CLIENTS:-1000}
ROOMS=${ROOMS:-1}
SENDERS=${SENDERS:-1}
OUT=${1:-/tmp/cluster-bench.jsonl}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
nice cargo build --release -q -p chat-server -p loadgen
BIN=$TARGET_DIR/release
command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/cluster-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT=$(free_port)
# Redis as it would run for a chat: an append-only file fsynced every second.
taskset -c 0 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --save '' \
  --appendonly yes --appendfsync everysec --daemonize no --logfile "$WORK/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done

# node NAME [cluster]: starts a chat-server on core 0; prints "pid port".
node() {
  local name=$1 cluster=${2:-} port
  port=$(free_port)
  {
    printf 'threads = 1\n[http]\nlisten = []\n[store]\ndata_dir = "none"\n'
    printf '[chat]\nlisten = ["127.0.0.1:%s"]\nrate_per_sec = 0\nmax_members_per_room = 5000\n' "$port"
    if [[ -n $cluster ]]; then
      printf '[cluster]\nredis = "redis://127.0.0.1:%s"\nnode = "%s"\n' "$REDIS_PORT" "$name"
    fi
  } >"$WORK/$name.toml"
  RUST_LOG=warn taskset -c 0 "$BIN/chat-server" -c "$WORK/$name.toml" 2>>"$WORK/$name.log" &
  local pid=$!
  until (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; do sleep 0.05; done
  echo "$pid $port" >"$WORK/$name.pid"
}

for n in single:'' a:cluster b:cluster c:cluster; do
  node "${n%%:*}" "${n#*:}"
  read -r pid _ <"$WORK/${n%%:*}.pid"
  PIDS+=("$pid")
done
read -r S_PID S_PORT <"$WORK/single.pid"
read -r A_PID A_PORT <"$WORK/a.pid"
read -r B_PID B_PORT <"$WORK/b.pid"
read -r C_PID C_PORT <"$WORK/c.pid"

run() { # run SETUP RATE REP
  local setup=$1 rate=$2 rep=$3 args
  case $setup in
    single) args=(--addr "127.0.0.1:$S_PORT" --server-pid "$S_PID") ;;
    two) args=(--addr "127.0.0.1:$A_PORT" --also "127.0.0.1:$B_PORT" --server-pid "$A_PID" --also-pid "$B_PID" --also-pid "$REDIS_PID") ;;
    three) args=(--addr "127.0.0.1:$A_PORT" --also "127.0.0.1:$B_PORT" --also "127.0.0.1:$C_PORT"
      --server-pid "$A_PID" --also-pid "$B_PID" --also-pid "$C_PID" --also-pid "$REDIS_PID") ;;
  esac
  # Redis' CPU alone, over the whole run (warm-up included), for the split.
  local r0 r1
  r0=$(awk '{print $14+$15}' "/proc/$REDIS_PID/stat")
  if ! flock /work/notes/bench.lock taskset -c 1 "$BIN/loadgen" chat "${args[@]}" --clients "$CLIENTS" --rooms "$ROOMS" \
    --senders "$SENDERS" --rate "$rate" --size 64 --duration "$DURATION" --warmup "$WARMUP" --quiet --json >"$WORK/run.json"; then
    echo "  (loadgen failed: $setup at $rate msgs/s)" >&2
  fi
  r1=$(awk '{print $14+$15}' "/proc/$REDIS_PID/stat")
  [[ -s $WORK/run.json ]] || return 0
  python3 -c "import json,sys; d=json.load(open('$WORK/run.json')); d['setup']='$setup'; d['rep']=$rep; d['redis_ticks']=$r1-$r0; print(json.dumps(d))" >>"$OUT"
}

: >"$OUT"
for rate in $RATES; do
  for rep in $(seq 1 "$REPS"); do
    for setup in single two three; do
      echo "rate $rate rep $rep $setup" >&2
      run "$setup" "$rate" "$rep"
    done
  done
done

python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| msgs/s | setup | deliveries/s | p50 | p99 | server+Redis µs/delivery | ÷ single | Redis µs/message | delivered | reps |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for rate in sorted({r["rate"] for r in rows}):
    base = None
    for setup in ["single", "two", "three"]:
        rs = [r for r in rows if r["rate"] == rate and r["setup"] == setup]
        if not rs:
            continue
        med = lambda f: statistics.median(f(r) for r in rs)
        us = med(lambda r: r["server"]["us_per"]["delivery"])
        if setup == "single":
            base = us
        ratio = "–" if setup == "single" else f"{us / base:.2f}× (" + ", ".join(
            f"{r['server']['us_per']['delivery'] / base:.2f}" for r in rs) + ")"
        # Redis CPU over the run (clock ticks of 10 ms) per message sent in it.
        per_msg = "–" if setup == "single" else f"{med(lambda r: r['redis_ticks'] * 1e4 / (r['rate'] * (r['duration_s'] + r['warmup_s']))):.0f}"
        ok = all(r["fanout"]["missing"] == 0 and r["fanout"]["reordered"] == 0 and r["fanout"]["duplicates"] == 0 for r in rs)
        # "missing": not delivered by the end of the drain (a server behind
        # its schedule), not a message dropped.
        print(f"| {rate} | {setup} | {med(lambda r: r['fanout']['deliveries_per_s']):,.0f} | "
              f"{med(lambda r: r['latency']['p50_us']) / 1000:.1f} ms | {med(lambda r: r['latency']['p99_us']) / 1000:.1f} ms | "
              f"{us:.3f} | {ratio} | {per_msg} | {'all, in order' if ok else 'some missing at the end'} | {len(rs)} |")
EOF
