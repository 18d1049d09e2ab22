//! Unit tests: round trips, the worked example of `docs/PROTOCOL.md`, and
//! decoding errors.

use bytes::BytesMut;

use super::*;

fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    assert_eq!(buf.len(), frame.encoded_len(), "encoded_len of {frame:?}");
    buf.to_vec()
}

fn encode_server(frame: &ServerFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    assert_eq!(buf.len(), frame.encoded_len(), "encoded_len of {frame:?}");
    buf.to_vec()
}

/// Prepends the 4-byte big-endian length prefix of the transport.
fn with_prefix(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn client(request_id: u32, request: Request) -> ClientFrame {
    ClientFrame { request_id, request }
}

fn all_requests() -> Vec<ClientFrame> {
    vec![
        client(
            1,
            Request::Login { version: PROTOCOL_VERSION, nick: "alice".into(), token: Some("k3y".into()) },
        ),
        client(u32::MAX, Request::Login { version: PROTOCOL_VERSION, nick: "B.o_b-9".into(), token: None }),
        client(2, Request::Join { room: "lobby".into(), resume: None }),
        client(
            2,
            Request::Join { room: "lobby".into(), resume: Some(Position { epoch: u64::MAX, offset: 0 }) },
        ),
        client(3, Request::Leave { room: "lobby".into() }),
        client(4, Request::Say { room: "lobby".into(), text: "hello, wörld ✓".into() }),
        client(5, Request::Say { room: "r".into(), text: String::new() }),
        client(6, Request::Direct { to: "bob".into(), text: "psst".into() }),
        client(7, Request::ListRooms),
        client(8, Request::Who { room: "lobby".into() }),
        client(0, Request::Ping { nonce: u64::MAX }),
        client(0, Request::Pong { nonce: 0x0102_0304_0506_0708 }),
    ]
}

fn all_server_frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::ok(1, OkBody::Empty),
        ServerFrame::ok(2, OkBody::Welcome(ServerLimits::default())),
        ServerFrame::ok(
            3,
            OkBody::Joined {
                members: 10_000,
                history: 100,
                epoch: 9,
                last_offset: u64::MAX,
                recovered: true,
            },
        ),
        ServerFrame::ok(
            3,
            OkBody::Joined { members: 1, history: 0, epoch: 0, last_offset: 0, recovered: false },
        ),
        ServerFrame::ok(4, OkBody::Sent { id: 42, ts_us: 7, offset: 3 }),
        ServerFrame::ok(
            5,
            OkBody::Rooms {
                total: 3,
                rooms: vec![
                    RoomInfo { name: "lobby".into(), members: 2 },
                    RoomInfo { name: "rust".into(), members: 0 },
                ],
            },
        ),
        ServerFrame::ok(6, OkBody::Rooms { total: 0, rooms: vec![] }),
        ServerFrame::ok(7, OkBody::Members { total: 2, nicks: vec!["alice".into(), "bob".into()] }),
        ServerFrame::ok(8, OkBody::Pong { nonce: 99 }),
        ServerFrame::error(9, ErrorCode::NicknameTaken, "nickname alice is taken"),
        ServerFrame::error(10, ErrorCode::SlowConsumer, ""),
        ServerFrame::Push(Push::Message {
            room: "lobby".into(),
            id: 1,
            ts_us: 2,
            offset: 1,
            from: "alice".into(),
            text: "hi".into(),
            history: true,
        }),
        ServerFrame::Push(Push::Message {
            room: "lobby".into(),
            id: u64::MAX,
            ts_us: u64::MAX,
            offset: u64::MAX,
            from: "alice".into(),
            text: String::new(),
            history: false,
        }),
        ServerFrame::Push(Push::Direct { id: 3, ts_us: 4, from: "bob".into(), text: "secret ✓".into() }),
        ServerFrame::Push(Push::Presence {
            room: "lobby".into(),
            nick: "carol".into(),
            kind: PresenceKind::Joined,
        }),
        ServerFrame::Push(Push::Presence {
            room: "lobby".into(),
            nick: "carol".into(),
            kind: PresenceKind::Left,
        }),
        ServerFrame::Push(Push::Ping { nonce: 5 }),
        ServerFrame::Push(Push::GoingAway { retry_after_ms: 5_000, reason: "restarting".into() }),
        ServerFrame::Push(Push::Error { code: ErrorCode::IdleTimeout, message: "idle for 60 s".into() }),
        ServerFrame::Push(Push::MemberCount { room: "big".into(), members: 12_345 }),
    ]
}

#[test]
fn requests_round_trip() {
    for frame in all_requests() {
        let bytes = encode_client(&frame);
        assert_eq!(ClientFrame::decode(&bytes), Ok(frame.clone()));
        let borrowed = ClientFrameRef::decode(&bytes).unwrap();
        assert_eq!(borrowed, frame.as_borrowed());
        let mut again = BytesMut::new();
        borrowed.encode(&mut again);
        assert_eq!(&again[..], &bytes[..]);
        assert_eq!(bytes[0], frame.request.opcode());
    }
}

#[test]
fn server_frames_round_trip() {
    for frame in all_server_frames() {
        let bytes = encode_server(&frame);
        assert_eq!(ServerFrame::decode(&bytes), Ok(frame.clone()), "{bytes:02x?}");
        let borrowed = ServerFrameRef::decode(&bytes).unwrap();
        let mut again = BytesMut::new();
        borrowed.encode(&mut again);
        assert_eq!(&again[..], &bytes[..]);
        assert_eq!(borrowed.into_owned(), frame);
    }
}

#[test]
fn encode_message_matches_push_encode() {
    let push = Push::Message {
        room: "lobby".into(),
        id: 42,
        ts_us: 1_735_689_600_000_000,
        offset: 5,
        from: "alice".into(),
        text: "hello".into(),
        history: true,
    };
    let mut a = BytesMut::new();
    push.encode(&mut a);
    let mut b = BytesMut::new();
    Push::encode_message("lobby", 42, 1_735_689_600_000_000, 5, "alice", "hello", true, &mut b);
    assert_eq!(a, b);

    let direct = Push::Direct { id: 1, ts_us: 2, from: "bob".into(), text: "x".into() };
    let mut a = BytesMut::new();
    direct.encode(&mut a);
    let mut b = BytesMut::new();
    Push::encode_direct(1, 2, "bob", "x", &mut b);
    assert_eq!(a, b);
}

#[test]
fn encode_appends() {
    let mut buf = BytesMut::from(&b"xy"[..]);
    ServerFrame::Push(Push::Ping { nonce: 1 }).encode(&mut buf);
    assert_eq!(&buf[..], b"xy\x83\0\0\0\0\0\0\0\x01");
}

#[test]
fn empty_token_is_no_token() {
    let frame =
        client(1, Request::Login { version: PROTOCOL_VERSION, nick: "a".into(), token: Some(String::new()) });
    let decoded = ClientFrame::decode(&encode_client(&frame)).unwrap();
    assert_eq!(decoded.request, Request::Login { version: PROTOCOL_VERSION, nick: "a".into(), token: None });
}

// ---------------------------------------------------------------------------
// Worked example of docs/PROTOCOL.md, section 11.

/// The example frames, length prefix included, in document order.
fn example_frames() -> Vec<Vec<u8>> {
    let limits = ServerLimits::default();
    let ts_us = 1_735_689_600_000_000; // 2025-01-01T00:00:00Z
    let login = encode_client(&client(
        1,
        Request::Login { version: PROTOCOL_VERSION, nick: "alice".into(), token: Some("k3y".into()) },
    ));
    let welcome = encode_server(&ServerFrame::ok(1, OkBody::Welcome(limits)));
    let epoch = 0x1122_3344_5566_7788;
    let resume = Some(Position { epoch, offset: 41 });
    let join = encode_client(&client(2, Request::Join { room: "lobby".into(), resume }));
    let joined = encode_server(&ServerFrame::ok(
        2,
        OkBody::Joined { members: 2, history: 0, epoch, last_offset: 41, recovered: true },
    ));
    let presence = encode_server(&ServerFrame::Push(Push::Presence {
        room: "lobby".into(),
        nick: "alice".into(),
        kind: PresenceKind::Joined,
    }));
    let say = encode_client(&client(3, Request::Say { room: "lobby".into(), text: "hello".into() }));
    let sent = encode_server(&ServerFrame::ok(3, OkBody::Sent { id: 42, ts_us, offset: 42 }));
    let mut message = BytesMut::new();
    Push::encode_message("lobby", 42, ts_us, 42, "alice", "hello", false, &mut message);
    [login, welcome, join, joined, presence, say, sent, message.to_vec()]
        .iter()
        .map(|p| with_prefix(p))
        .collect()
}

#[rustfmt::skip]
const EXAMPLE_HEX: [&[u8]; 8] = [
    // Login
    &[0x00, 0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x01, 0x02,
      0x05, b'a', b'l', b'i', b'c', b'e', 0x03, b'k', b'3', b'y'],
    // OK / Welcome
    &[0x00, 0x00, 0x00, 0x1e, 0x40, 0x00, 0x00, 0x00, 0x01, 0x01,
      0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x32, 0x00, 0x00, 0x00, 0x20,
      0x00, 0x00, 0x27, 0x10, 0x00, 0x00, 0x00, 0x64, 0x00, 0x00, 0xea, 0x60],
    // Join
    &[0x00, 0x00, 0x00, 0x1c, 0x02, 0x00, 0x00, 0x00, 0x02,
      0x05, b'l', b'o', b'b', b'b', b'y', 0x01,
      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29],
    // OK / Joined
    &[0x00, 0x00, 0x00, 0x1f, 0x40, 0x00, 0x00, 0x00, 0x02, 0x02,
      0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
      0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0x01],
    // Presence
    &[0x00, 0x00, 0x00, 0x0e, 0x82, 0x01,
      0x05, b'l', b'o', b'b', b'b', b'y', 0x05, b'a', b'l', b'i', b'c', b'e'],
    // Say
    &[0x00, 0x00, 0x00, 0x10, 0x04, 0x00, 0x00, 0x00, 0x03,
      0x05, b'l', b'o', b'b', b'b', b'y', b'h', b'e', b'l', b'l', b'o'],
    // OK / Sent
    &[0x00, 0x00, 0x00, 0x1e, 0x40, 0x00, 0x00, 0x00, 0x03, 0x03,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
      0x00, 0x06, 0x2a, 0x99, 0xba, 0x0c, 0x60, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a],
    // Message push
    &[0x00, 0x00, 0x00, 0x2b, 0x80, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
      0x00, 0x06, 0x2a, 0x99, 0xba, 0x0c, 0x60, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a,
      0x05, b'l', b'o', b'b', b'b', b'y', 0x05, b'a', b'l', b'i', b'c', b'e',
      b'h', b'e', b'l', b'l', b'o'],
];

#[test]
fn worked_example_exact_bytes() {
    let frames = example_frames();
    assert_eq!(frames.len(), EXAMPLE_HEX.len());
    for (i, (got, want)) in frames.iter().zip(EXAMPLE_HEX).enumerate() {
        assert_eq!(&got[..], want, "example frame {i}");
    }
}

#[test]
fn worked_example_decodes() {
    let payload = |i: usize| &EXAMPLE_HEX[i][4..];
    assert_eq!(
        ClientFrameRef::decode(payload(0)).unwrap(),
        ClientFrameRef {
            request_id: 1,
            request: RequestRef::Login { version: PROTOCOL_VERSION, nick: "alice", token: Some("k3y") }
        }
    );
    assert_eq!(
        ServerFrame::decode(payload(1)).unwrap(),
        ServerFrame::ok(1, OkBody::Welcome(ServerLimits::default()))
    );
    assert_eq!(
        ClientFrameRef::decode(payload(5)).unwrap().request,
        RequestRef::Say { room: "lobby", text: "hello" }
    );
    assert_eq!(
        ServerFrameRef::decode(payload(7)).unwrap(),
        ServerFrameRef::Push(PushRef::Message {
            room: "lobby",
            id: 42,
            ts_us: 1_735_689_600_000_000,
            offset: 42,
            from: "alice",
            text: "hello",
            history: false
        })
    );
}

/// The hex dumps in PROTOCOL.md (fenced `hexdump` blocks, bytes left of
/// `|`) are exactly the example frames.
#[test]
fn protocol_md_hex_dumps_match() {
    let doc = include_str!("../../../../docs/PROTOCOL.md");
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for line in doc.lines() {
        let trimmed = line.trim();
        if trimmed == "```hexdump" {
            assert!(current.is_none(), "nested hexdump block");
            current = Some(Vec::new());
        } else if trimmed == "```" {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
        } else if let Some(block) = current.as_mut() {
            let (hex, _annotation) = line.split_once('|').expect("hexdump line without '|'");
            for byte in hex.split_whitespace() {
                block.push(u8::from_str_radix(byte, 16).expect("bad hex byte"));
            }
        }
    }
    assert_eq!(blocks.len(), EXAMPLE_HEX.len(), "number of hexdump blocks");
    for (i, (doc_bytes, want)) in blocks.iter().zip(EXAMPLE_HEX).enumerate() {
        assert_eq!(&doc_bytes[..], want, "PROTOCOL.md hexdump block {i}");
    }
}

// ---------------------------------------------------------------------------
// Decoding errors.

fn client_err(payload: &[u8]) -> DecodeError {
    ClientFrame::decode(payload).expect_err("decode should fail")
}

fn server_err(payload: &[u8]) -> DecodeError {
    ServerFrame::decode(payload).expect_err("decode should fail")
}

#[test]
fn empty_payload() {
    for err in [client_err(&[]), server_err(&[])] {
        assert_eq!(err, DecodeError { request_id: None, kind: DecodeErrorKind::Empty });
        assert_eq!(err.code(), ErrorCode::Malformed);
    }
}

#[test]
fn every_truncation_fails() {
    for frame in all_requests() {
        let bytes = encode_client(&frame);
        let fixed = match &frame.request {
            // Text frames: cutting the text still leaves a valid frame.
            Request::Say { room: name, .. } | Request::Direct { to: name, .. } => 6 + name.len(),
            _ => bytes.len(),
        };
        for len in 0..fixed.min(bytes.len()) {
            let err = client_err(&bytes[..len]);
            let expect_id = (len >= 5).then_some(frame.request_id);
            assert_eq!(err.request_id, expect_id, "{frame:?} cut at {len}");
        }
    }
    for frame in all_server_frames() {
        let bytes = encode_server(&frame);
        let fixed = match &frame {
            ServerFrame::Push(Push::Message { room, from, .. }) => 20 + room.len() + from.len(),
            ServerFrame::Push(Push::Direct { from, .. }) => 18 + from.len(),
            ServerFrame::Push(Push::GoingAway { .. }) => 5,
            ServerFrame::Push(Push::Error { .. }) => 3,
            ServerFrame::Reply { reply: Reply::Error { .. }, .. } => 7,
            _ => bytes.len(),
        };
        for len in 0..fixed.min(bytes.len()) {
            assert!(ServerFrame::decode(&bytes[..len]).is_err(), "{frame:?} cut at {len}");
        }
    }
}

#[test]
fn truncated_keeps_request_id() {
    // Join with a room length of 5 but only 2 bytes of name.
    let err = client_err(&[0x02, 0, 0, 0, 7, 5, b'a', b'b']);
    assert_eq!(err, DecodeError { request_id: Some(7), kind: DecodeErrorKind::Truncated });
    // Short header: no id.
    let err = client_err(&[0x02, 0, 0]);
    assert_eq!(err.request_id, None);
    assert_eq!(err.kind, DecodeErrorKind::Truncated);
}

#[test]
fn unknown_opcodes() {
    let err = client_err(&[0x3f, 0, 0, 0, 9, 1, 2, 3]);
    assert_eq!(err.request_id, Some(9));
    assert_eq!(err.kind, DecodeErrorKind::UnknownOpcode(0x3f));
    assert_eq!(err.code(), ErrorCode::UnknownOpcode);
    // Too short for an id: reported as unknown opcode without id.
    let err = client_err(&[0xee, 1]);
    assert_eq!(err.request_id, None);
    assert_eq!(err.kind, DecodeErrorKind::UnknownOpcode(0xee));
    // Server opcodes are not requests, and vice versa.
    let ok = encode_server(&ServerFrame::ok(1, OkBody::Empty));
    assert_eq!(client_err(&ok).kind, DecodeErrorKind::UnknownOpcode(opcode::OK));
    assert_eq!(client_err(&[0x00, 0, 0, 0, 0]).kind, DecodeErrorKind::UnknownOpcode(0));
    let ping = encode_client(&client(1, Request::Ping { nonce: 1 }));
    assert_eq!(server_err(&ping).kind, DecodeErrorKind::UnknownOpcode(opcode::PING));
    for op in [0x00, 0x42, 0x7f, 0x87, 0xff] {
        assert_eq!(server_err(&[op, 0, 0, 0, 0, 0, 0, 0, 0]).kind, DecodeErrorKind::UnknownOpcode(op));
    }
}

#[test]
fn trailing_bytes() {
    let mut bytes = encode_client(&client(4, Request::Join { room: "a".into(), resume: None }));
    bytes.push(0);
    assert_eq!(client_err(&bytes), DecodeError { request_id: Some(4), kind: DecodeErrorKind::TrailingBytes });
    let mut bytes = encode_client(&client(4, Request::ListRooms));
    bytes.push(0);
    assert_eq!(client_err(&bytes).kind, DecodeErrorKind::TrailingBytes);
    let mut bytes = encode_server(&ServerFrame::Push(Push::Ping { nonce: 1 }));
    bytes.push(0);
    assert_eq!(server_err(&bytes).kind, DecodeErrorKind::TrailingBytes);
    let mut bytes = encode_server(&ServerFrame::ok(1, OkBody::Sent { id: 1, ts_us: 1, offset: 1 }));
    bytes.push(0);
    assert_eq!(server_err(&bytes), DecodeError { request_id: Some(1), kind: DecodeErrorKind::TrailingBytes });
}

#[test]
fn invalid_utf8() {
    // Say with invalid UTF-8 text.
    let err = client_err(&[0x04, 0, 0, 0, 3, 1, b'r', 0xff, 0xfe]);
    assert_eq!(err, DecodeError { request_id: Some(3), kind: DecodeErrorKind::InvalidUtf8 });
    assert_eq!(err.code(), ErrorCode::InvalidUtf8);
    // Truncated multi-byte sequence in a token.
    let err = client_err(&[0x01, 0, 0, 0, 1, 2, 1, b'a', 2, 0xc3, 0x28]);
    assert_eq!(err.kind, DecodeErrorKind::InvalidUtf8);
    // Name with a non-UTF-8 byte.
    let err = client_err(&[0x02, 0, 0, 0, 1, 1, 0x80]);
    assert_eq!(err.kind, DecodeErrorKind::InvalidUtf8);
    // Push text.
    let err = server_err(&[0x85, 0, 100, 0xc0]);
    assert_eq!(err.kind, DecodeErrorKind::InvalidUtf8);
    assert_eq!(err.request_id, None);
}

#[test]
fn invalid_names_rejected() {
    let long = "a".repeat(MAX_NAME_LEN + 1);
    for (name, expected) in [
        ("", NameError::Empty),
        (long.as_str(), NameError::TooLong { len: 33 }),
        ("a b", NameError::InvalidChar { ch: ' ' }),
        ("é", NameError::InvalidChar { ch: 'é' }),
        ("a/b", NameError::InvalidChar { ch: '/' }),
    ] {
        assert_eq!(validate_name(name), Err(expected), "{name:?}");
        let bytes = encode_client(&client(6, Request::Join { room: name.into(), resume: None }));
        assert_eq!(
            client_err(&bytes),
            DecodeError { request_id: Some(6), kind: DecodeErrorKind::InvalidName(expected) }
        );
        assert_eq!(client_err(&bytes).code(), ErrorCode::InvalidName);
        let bytes = encode_server(&ServerFrame::Push(Push::Presence {
            room: "ok".into(),
            nick: name.into(),
            kind: PresenceKind::Left,
        }));
        assert_eq!(server_err(&bytes).kind, DecodeErrorKind::InvalidName(expected));
    }
    let max = "Z".repeat(MAX_NAME_LEN);
    for name in ["a", "A-Z_a.z-09", max.as_str(), ".", "-", "_"] {
        assert_eq!(validate_name(name), Ok(()), "{name:?}");
    }
}

#[test]
fn unsupported_version() {
    for version in [0, 1, 3, 0xff] {
        let bytes = encode_client(&client(11, Request::Login { version, nick: "alice".into(), token: None }));
        let err = client_err(&bytes);
        assert_eq!(
            err,
            DecodeError { request_id: Some(11), kind: DecodeErrorKind::UnsupportedVersion(version) }
        );
        assert_eq!(err.code(), ErrorCode::UnsupportedVersion);
    }
    // The version is checked before the (possibly different) rest.
    let err = client_err(&[0x01, 0, 0, 0, 1, 9, 0xff, 0xff]);
    assert_eq!(err.kind, DecodeErrorKind::UnsupportedVersion(9));
}

#[test]
fn join_flags_are_strict() {
    let plain = encode_client(&client(4, Request::Join { room: "a".into(), resume: None }));
    assert_eq!(plain, [0x02, 0, 0, 0, 4, 1, b'a', 0x00]);
    // Unknown flag bits, a missing flags byte, a truncated position.
    let err = client_err(&[0x02, 0, 0, 0, 4, 1, b'a', 0x02]);
    assert_eq!(err.kind, DecodeErrorKind::InvalidField("join flags"));
    assert_eq!(err.request_id, Some(4));
    assert_eq!(client_err(&[0x02, 0, 0, 0, 4, 1, b'a']).kind, DecodeErrorKind::Truncated);
    assert_eq!(client_err(&[0x02, 0, 0, 0, 4, 1, b'a', 0x01, 0, 0]).kind, DecodeErrorKind::Truncated);
    // Version 1 (no flags byte) is refused by version, before the layout.
    let v1 = client_err(&[0x01, 0, 0, 0, 1, 1, 1, b'a', 0]);
    assert_eq!(v1.kind, DecodeErrorKind::UnsupportedVersion(1));
    assert_eq!(v1.code(), ErrorCode::UnsupportedVersion);
}

#[test]
fn invalid_enumerated_fields() {
    // Unknown flag bit in a message push.
    let mut msg = BytesMut::new();
    Push::encode_message("r", 1, 2, 3, "a", "t", false, &mut msg);
    msg[1] = 0x02;
    assert_eq!(server_err(&msg).kind, DecodeErrorKind::InvalidField("message flags"));
    // Presence kind 0 and 3.
    for kind in [0, 3] {
        let err = server_err(&[0x82, kind, 1, b'r', 1, b'a']);
        assert_eq!(err.kind, DecodeErrorKind::InvalidField("presence kind"));
        assert_eq!(err.code(), ErrorCode::Malformed);
    }
    // A recovered flag other than 0 or 1.
    let mut joined = encode_server(&ServerFrame::ok(
        5,
        OkBody::Joined { members: 1, history: 0, epoch: 1, last_offset: 0, recovered: false },
    ));
    *joined.last_mut().unwrap() = 2;
    assert_eq!(server_err(&joined).kind, DecodeErrorKind::InvalidField("recovered flag"));
    // Unknown body kind.
    let err = server_err(&[0x40, 0, 0, 0, 5, 0x07]);
    assert_eq!(err, DecodeError { request_id: Some(5), kind: DecodeErrorKind::InvalidField("body kind") });
    // Undefined error codes, in replies and pushes.
    assert_eq!(server_err(&[0x41, 0, 0, 0, 5, 0, 0]).kind, DecodeErrorKind::InvalidField("error code"));
    assert_eq!(server_err(&[0x85, 0xff, 0xff]).kind, DecodeErrorKind::InvalidField("error code"));
    // List count larger than total.
    let err = server_err(&[0x40, 0, 0, 0, 5, 0x05, 0, 0, 0, 1, 0, 0, 0, 2]);
    assert_eq!(err.kind, DecodeErrorKind::InvalidField("list count"));
}

#[test]
fn huge_list_count_does_not_allocate_or_hang() {
    // count = total = u32::MAX with no entries: fails fast on truncation.
    let mut bytes = vec![0x40, 0, 0, 0, 1, 0x04];
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    bytes.extend_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(server_err(&bytes).kind, DecodeErrorKind::Truncated);
    bytes[5] = 0x05;
    assert_eq!(server_err(&bytes).kind, DecodeErrorKind::Truncated);
}

#[test]
fn long_str8_fields_are_truncated_at_char_boundary() {
    // 254 ASCII bytes then a 2-byte character: cut before the character.
    let token = format!("{}é", "t".repeat(254));
    let frame = client(1, Request::Login { version: PROTOCOL_VERSION, nick: "a".into(), token: Some(token) });
    let bytes = encode_client(&frame);
    let decoded = ClientFrame::decode(&bytes).unwrap();
    let Request::Login { token, .. } = decoded.request else {
        panic!("not a login: {decoded:?}");
    };
    assert_eq!(token.unwrap(), "t".repeat(254));
    // A too-long name is cut to 255 bytes, which the peer rejects.
    let bytes = encode_client(&client(2, Request::Join { room: "r".repeat(300), resume: None }));
    assert_eq!(bytes.len(), 5 + 1 + 255 + 1);
    assert_eq!(client_err(&bytes).kind, DecodeErrorKind::InvalidName(NameError::TooLong { len: 255 }));
}

// ---------------------------------------------------------------------------
// Error codes, limits, helpers.

#[test]
fn error_codes_are_stable() {
    let expected: [(ErrorCode, u16); 24] = [
        (ErrorCode::Malformed, 100),
        (ErrorCode::UnknownOpcode, 101),
        (ErrorCode::InvalidUtf8, 102),
        (ErrorCode::InvalidName, 103),
        (ErrorCode::FrameTooLarge, 104),
        (ErrorCode::UnsupportedVersion, 105),
        (ErrorCode::TextTooLong, 106),
        (ErrorCode::NotLoggedIn, 200),
        (ErrorCode::AlreadyLoggedIn, 201),
        (ErrorCode::NicknameTaken, 202),
        (ErrorCode::BadToken, 203),
        (ErrorCode::UnknownRoom, 300),
        (ErrorCode::NotMember, 301),
        (ErrorCode::AlreadyMember, 302),
        (ErrorCode::UnknownUser, 303),
        (ErrorCode::RateLimited, 400),
        (ErrorCode::TooManyRooms, 401),
        (ErrorCode::RoomFull, 402),
        (ErrorCode::ServerFull, 403),
        (ErrorCode::Internal, 500),
        (ErrorCode::ShuttingDown, 501),
        (ErrorCode::IdleTimeout, 502),
        (ErrorCode::SlowConsumer, 503),
        (ErrorCode::StoreFailed, 504),
    ];
    assert_eq!(ErrorCode::ALL.len(), expected.len());
    for ((code, value), listed) in expected.iter().zip(ErrorCode::ALL) {
        assert_eq!(*code, listed);
        assert_eq!(code.as_u16(), *value);
        assert_eq!(u16::from(*code), *value);
        assert_eq!(ErrorCode::from_u16(*value), Some(*code));
        assert_eq!(ErrorCode::try_from(*value), Ok(*code));
        assert!(!code.to_string().is_empty());
    }
    let defined: Vec<u16> = ErrorCode::ALL.iter().map(|c| c.as_u16()).collect();
    for value in 0..=u16::MAX {
        if !defined.contains(&value) {
            assert_eq!(ErrorCode::from_u16(value), None);
            assert_eq!(ErrorCode::try_from(value), Err(value));
        }
    }
    assert_eq!(ErrorCode::NicknameTaken.to_string(), "nickname taken");
}

#[test]
fn protocol_md_lists_every_error_code_and_opcode() {
    let doc = include_str!("../../../../docs/PROTOCOL.md");
    for code in ErrorCode::ALL {
        let row = format!("| {:<4} | {:<18} |", code.as_u16(), format!("{code:?}"));
        assert!(doc.contains(&row), "PROTOCOL.md lacks error row {row:?}");
    }
    for op in [
        opcode::LOGIN,
        opcode::JOIN,
        opcode::LEAVE,
        opcode::SAY,
        opcode::DIRECT,
        opcode::LIST_ROOMS,
        opcode::WHO,
        opcode::PING,
        opcode::PONG,
        opcode::OK,
        opcode::ERROR,
        opcode::MESSAGE,
        opcode::DIRECT_MESSAGE,
        opcode::PRESENCE,
        opcode::SERVER_PING,
        opcode::GOING_AWAY,
        opcode::ERROR_PUSH,
        opcode::MEMBER_COUNT,
    ] {
        let cell = format!("| `0x{op:02X}` |");
        assert!(doc.contains(&cell), "PROTOCOL.md lacks opcode {cell}");
    }
}

#[test]
fn decode_error_response() {
    let with_id = client_err(&[0x02, 0, 0, 0, 8, 0]);
    assert_eq!(
        with_id.response(),
        ServerFrame::error(8, ErrorCode::InvalidName, "invalid name: name is empty")
    );
    let without_id = client_err(&[0x02]);
    assert_eq!(
        without_id.response(),
        ServerFrame::Push(Push::Error { code: ErrorCode::Malformed, message: "truncated frame".into() })
    );
    assert_eq!(with_id.to_string(), "invalid name: name is empty (request id 8)");
    // Every response is itself encodable and decodable.
    for err in [with_id, without_id, client_err(&[0x01, 0, 0, 0, 1, 7])] {
        let frame = err.response();
        assert_eq!(ServerFrame::decode(&encode_server(&frame)), Ok(frame));
    }
}

#[test]
fn limits_defaults_and_text_headroom() {
    let limits = ServerLimits::default();
    assert_eq!(limits.max_payload, 65_536);
    assert_eq!(limits.rate_per_sec, 50);
    assert_eq!(limits.max_rooms_per_user, 32);
    assert_eq!(limits.max_members_per_room, 10_000);
    assert_eq!(limits.history_len, 100);
    assert_eq!(limits.idle_timeout_ms, 60_000);
    assert_eq!(limits.max_text_len(), 65_536 - 128);
    assert_eq!(ServerLimits { max_payload: 10, ..limits }.max_text_len(), 0);

    // The longest accepted Say fits, and so does the push built from it.
    let room = "r".repeat(MAX_NAME_LEN);
    let from = "f".repeat(MAX_NAME_LEN);
    let text = "t".repeat(limits.max_text_len());
    let say = client(u32::MAX, Request::Say { room: room.clone(), text: text.clone() });
    let max = usize::try_from(limits.max_payload).unwrap();
    assert!(say.encoded_len() <= max);
    let push = ServerFrame::Push(Push::Message {
        room,
        id: u64::MAX,
        ts_us: u64::MAX,
        offset: u64::MAX,
        from: from.clone(),
        text: text.clone(),
        history: true,
    });
    assert!(push.encoded_len() <= max);
    let direct = ServerFrame::Push(Push::Direct { id: 1, ts_us: 1, from, text });
    assert!(direct.encoded_len() <= max);
}

#[test]
fn opcode_classes() {
    for frame in all_requests() {
        let op = frame.request.opcode();
        assert!((0x01..=0x3f).contains(&op));
    }
    for frame in all_server_frames() {
        let op = encode_server(&frame)[0];
        match frame {
            ServerFrame::Reply { .. } => assert!((0x40..=0x7f).contains(&op)),
            ServerFrame::Push(ref push) => {
                assert!(op >= 0x80);
                assert_eq!(push.as_borrowed().opcode(), op);
            }
        }
    }
}
