#!/usr/bin/env python3
"""Server memory per idle logged-in chat connection, TCP door vs WebSocket
door: N connections log in (no room) and sit idle; the server's RSS growth
over N. A fresh one-loop chat-server (room log in memory) per door.

    cargo build --release -p chat-server
    flock /work/notes/bench.lock python3 benches/ws_idle.py [N]    (default 5000)
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "chat-server")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def login_payload(nick):
    b = nick.encode()
    return bytes([0x01]) + struct.pack(">I", 1) + bytes([2, len(b)]) + b + bytes([0])


def ws_frame(payload):
    key = os.urandom(4)
    return bytes([0x82, 0x80 | len(payload)]) + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def recv_some(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(4096)
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def open_tcp(port, i):
    s = socket.create_connection(("127.0.0.1", port))
    p = login_payload(f"idle{i}")
    s.sendall(struct.pack(">I", len(p)) + p)
    recv_some(s, 4 + 30)  # the Welcome reply
    return s


def open_ws(port, i):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        + ws_frame(login_payload(f"idle{i}"))
    )
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(4096)
    head, rest = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    if len(rest) < 2 + 30:
        recv_some(s, 2 + 30 - len(rest))
    return s


def measure(door):
    chat, http = free_port(), free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(
            f'threads = 1\nshutdown_grace_ms = 0\n[chat]\nlisten = ["127.0.0.1:{chat}"]\nmax_connections = 19500\n'
            f'[http]\nlisten = ["127.0.0.1:{http}"]\nmax_connections = 19500\nlogins_per_minute = 0\n'
            '[store]\ndata_dir = "none"\n'
        )
        config = f.name
    server = subprocess.Popen([BIN, "-c", config], stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", http)).close()
                break
            except OSError:
                time.sleep(0.05)
        # Warm the allocator with a first batch, closed again.
        opener = open_tcp if door == "tcp" else open_ws
        port = chat if door == "tcp" else http
        warm = [opener(port, 1_000_000 + i) for i in range(200)]
        for s in warm:
            s.close()
        time.sleep(0.5)
        before = rss_kib(server.pid)
        conns = [opener(port, i) for i in range(N)]
        time.sleep(1.0)
        after = rss_kib(server.pid)
        for s in conns:
            s.close()
        return (after - before) * 1024 / N
    finally:
        server.terminate()
        server.wait()
        os.unlink(config)


tcp, ws = measure("tcp"), measure("ws")
print(f"| door | idle logged-in connections | server RSS per connection |")
print(f"| --- | --- | --- |")
print(f"| chat protocol over TCP | {N:,} | {tcp:,.0f} B |")
print(f"| WebSocket | {N:,} | {ws:,.0f} B |")
