#!/usr/bin/env python3
"""WebSocket conformance of the chat server's /ws door, checked with an
independent client: the `websockets` package (PyPI) for the well-behaved
side, raw sockets for what a well-behaved client never sends.

Usage: ws_conformance.py HOST:PORT MAX_PAYLOAD
Prints one line per case and "N passed, N failed"; exits 1 on any failure.
Run by crates/chat-server/tests/ws_conformance.rs (an ignored test that
.ci/run runs), which starts the server and checks nothing leaked after.
"""

import os
import socket
import struct
import sys
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

ADDR = sys.argv[1]
MAX_PAYLOAD = int(sys.argv[2])
HOST, PORT = ADDR.rsplit(":", 1)
URI = f"ws://{ADDR}/ws"
TIMEOUT = 5.0

results = []


def case(name):
    def wrap(f):
        try:
            f()
            results.append((name, None))
            print(f"ok   {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - any failure is the case's
            results.append((name, e))
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        return f

    return wrap


# ---- the chat protocol, just enough of it ----


def str8(s):
    b = s.encode()
    return bytes([len(b)]) + b


def login(rid, nick, token=""):
    return bytes([0x01]) + struct.pack(">I", rid) + bytes([2]) + str8(nick) + str8(token)


def join(rid, room):
    return bytes([0x02]) + struct.pack(">I", rid) + str8(room) + bytes([0])


def say(rid, room, text):
    return bytes([0x04]) + struct.pack(">I", rid) + str8(room) + text.encode()


def ping(rid, nonce):
    return bytes([0x08]) + struct.pack(">IQ", rid, nonce)


def reply_of(payload, rid):
    """Checks `payload` is an OK reply to request `rid`; returns its body kind."""
    assert payload[0] == 0x40, f"not an OK reply: {payload[:16].hex()}"
    assert struct.unpack(">I", payload[1:5])[0] == rid, "reply to another request"
    return payload[5]


def next_reply(ws, rid):
    """Skips pushes; returns the body kind of the OK reply to `rid`."""
    while True:
        p = ws.recv(timeout=TIMEOUT)
        assert isinstance(p, bytes), "the server sends binary messages only"
        if p[0] < 0x80:
            return reply_of(p, rid)


_nick = [0]


def nick():
    _nick[0] += 1
    return f"conf{os.getpid() % 10000}_{_nick[0]}"


# ---- raw frames ----


def frame(first, payload, mask=True, length=None):
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([first, m | n])
    elif n < 65536:
        head = bytes([first, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def raw_open(headers=None):
    s = socket.create_connection((HOST, int(PORT)), timeout=TIMEOUT)
    hs = headers or {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    req = f"GET /ws HTTP/1.1\r\nHost: {ADDR}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hs.items()) + "\r\n"
    s.sendall(req.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        if not chunk:
            break
        head += chunk
    return s, head.decode(errors="replace")


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_frame(s):
    b0, b1 = read_exact(s, 2)
    assert b1 & 0x80 == 0, "a server frame must not be masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", read_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", read_exact(s, 8))[0]
    return b0, read_exact(s, n)


def close_code_after(s):
    """Reads frames until the close frame; returns its code, and checks the
    server then closes the TCP connection."""
    while True:
        b0, body = read_frame(s)
        if b0 == 0x88:
            code = struct.unpack(">H", body[:2])[0] if len(body) >= 2 else None
            s.settimeout(TIMEOUT)
            rest = s.recv(1)
            assert rest == b"", "the server closes the TCP connection after its close frame"
            s.close()
            return code


def raw_session():
    s, head = raw_open()
    assert head.startswith("HTTP/1.1 101 "), head
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, head
    return s


# ---- the cases ----


@case("chat over websockets: login, join, say, ping")
def _():
    with connect(URI, open_timeout=TIMEOUT) as ws:
        ws.send(login(1, nick()))
        assert next_reply(ws, 1) == 0x01, "Welcome"
        ws.send(join(2, "conformance"))
        assert next_reply(ws, 2) == 0x02, "Joined"
        ws.send(say(3, "conformance", "hello"))
        assert next_reply(ws, 3) == 0x03, "Sent"
        ws.send(ping(4, 42))
        assert next_reply(ws, 4) == 0x06, "Pong body"
        ws.ping(b"are you there").wait(TIMEOUT)  # a WebSocket ping gets its pong


@case("fragmented message reassembled (websockets client)")
def _():
    with connect(URI, open_timeout=TIMEOUT) as ws:
        payload = login(7, nick())
        ws.send([payload[:3], payload[3:6], payload[6:]])  # three fragments
        assert next_reply(ws, 7) == 0x01


@case("control frames between fragments")
def _():
    s = raw_session()
    payload = login(9, nick())
    out = frame(0x02, payload[:4]) + frame(0x89, b"p1") + frame(0x00, payload[4:8])
    out += frame(0x8A, b"unsolicited pong") + frame(0x80, payload[8:])
    s.sendall(out)
    b0, body = read_frame(s)
    assert (b0, body) == (0x8A, b"p1"), f"pong first: {b0:#x} {body!r}"
    b0, body = read_frame(s)
    assert b0 == 0x82 and reply_of(body, 9) == 0x01, "then the login reply"
    s.sendall(frame(0x88, struct.pack(">H", 1000)))
    assert close_code_after(s) == 1000


@case("ping with payload gets the same payload back")
def _():
    s = raw_session()
    s.sendall(frame(0x89, b"x" * 125))
    assert read_frame(s) == (0x8A, b"x" * 125)
    s.sendall(frame(0x88, struct.pack(">H", 1000) + b"bye"))
    assert close_code_after(s) == 1000


@case("close 1002: unmasked client frame")
def _():
    s = raw_session()
    s.sendall(frame(0x82, login(1, nick()), mask=False))
    assert close_code_after(s) == 1002


@case("close 1002: reserved bits set (RSV1, RSV2, RSV3)")
def _():
    for bit in (0x40, 0x20, 0x10):
        s = raw_session()
        s.sendall(frame(0x82 | bit, login(1, nick())))
        assert close_code_after(s) == 1002, f"bit {bit:#x}"


@case("close 1002: continuation without a start, new message inside a fragmented one")
def _():
    s = raw_session()
    s.sendall(frame(0x80, b"orphan"))
    assert close_code_after(s) == 1002
    s = raw_session()
    s.sendall(frame(0x02, b"start") + frame(0x82, b"another message"))
    assert close_code_after(s) == 1002


@case("close 1002: fragmented or oversized control frame, unknown opcode")
def _():
    for bad in (frame(0x09, b"fragmented ping"), frame(0x89, b"y" * 126), frame(0x83, b"reserved opcode")):
        s = raw_session()
        s.sendall(bad)
        assert close_code_after(s) == 1002, bad[:2].hex()


@case("close 1007: text message that is not UTF-8")
def _():
    s = raw_session()
    s.sendall(frame(0x81, b"\xff\xfe\xfd"))
    assert close_code_after(s) == 1007
    s = raw_session()  # invalid across fragments too
    s.sendall(frame(0x01, "é".encode()[:1]) + frame(0x80, b"\xff"))
    assert close_code_after(s) == 1007


@case("close 1003: a text message (the chat speaks binary)")
def _():
    with connect(URI, open_timeout=TIMEOUT) as ws:
        ws.send("hello")
        try:
            ws.recv(timeout=TIMEOUT)
            raise AssertionError("no close")
        except ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1003, e


@case("close 1009: message over max_payload, whole or in fragments")
def _():
    s = raw_session()
    s.sendall(frame(0x82, b"\x00" * (MAX_PAYLOAD + 1)))
    assert close_code_after(s) == 1009
    s = raw_session()
    half = b"\x00" * (MAX_PAYLOAD // 2 + 1)
    s.sendall(frame(0x02, half) + frame(0x80, half))
    assert close_code_after(s) == 1009
    s = raw_session()  # announced only (header and mask key): refused before it is read
    s.sendall(frame(0x82, b"", length=1 << 40)[:14])
    assert close_code_after(s) == 1009


@case("close 1009 with the websockets client")
def _():
    with connect(URI, open_timeout=TIMEOUT, max_size=None) as ws:
        ws.send(b"\x01" * (MAX_PAYLOAD + 10))
        try:
            ws.recv(timeout=TIMEOUT)
            raise AssertionError("no close")
        except ConnectionClosed as e:
            assert e.rcvd is not None and e.rcvd.code == 1009, e


@case("client close handshake: the server answers with the same code")
def _():
    with connect(URI, open_timeout=TIMEOUT) as ws:
        ws.send(login(1, nick()))
        next_reply(ws, 1)
        ws.close(code=1000, reason="done")
        assert ws.protocol.close_rcvd is not None, "the server answered the close"
        assert ws.protocol.close_rcvd.code == 1000, ws.protocol.close_rcvd


@case("handshake: wrong version gets 426 and Sec-WebSocket-Version: 13")
def _():
    s, head = raw_open({"Upgrade": "websocket", "Connection": "Upgrade",
                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "8"})
    assert head.startswith("HTTP/1.1 426 "), head
    assert "Sec-WebSocket-Version: 13" in head, head
    s.close()


@case("handshake: missing or malformed key gets 400")
def _():
    for key in (None, "short", "dGhlIHNhbXBsZSBub25jZQ"):
        hs = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
        if key:
            hs["Sec-WebSocket-Key"] = key
        s, head = raw_open(hs)
        assert head.startswith("HTTP/1.1 400 "), f"{key}: {head}"
        s.close()


@case("handshake: no Upgrade header gets 426, POST gets 405")
def _():
    s, head = raw_open({"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert head.startswith("HTTP/1.1 426 "), head
    s.close()
    s = socket.create_connection((HOST, int(PORT)), timeout=TIMEOUT)
    s.sendall(f"POST /ws HTTP/1.1\r\nHost: {ADDR}\r\nContent-Length: 0\r\n\r\n".encode())
    assert s.recv(64).startswith(b"HTTP/1.1 405 "), "POST /ws"
    s.close()


@case("a peer that vanishes mid-frame costs nothing that stays")
def _():
    for _ in range(20):
        s = raw_session()
        s.sendall(frame(0x82, b"z" * 1000)[:500])
        s.close()


failed = [n for n, e in results if e is not None]
time.sleep(0.2)
print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
