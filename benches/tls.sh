#!/usr/bin/env bash
# TLS benchmarks (issue 15), each a same-run comparison with alternating reps:
#
#   echo       framed echo over TLS vs plain TCP: server CPU per frame
#              (one tls_echo_server process with both listeners)
#   handshake  full TLS handshakes: chat-server's HTTPS door vs nginx's HTTPS,
#              same certificate, `openssl s_time -new` as the client:
#              server CPU per handshake and handshakes/s
#   idle       server RSS per idle TLS connection (handshake done, nothing
#              sent) at N connections: chat-server's chat TLS port vs nginx;
#              plain chat for reference
#
# Usage: benches/tls.sh [echo|handshake|idle|all]   (REPS=3 SECS=10 N=10000)
# Needs nginx and openssl (Debian packages). Servers run alone on CPU 0, the
# client on CPU 1; loopback only. Wrap it in `flock /work/notes/bench.lock`
# on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}
REPS=${REPS:-3}
SECS=${SECS:-10}
N=${N:-10000}
DIR=$(mktemp -d /tmp/switchboard-tls-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$DIR/nginx.pid" ] && kill -QUIT "$(cat "$DIR/nginx.pid")" 2>/dev/null; rm -rf "$DIR"' EXIT
# Ports below the ephemeral range, so that no client connection holds them.
PLAIN=27000 CHAT_TLS=27443 HTTPS=28444 NGINX=28443 ECHO_PLAIN=29000 ECHO_TLS=29443

cargo build -q --release -p chat-server
cargo build -q --release -p tls --features test-cert --example tls_echo_server --example tls_load
R=target/release
cargo run -q --release -p tls --features test-cert --example make_test_cert -- "$DIR" localhost 127.0.0.1 >/dev/null
CERT=$DIR/test.crt KEY=$DIR/test.key

cat >"$DIR/chat.toml" <<EOF
threads = 1
[chat]
listen = ["127.0.0.1:$PLAIN"]
tls_listen = ["127.0.0.1:$CHAT_TLS"]
max_connections = 19000
[http]
listen = []
tls_listen = ["127.0.0.1:$HTTPS"]
max_connections = 19000
[store]
data_dir = "none"
[tls]
cert = "$CERT"
key = "$KEY"
EOF
cat >"$DIR/nginx.conf" <<EOF
worker_processes 1;
worker_cpu_affinity 01;
worker_rlimit_nofile 20000;
daemon off;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;
events { worker_connections 19000; use epoll; }
http {
    access_log off;
    keepalive_timeout 600s;
    client_header_timeout 600s;
    server {
        listen 127.0.0.1:$NGINX ssl;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { return 200 "ok\n"; }
    }
}
EOF

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
start_chat() {
  RUST_LOG=warn taskset -c 0 $R/chat-server -c "$DIR/chat.toml" 2>>"$DIR/chat.log" &
  SERVER=$!
  sleep 1
}
stop_chat() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; sleep 1; }
start_nginx() {
  taskset -c 0 nginx -c "$DIR/nginx.conf" &
  sleep 1
  SERVER=$(pgrep -f "nginx: worker" -P "$(cat "$DIR/nginx.pid")" | head -1)
}
stop_nginx() { kill -QUIT "$(cat "$DIR/nginx.pid")"; sleep 2; }

s_time() { # NAME PID PORT
  local c0 c1 n
  c0=$(cpu_ticks "$2")
  n=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$3" -new -time "$SECS" 2>/dev/null |
    awk '/real seconds/ {print $1; exit}')
  c1=$(cpu_ticks "$2")
  echo "$1 handshakes=$n seconds=$SECS per_s=$((n / SECS)) server_us_per_handshake=$(((c1 - c0) * 10000 / n))"
}

if [[ $WHAT == echo || $WHAT == all ]]; then
  taskset -c 0 $R/examples/tls_echo_server --plain 127.0.0.1:$ECHO_PLAIN --tls 127.0.0.1:$ECHO_TLS \
    --cert "$CERT" --key "$KEY" --threads 1 2>>"$DIR/echo.log" &
  ECHO=$!
  sleep 1
  for rep in $(seq 1 "$REPS"); do
    for c in "100 1 64" "100 16 64" "100 16 1024" "1000 16 64"; do
      read -r conns depth size <<<"$c"
      for mode in plain tls; do
        if [[ $mode == tls ]]; then a=(--addr 127.0.0.1:$ECHO_TLS --tls --ca "$CERT"); else a=(--addr 127.0.0.1:$ECHO_PLAIN); fi
        echo "rep=$rep $(taskset -c 1 $R/examples/tls_load echo "${a[@]}" --server-pid $ECHO \
          --connections "$conns" --depth "$depth" --size "$size" --warmup 0.7 --seconds 2)"
      done
    done
  done
  kill $ECHO
  wait $ECHO 2>/dev/null || true
fi

if [[ $WHAT == handshake || $WHAT == all ]]; then
  for rep in $(seq 1 "$REPS"); do
    start_chat
    echo "rep=$rep $(s_time chat-server "$SERVER" $HTTPS)"
    stop_chat
    start_nginx
    echo "rep=$rep $(s_time nginx "$SERVER" $NGINX)"
    stop_nginx
  done
fi

if [[ $WHAT == idle || $WHAT == all ]]; then
  idle() { taskset -c 1 $R/examples/tls_load idle --server-pid "$SERVER" --connections "$N" --hold 3 "$@"; }
  for rep in $(seq 1 "$REPS"); do
    start_chat
    echo "rep=$rep chat-server-tls $(idle --addr 127.0.0.1:$CHAT_TLS --tls --ca "$CERT")"
    stop_chat
    start_chat
    echo "rep=$rep chat-server-plain $(idle --addr 127.0.0.1:$PLAIN)"
    stop_chat
    start_nginx
    echo "rep=$rep nginx-tls $(idle --addr 127.0.0.1:$NGINX --tls --ca "$CERT")"
    stop_nginx
  done
fi
