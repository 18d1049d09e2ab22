//! Property tests for the chat wire protocol codec: every frame round-trips,
//! and no input makes a decoder panic.

use bytes::BytesMut;
use chat_server::protocol::{
    opcode, ClientFrame, ClientFrameRef, ErrorCode, OkBody, Position, PresenceKind, Push, Reply, Request,
    RoomInfo, ServerFrame, ServerFrameRef, ServerLimits, PROTOCOL_VERSION,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{1,32}"
}

/// Any UTF-8 text, including control and multi-byte characters.
fn text() -> impl Strategy<Value = String> {
    vec(any::<char>(), 0..100).prop_map(String::from_iter)
}

/// A non-empty token of at most 40 characters (at most 160 bytes).
fn token() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(vec(any::<char>(), 1..40).prop_map(String::from_iter))
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (name(), token()).prop_map(|(nick, token)| Request::Login { version: PROTOCOL_VERSION, nick, token }),
        (name(), proptest::option::of((any::<u64>(), any::<u64>()))).prop_map(|(room, p)| Request::Join {
            room,
            resume: p.map(|(epoch, offset)| Position { epoch, offset })
        }),
        name().prop_map(|room| Request::Leave { room }),
        (name(), text()).prop_map(|(room, text)| Request::Say { room, text }),
        (name(), text()).prop_map(|(to, text)| Request::Direct { to, text }),
        Just(Request::ListRooms),
        name().prop_map(|room| Request::Who { room }),
        any::<u64>().prop_map(|nonce| Request::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Request::Pong { nonce }),
    ]
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    (any::<u32>(), request()).prop_map(|(request_id, request)| ClientFrame { request_id, request })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    select(ErrorCode::ALL.to_vec())
}

fn limits() -> impl Strategy<Value = ServerLimits> {
    any::<[u32; 6]>().prop_map(|[a, b, c, d, e, f]| ServerLimits {
        max_payload: a,
        rate_per_sec: b,
        max_rooms_per_user: c,
        max_members_per_room: d,
        history_len: e,
        idle_timeout_ms: f,
    })
}

fn ok_body() -> impl Strategy<Value = OkBody> {
    prop_oneof![
        Just(OkBody::Empty),
        limits().prop_map(OkBody::Welcome),
        (any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(members, history, epoch, last_offset, recovered)| OkBody::Joined {
                members,
                history,
                epoch,
                last_offset,
                recovered
            }
        ),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(id, ts_us, offset)| OkBody::Sent {
            id,
            ts_us,
            offset
        }),
        (vec((name(), any::<u32>()), 0..20), 0..1000u32).prop_map(|(rooms, extra)| {
            let rooms: Vec<RoomInfo> =
                rooms.into_iter().map(|(name, members)| RoomInfo { name, members }).collect();
            OkBody::Rooms { total: rooms.len() as u32 + extra, rooms }
        }),
        (vec(name(), 0..20), 0..1000u32)
            .prop_map(|(nicks, extra)| OkBody::Members { total: nicks.len() as u32 + extra, nicks }),
        any::<u64>().prop_map(|nonce| OkBody::Pong { nonce }),
    ]
}

fn push() -> impl Strategy<Value = Push> {
    prop_oneof![
        (name(), any::<u64>(), any::<u64>(), any::<u64>(), name(), text(), any::<bool>()).prop_map(
            |(room, id, ts_us, offset, from, text, history)| Push::Message {
                room,
                id,
                ts_us,
                offset,
                from,
                text,
                history
            }
        ),
        (any::<u64>(), any::<u64>(), name(), text())
            .prop_map(|(id, ts_us, from, text)| { Push::Direct { id, ts_us, from, text } }),
        (name(), name(), select(vec![PresenceKind::Joined, PresenceKind::Left]))
            .prop_map(|(room, nick, kind)| Push::Presence { room, nick, kind }),
        any::<u64>().prop_map(|nonce| Push::Ping { nonce }),
        (any::<u32>(), text())
            .prop_map(|(retry_after_ms, reason)| Push::GoingAway { retry_after_ms, reason }),
        (error_code(), text()).prop_map(|(code, message)| Push::Error { code, message }),
        (name(), any::<u32>()).prop_map(|(room, members)| Push::MemberCount { room, members }),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (any::<u32>(), ok_body()).prop_map(|(id, body)| ServerFrame::ok(id, body)),
        (any::<u32>(), error_code(), text()).prop_map(|(request_id, code, message)| {
            ServerFrame::Reply { request_id, reply: Reply::Error { code, message } }
        }),
        push().prop_map(ServerFrame::Push),
    ]
}

const ALL_OPCODES: [u8; 17] = [
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
];

/// Random payloads, biased towards known opcodes and small lengths so that
/// decoders get past the first byte.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..64),
        (select(ALL_OPCODES.to_vec()), vec(any::<u8>(), 0..64)).prop_map(|(op, mut rest)| {
            rest.insert(0, op);
            rest
        }),
        // Known opcode, plausible header, then short length-prefixed junk.
        (select(ALL_OPCODES.to_vec()), any::<[u8; 5]>(), 0u8..8, vec(any::<u8>(), 0..24)).prop_map(
            |(op, header, len, rest)| {
                let mut p = vec![op];
                p.extend_from_slice(&header);
                p.push(len);
                p.extend_from_slice(&rest);
                p
            }
        ),
    ]
}

/// A valid encoding with a few random edits (byte changes, truncation,
/// insertion).
fn mutated(encoded: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = encoded.len();
    (vec((0..len.max(1), any::<u8>()), 0..4), 0..=len, proptest::option::of((0..=len, any::<u8>()))).prop_map(
        move |(edits, cut, insert)| {
            let mut bytes = encoded.clone();
            for (at, value) in edits {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            if let Some((at, value)) = insert {
                bytes.insert(at.min(bytes.len()), value);
            }
            bytes.truncate(cut.max(1));
            bytes
        },
    )
}

fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    buf.to_vec()
}

fn encode_server(frame: &ServerFrame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    frame.encode(&mut buf);
    buf.to_vec()
}

/// Decodes a client payload; whatever decodes must re-encode to the same
/// bytes (the encoding is canonical), and errors carry the request id
/// exactly when the header is complete.
fn check_client_payload(bytes: &[u8]) -> Result<(), TestCaseError> {
    match ClientFrame::decode(bytes) {
        Ok(frame) => {
            prop_assert_eq!(encode_client(&frame), bytes.to_vec());
            prop_assert_eq!(ClientFrameRef::decode(bytes).ok(), Some(frame.as_borrowed()));
        }
        Err(err) => {
            let id = bytes.get(1..5).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            prop_assert_eq!(err.request_id, id);
            // The response to any error is a valid server frame.
            let response = err.response();
            prop_assert_eq!(ServerFrame::decode(&encode_server(&response)), Ok(response));
        }
    }
    Ok(())
}

fn check_server_payload(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(frame) = ServerFrame::decode(bytes) {
        prop_assert_eq!(encode_server(&frame), bytes.to_vec());
        prop_assert_eq!(ServerFrameRef::decode(bytes).map(ServerFrameRef::into_owned), Ok(frame));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_frames_round_trip(frame in client_frame()) {
        let bytes = encode_client(&frame);
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        prop_assert_eq!(ClientFrame::decode(&bytes), Ok(frame.clone()));
        prop_assert_eq!(ClientFrameRef::decode(&bytes), Ok(frame.as_borrowed()));
    }

    #[test]
    fn server_frames_round_trip(frame in server_frame()) {
        let bytes = encode_server(&frame);
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        prop_assert_eq!(ServerFrame::decode(&bytes), Ok(frame.clone()));
        let borrowed = ServerFrameRef::decode(&bytes);
        prop_assert_eq!(borrowed.map(ServerFrameRef::into_owned), Ok(frame));
    }

    #[test]
    fn encode_message_equals_push_encode(
        room in name(), id in any::<u64>(), ts_us in any::<u64>(), offset in any::<u64>(),
        from in name(), text in text(), history in any::<bool>(),
    ) {
        let mut fast = BytesMut::new();
        Push::encode_message(&room, id, ts_us, offset, &from, &text, history, &mut fast);
        let push = Push::Message { room, id, ts_us, offset, from, text, history };
        let mut slow = BytesMut::new();
        push.encode(&mut slow);
        prop_assert_eq!(&fast, &slow);
        prop_assert_eq!(ServerFrame::decode(&fast), Ok(ServerFrame::Push(push)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in payload()) {
        check_client_payload(&bytes)?;
        check_server_payload(&bytes)?;
    }

    #[test]
    fn mutated_client_frames_never_panic(
        bytes in client_frame().prop_map(|f| encode_client(&f)).prop_flat_map(mutated)
    ) {
        check_client_payload(&bytes)?;
        check_server_payload(&bytes)?;
    }

    #[test]
    fn mutated_server_frames_never_panic(
        bytes in server_frame().prop_map(|f| encode_server(&f)).prop_flat_map(mutated)
    ) {
        check_client_payload(&bytes)?;
        check_server_payload(&bytes)?;
    }
}
