#!/usr/bin/env python3
"""Small client for the echo baselines (4-byte big-endian length + payload).

  echo_client.py check ADDR            correctness: sizes 0..1 MiB, pipelining, split writes
  echo_client.py load ADDR [--connections 100] [--size 64] [--depth 16] [--duration 5]
                                       closed loop, `depth` frames in flight per connection;
                                       prints frames/s (replies received)

Only for quick relative measurements: use the project's loadgen for real numbers.
"""
import argparse
import os
import selectors
import socket
import struct
import sys
import time


def addr_of(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def check(addr):
    s = socket.create_connection(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sizes = [0, 1, 5, 64, 1000, 16 * 1024 - 4, 16 * 1024, 100_000, 1 << 20]
    for n in sizes:
        p = os.urandom(n)
        s.sendall(frame(p))
        assert recv_exact(s, 4 + n) == frame(p), f"size {n}"
    # pipelined: 200 frames in one send
    frames = [frame(os.urandom(i % 300)) for i in range(200)]
    blob = b"".join(frames)
    s.sendall(blob)
    assert recv_exact(s, len(blob)) == blob, "pipelined"
    # byte-by-byte split writes
    blob = frame(b"hello") + frame(b"world!")
    for b in blob:
        s.sendall(bytes([b]))
        time.sleep(0.001)
    assert recv_exact(s, len(blob)) == blob, "split"
    s.close()
    # over-long frame closes the connection
    s = socket.create_connection(addr)
    s.sendall(struct.pack(">I", (1 << 20) + 1) + b"x" * 100)
    s.settimeout(2)
    try:
        data = s.recv(100)
        assert data == b"", f"expected close, got {data!r}"
    except ConnectionResetError:
        pass
    print("check ok:", addr)


def load(addr, connections, size, depth, duration):
    fs = 4 + size
    one = frame(b"x" * size)
    batch = one * depth
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(connections):
        s = socket.create_connection(addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, [0])  # [partial bytes of the current frame]
    for s in socks:
        s.sendall(batch)
    received = 0
    start = time.perf_counter()
    end = start + duration
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(1 << 18)
            except BlockingIOError:
                continue
            if not data:
                print("server closed a connection", file=sys.stderr)
                return 1
            st = key.data
            total = st[0] + len(data)
            done, st[0] = divmod(total, fs)
            if done:
                received += done
                # refill: one frame per frame echoed (blocking send is fine: small)
                s.setblocking(True)
                s.sendall(one * done)
                s.setblocking(False)
    elapsed = time.perf_counter() - start
    print(f"{received / elapsed:,.0f} frames/s  ({received} in {elapsed:.2f}s, "
          f"{connections} conns, size {size}, depth {depth})")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["check", "load"])
    ap.add_argument("addr")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--duration", type=float, default=5)
    a = ap.parse_args()
    if a.mode == "check":
        check(addr_of(a.addr))
        return 0
    return load(addr_of(a.addr), a.connections, a.size, a.depth, a.duration)


if __name__ == "__main__":
    sys.exit(main())
