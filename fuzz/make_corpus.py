#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets: fuzz/corpus/<target>/<name>.

Deterministic; run it again after changing the seeds (it replaces every seed it knows and
leaves other files alone):

    python3 fuzz/make_corpus.py

Input formats are those of the targets (see the doc comment at the top of each
fuzz_targets/*.rs):

- frame_decoder: an 8-byte header (layout, peek mode, read-size seed), then the byte stream;
- chat_protocol: one frame payload (no length prefix);
- http_request: a limits byte (0: HttpConfig::default()), a read-size seed, then the byte stream
  of one connection.

The chat seeds include the worked example of docs/PROTOCOL.md, parsed from its hexdump blocks.
"""

import pathlib
import re
import struct
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
CORPUS = FUZZ / "corpus"
MAX_SEED = 4096


def write(target, name, data):
    assert len(data) < MAX_SEED, f"{target}/{name} is {len(data)} bytes"
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(bytes(data))


# ---------------------------------------------------------------- docs/PROTOCOL.md examples


def protocol_examples():
    """The hexdump blocks of docs/PROTOCOL.md: (title, frame bytes including the length prefix)."""
    frames = []
    title, block = None, None
    for line in (ROOT / "docs" / "PROTOCOL.md").read_text().splitlines():
        heading = re.fullmatch(r"\*\*(.+?)\*\*.*", line)
        if block is None and heading:
            title = heading.group(1)
        elif line.startswith("```hexdump"):
            block = []
        elif block is not None and line.startswith("```"):
            frame = bytes(int(h, 16) for h in block)
            (length,) = struct.unpack(">I", frame[:4])
            assert length == len(frame) - 4, f"{title}: length {length}, {len(frame) - 4} bytes follow"
            frames.append((title, frame))
            block = None
        elif block is not None:
            block += line.split("|", 1)[0].split()
    assert len(frames) >= 7, "docs/PROTOCOL.md worked example not found"
    return frames


def slug(title):
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


# ---------------------------------------------------------------- frame_decoder

WIDTH_INDEX = {1: 0, 2: 1, 3: 2, 4: 3, 8: 4}


def fd_header(width=4, little=False, fail_fast=True, max_mode=5, max_value=0, offset=0,
              adj_mode=0, adj=0, strip=None, peek_mode=0, chunk_seed=0):
    """The 8-byte header of a frame_decoder input (Setup::from_header)."""
    h0 = WIDTH_INDEX[width] | (0x08 if little else 0) | (0x10 if fail_fast else 0) | (max_mode << 5)
    h1 = offset if offset != "huge" else 0xFF
    h6 = peek_mode | ((0 if strip is None else strip + 1) << 2)
    return bytes([h0, h1, adj_mode, adj & 0xFF, max_value & 0xFF, (max_value >> 8) & 0xFF, h6,
                  chunk_seed])


def field(value, width, little=False):
    return value.to_bytes(width, "little" if little else "big")


def frames(payloads, width=4, little=False, adj=0):
    return b"".join(field(len(p) - adj, width, little) + p for p in payloads)


def frame_decoder_seeds():
    t = "frame_decoder"
    hello = b"HELLO, WORLD"
    # Default layout: 4-byte big-endian length, strip 4, max 1 MiB.
    two = frames([b"hello", b"world!"])
    write(t, "default-two-frames", fd_header() + two)
    write(t, "default-two-frames-split", fd_header(chunk_seed=7) + two)
    write(t, "default-two-frames-peek", fd_header(peek_mode=1, chunk_seed=3) + two)
    write(t, "default-many-frames-mixed", fd_header(peek_mode=2, chunk_seed=11)
          + frames([b"", b"a", b"bc", b"x" * 40, b"tail"]))
    write(t, "default-partial-tail", fd_header(chunk_seed=5) + two + b"\x00\x00\x00\x09abc")
    write(t, "default-partial-head", fd_header() + two + b"\x00\x00")

    # Netty's LengthFieldBasedFrameDecoder javadoc examples (docs: ANCHORS.md section 4).
    write(t, "netty-1-no-strip", fd_header(width=2, strip=0) + b"\x00\x0c" + hello)
    write(t, "netty-2-strip-header", fd_header(width=2) + b"\x00\x0c" + hello)
    write(t, "netty-3-length-counts-itself", fd_header(width=2, adj=-2, strip=0) + b"\x00\x0e" + hello)
    write(t, "netty-4-offset-header", fd_header(width=3, offset=2, strip=0)
          + b"\xca\xfe\x00\x00\x0c" + hello)
    write(t, "netty-5-header-after-length", fd_header(width=3, adj=2, strip=0)
          + b"\x00\x00\x0c\xca\xfe" + hello)
    write(t, "netty-6-offset-adjust-strip", fd_header(width=2, offset=1, adj=1, strip=3)
          + b"\xca\x00\x0c\xfe" + hello)
    write(t, "netty-7-whole-message-length", fd_header(width=2, offset=1, adj=-3, strip=3, chunk_seed=2)
          + b"\xca\x00\x10\xfe" + hello)

    # Other widths and byte orders.
    write(t, "u8-frames", fd_header(width=1, chunk_seed=1) + frames([b"a", b"bcd", b""], width=1))
    write(t, "u16-le-frames", fd_header(width=2, little=True, peek_mode=3, chunk_seed=9)
          + frames([b"ab", b"c" * 30], width=2, little=True))
    write(t, "u24-frames", fd_header(width=3, chunk_seed=4) + frames([b"xyz", b"0123456789"], width=3))
    write(t, "u64-le-frames", fd_header(width=8, little=True, chunk_seed=6)
          + frames([b"eight", b"bytes"], width=8, little=True))
    write(t, "u32-le-adjusted", fd_header(width=4, little=True, adj=-4, strip=0)
          + frames([b"counted", b"x"], width=4, little=True, adj=-4))

    # Too long: max 5 (mode 4), with and without fail_fast, so discard mode is exercised.
    long = frames([b"abc", b"123456789", b"de"], width=1)
    write(t, "too-long-fail-fast", fd_header(width=1, max_mode=4, max_value=5) + long)
    write(t, "too-long-discard", fd_header(width=1, fail_fast=False, max_mode=4, max_value=5, chunk_seed=3)
          + long)
    write(t, "too-long-discard-peek", fd_header(width=1, fail_fast=False, max_mode=4, max_value=5,
                                                peek_mode=2, chunk_seed=8) + long)
    write(t, "too-long-cut-short", fd_header(width=2, fail_fast=False, max_mode=4, max_value=16)
          + b"\x00\x40" + b"z" * 10)

    # Nasty heads: a peer announcing 4 GiB, 64-bit overflow, negative length, strip past the frame.
    write(t, "announce-4gib", fd_header(chunk_seed=2) + b"\xff\xff\xff\xff" + b"A" * 64)
    write(t, "announce-4gib-no-fail-fast", fd_header(fail_fast=False, chunk_seed=2)
          + b"\xff\xff\xff\xff" + b"A" * 64)
    write(t, "u64-max-unlimited", fd_header(width=8, max_mode=6) + b"\xff" * 8 + b"B" * 16)
    write(t, "u64-overflow-adjust", fd_header(width=8, max_mode=6, adj=1) + b"\xff" * 8)
    write(t, "negative-after-adjust", fd_header(width=2, adj=-2) + b"\x00\x01" + b"C")
    write(t, "strip-past-frame", fd_header(width=1, strip=10) + b"\x00" + frames([b"D"], width=1))
    write(t, "adjust-most-negative", fd_header(width=2, adj_mode=5) + b"\xff\xff" + frames([b"E"], width=2))
    write(t, "offset-unreachable", fd_header(width=4, offset="huge") + b"\x00" * 16)

    # The chat transport: 4-byte big-endian prefix, max 65536 (mode 7: 0x0100 << 8), the worked
    # example of docs/PROTOCOL.md as one stream, read in pieces.
    stream = b"".join(frame for _, frame in protocol_examples())
    write(t, "chat-worked-example", fd_header(max_mode=7, max_value=0x0100, chunk_seed=13) + stream)
    write(t, "chat-worked-example-peek", fd_header(max_mode=7, max_value=0x0100, peek_mode=3, chunk_seed=21)
          + stream)


# ---------------------------------------------------------------- chat_protocol


def str8(s):
    return bytes([len(s)]) + s


def req(op, rid, body=b""):
    return bytes([op]) + struct.pack(">I", rid) + body


def chat_protocol_seeds():
    t = "chat_protocol"
    for title, frame in protocol_examples():
        write(t, "doc-" + slug(title), frame[4:])

    # Requests not in the worked example.
    write(t, "req-login-no-token", req(0x01, 7, b"\x01" + str8(b"bob") + b"\x00"))
    write(t, "req-leave", req(0x03, 8, str8(b"lobby")))
    write(t, "req-direct", req(0x05, 9, str8(b"bob") + "h\u00e9llo \U0001f600".encode()))
    write(t, "req-list-rooms", req(0x06, 10))
    write(t, "req-who", req(0x07, 11, str8(b"room.name-1_x")))
    write(t, "req-ping", req(0x08, 12, struct.pack(">Q", 0x0123456789ABCDEF)))
    write(t, "req-pong", req(0x09, 0, struct.pack(">Q", 42)))
    write(t, "req-say-empty-text", req(0x04, 13, str8(b"r")))

    # Replies and pushes not in the worked example.
    write(t, "reply-empty", b"\x40" + struct.pack(">I", 8) + b"\x00")
    write(t, "reply-rooms", b"\x40" + struct.pack(">I", 10) + b"\x04" + struct.pack(">II", 3, 2)
          + str8(b"lobby") + struct.pack(">I", 2) + str8(b"dev") + struct.pack(">I", 1))
    write(t, "reply-members", b"\x40" + struct.pack(">I", 11) + b"\x05" + struct.pack(">II", 2, 2)
          + str8(b"alice") + str8(b"bob"))
    write(t, "reply-pong", b"\x40" + struct.pack(">I", 12) + b"\x06" + struct.pack(">Q", 0x0123456789ABCDEF))
    write(t, "reply-error", b"\x41" + struct.pack(">IH", 13, 301) + b"not a member of the room")
    write(t, "push-direct", b"\x81" + struct.pack(">QQ", 43, 1735689600000001) + str8(b"bob") + b"hi")
    write(t, "push-history-message", b"\x80\x01" + struct.pack(">QQ", 1, 2) + str8(b"lobby")
          + str8(b"bob") + b"old")
    write(t, "push-presence-left", b"\x82\x02" + str8(b"lobby") + str8(b"bob"))
    write(t, "push-ping", b"\x83" + struct.pack(">Q", 99))
    write(t, "push-going-away", b"\x84" + struct.pack(">I", 5000) + b"restarting")
    write(t, "push-error", b"\x85" + struct.pack(">H", 104) + b"frame too large")

    # Nasty ones: each must fail to decode without panicking.
    write(t, "bad-empty", b"")
    write(t, "bad-short-header", b"\x02\x00\x00")
    write(t, "bad-unknown-opcode", req(0x3F, 5, b"xyz"))
    write(t, "bad-wrong-version", req(0x01, 1, b"\x02" + str8(b"alice") + b"\x00"))
    write(t, "bad-name-char", req(0x02, 2, str8(b"lob by")))
    write(t, "bad-name-too-long", req(0x02, 2, str8(b"x" * 33)))
    write(t, "bad-name-non-ascii", req(0x02, 2, str8("l\u00f6bby".encode())))
    write(t, "bad-utf8-text", req(0x04, 3, str8(b"lobby") + b"\xff\xfe"))
    write(t, "bad-str8-past-end", req(0x01, 1, b"\x01\x05ali"))
    write(t, "bad-trailing-bytes", req(0x06, 10, b"\x00"))
    write(t, "bad-list-count-over-total", b"\x40" + struct.pack(">I", 1) + b"\x05"
          + struct.pack(">II", 1, 0xFFFFFFFF) + str8(b"a"))
    write(t, "bad-list-huge-count", b"\x40" + struct.pack(">I", 1) + b"\x04"
          + struct.pack(">II", 0xFFFFFFFF, 0xFFFFFFFF) + str8(b"a") + b"\x00\x00\x00\x01")
    write(t, "bad-error-code", b"\x41" + struct.pack(">IH", 1, 999) + b"?")
    write(t, "bad-message-flags", b"\x80\x02" + struct.pack(">QQ", 1, 2) + str8(b"a") + str8(b"b"))
    write(t, "bad-presence-kind", b"\x82\x03" + str8(b"a") + str8(b"b"))
    write(t, "bad-body-kind", b"\x40" + struct.pack(">I", 1) + b"\x07")


# ---------------------------------------------------------------- http_request


def http_request_seeds():
    t = "http_request"

    def seed(name, stream, chunk_seed=0, limits=0):
        write(t, name, bytes([limits, chunk_seed]) + stream)

    get = b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive\r\n\r\n"
    post = b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
    chunked = (b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    seed("get-keep-alive", get)
    seed("get-keep-alive-bytewise", get, chunk_seed=1)
    seed("get-http10", b"GET /index.html HTTP/1.0\r\n\r\n")
    seed("get-http10-keep-alive", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    seed("head", b"HEAD /x HTTP/1.1\r\nHost: h\r\n\r\n")
    seed("get-query-bare-lf", b"GET /search?q=a%20b&x=1 HTTP/1.1\nHost: h\nAccept: */*\n\n")
    seed("post-content-length", post)
    seed("post-content-length-split", post, chunk_seed=7)
    seed("post-expect-continue", b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
         chunk_seed=5)
    seed("post-chunked", chunked)
    seed("post-chunked-split", chunked, chunk_seed=3)
    seed("pipelined", get + post + chunked + b"\r\nDELETE /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
         chunk_seed=9)
    seed("pipelined-whole", get + post + get)

    # Nasty: smuggling shapes, sloppy chunk sizes, limits, garbage.
    seed("bad-te-and-cl", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n")
    seed("bad-cl-and-te", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
         b"1\r\nZ\r\n0\r\n\r\n")
    seed("bad-two-content-lengths", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
    seed("bad-content-length-list", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc")
    seed("bad-content-length-sign", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\nabc")
    seed("bad-content-length-huge", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n")
    seed("bad-te-gzip", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
    seed("bad-te-not-last", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n")
    seed("bad-chunk-size-junk", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n")
    seed("bad-chunk-size-space", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 0\r\nhello\r\n0\r\n\r\n")
    seed("bad-chunk-size-overflow", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"ffffffffffffffffff\r\n")
    seed("bad-chunk-missing-crlf", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n")
    seed("bad-space-before-colon", b"GET / HTTP/1.1\r\nHost : h\r\n\r\n")
    seed("bad-obs-fold", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n")
    seed("bad-http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    seed("bad-tls-hello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
    seed("bad-version", b"GET / HTTP/1.2\r\nHost: h\r\n\r\n")
    seed("bad-long-header", b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: " + b"a" * 3000 + b"\r\n\r\n", chunk_seed=17)
    seed("bad-nul-in-target", b"GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n")
    # Tight limits (bit 7 set: max_head_size 64 + 32 * low nibble, max_headers 1 + bits 4-6,
    # max_body_size 4 * low nibble).
    seed("tight-limits-ok", b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nabcd", limits=0x91)
    seed("tight-limits-body-too-large", post, chunk_seed=2, limits=0xB1)
    seed("tight-limits-chunked-too-large", chunked, limits=0x92)
    seed("tight-limits-too-many-headers", b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n", limits=0x80)
    seed("tight-limits-long-line", b"GET /" + b"x" * 200 + b" HTTP/1.1\r\nHost: h\r\n\r\n", chunk_seed=4,
         limits=0x80)
    # Finding: an empty line split across reads ("\r", then "\n") leaves the decoder in_head()
    # instead of idle (one read: idle). Read-size seed 0x2b cuts it after the CR.
    seed("regress-split-crlf-stays-in-head", b"\r\n", chunk_seed=0x2B)
    seed("leading-empty-lines", b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n")


def main():
    targets = {
        "frame_decoder": frame_decoder_seeds,
        "chat_protocol": chat_protocol_seeds,
        "http_request": http_request_seeds,
    }
    chosen = sys.argv[1:] or list(targets)
    for name in chosen:
        targets[name]()
        files = sorted((CORPUS / name).iterdir())
        print(f"{name}: {len(files)} seeds, largest {max(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
