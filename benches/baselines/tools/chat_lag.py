#!/usr/bin/env python3
"""Lag check for tokio-chat: a member that stops reading must lag, not be dropped.

  chat_lag.py ADDR [--messages 3000] [--text 2000]

Run the server with a small --capacity (e.g. 16). A sender and a slow member
join room `lag`; the slow member (tiny receive buffer) reads nothing while the
sender says `--messages` messages, then reads again: it must receive the tail of
the stream (ids jump where it lagged), then a final marker message, and its
connection must still answer a Ping.
"""
import argparse
import socket
import struct
import sys
import time


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def str8(s):
    b = s.encode()
    return bytes([len(b)]) + b


def req(op, rid, body=b""):
    return frame(bytes([op]) + struct.pack(">I", rid) + body)


def read_frame(sock):
    head = recv_exact(sock, 4)
    (n,) = struct.unpack(">I", head)
    return recv_exact(sock, n)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    return bytes(buf)


def connect(addr, nick, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(req(0x01, 1, bytes([1]) + str8(nick) + str8("")))
    assert read_frame(s)[0] == 0x40, "login"
    s.sendall(req(0x02, 2, str8("lag")))
    r = read_frame(s)
    assert r[0] == 0x40 and r[5] == 0x02, f"join {r!r}"
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--text", type=int, default=2000)
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    addr = (host, int(port))
    slow = connect(addr, "slow", rcvbuf=4096)
    sender = connect(addr, "sender")
    assert read_frame(slow)[0] == 0x82  # presence: sender joined
    text = b"x" * a.text
    sent_ids = []
    for i in range(a.messages):
        sender.sendall(req(0x04, 100 + i, str8("lag") + text))
        r = read_frame(sender)
        assert r[0] == 0x40 and r[5] == 0x03, f"say reply {r!r}"
        sent_ids.append(struct.unpack(">Q", r[6:14])[0])
    time.sleep(0.2)
    sender.sendall(req(0x04, 99, str8("lag") + b"END"))
    end_id = struct.unpack(">Q", read_frame(sender)[6:14])[0]
    got = []
    slow.settimeout(5)
    while True:
        p = read_frame(slow)
        assert p[0] == 0x80, f"expected a message push, got {p[:8]!r}"
        mid = struct.unpack(">Q", p[2:10])[0]
        got.append(mid)
        if mid == end_id:
            break
    slow.sendall(req(0x08, 7, struct.pack(">Q", 42)))
    pong = read_frame(slow)
    assert pong[0] == 0x40 and pong[5] == 0x06, "ping after lag"
    assert got == sorted(got), "ids out of order"
    skipped = a.messages + 1 - len(got)
    print(f"slow member received {len(got)} of {a.messages + 1} messages "
          f"({skipped} skipped by lag), still connected, ids increasing")
    return 0 if skipped > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
