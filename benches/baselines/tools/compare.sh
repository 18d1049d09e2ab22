#!/usr/bin/env bash
# Quick relative comparison: each server pinned to core 0, the client
# (examples/echo_load.rs; CLIENT=py for tools/echo_client.py) pinned to core 1,
# the same client command for every server, servers alternating per round.
# Prints replies/s and the server's CPU use (from /proc), so replies per server
# CPU-second can be compared even when the client is the bottleneck.
#   tools/compare.sh DURATION ROUNDS -- SERVER_BIN[:ARGS] ...
#   CLIENT_ARGS="--mode http --connections 50 --depth 16" tools/compare.sh 3 2 -- hyper-hello
# e.g. tools/compare.sh 5 2 -- tokio-echo-idiomatic tokio-echo-tuned mio-echo-bare
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-5}; rounds=${2:-1}; shift 2; [ "${1:-}" = "--" ] && shift
addr=127.0.0.1:19950
CLIENT_ARGS=${CLIENT_ARGS:---connections 100 --size 64 --depth 16}
ticks=$(getconf CLK_TCK)
for r in $(seq "$rounds"); do
  for spec in "$@"; do
    bin=${spec%%:*}; args=""; [ "$spec" != "$bin" ] && args=${spec#*:}
    taskset -c 0 ./target/release/$bin --listen $addr $args 2>/dev/null & pid=$!
    sleep 0.3
    t0=$(awk '{print $14+$15}' /proc/$pid/stat)
    if [ "${CLIENT:-rust}" = py ]; then
      out=$(taskset -c 1 python3 tools/echo_client.py load $addr $CLIENT_ARGS --duration "$dur")
    else
      out=$(taskset -c 1 ./target/release/examples/echo_load --addr $addr $CLIENT_ARGS --duration "$dur")
    fi
    t1=$(awk '{print $14+$15}' /proc/$pid/stat)
    kill $pid; wait $pid 2>/dev/null || true
    fps=$(echo "$out" | awk '{gsub(",","",$1); print $1}')
    cpu=$(echo "scale=3; ($t1-$t0)/$ticks/$dur" | bc)
    per=$(echo "scale=0; $fps/$cpu" | bc)
    printf '%-34s %12s replies/s  server cpu %5s  %10s replies/cpu-s\n' "$bin $args" "$fps" "$cpu" "$per"
  done
done
