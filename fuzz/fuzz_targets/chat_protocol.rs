//! The chat codec (`chat_server::protocol`) on arbitrary frame payloads, in both directions.
//!
//! The same bytes are decoded as a client frame (`ClientFrameRef::decode`, `ClientFrame::decode`)
//! and as a server frame (`ServerFrameRef::decode`, `ServerFrame::decode`). Invariants:
//!
//! - no decoder panics; the borrowing and owned decoders agree (same value, same error);
//! - whatever decodes re-encodes to exactly the input bytes (decoding is strict, so every frame
//!   has one encoding), `encoded_len` is the encoded size, and the re-encoded bytes decode to the
//!   same value (borrowed and owned);
//! - `Push::encode_message` / `encode_direct` produce the bytes of the equivalent push;
//! - a client payload of 5 bytes or more always yields a `DecodeError` with its request id
//!   (bytes 1..5), and so does a reply (`OK`/`ERROR`) to the server decoder;
//! - `DecodeError::response()` is an error reply with that id (an error push when there is no
//!   id), with the error's code, and it encodes to a payload that decodes back to itself and
//!   fits the 1 KiB allowed before login.
#![no_main]

use bytes::BytesMut;
use chat_server::protocol::{
    opcode, ClientFrame, ClientFrameRef, DecodeError, Push, PushRef, Reply, ServerFrame, ServerFrameRef,
};
use libfuzzer_sys::fuzz_target;

/// Largest server frame payload before login (docs/PROTOCOL.md, section 1).
const PRE_LOGIN_MAX: usize = 1024;

fuzz_target!(|data: &[u8]| {
    client_frame(data);
    server_frame(data);
});

fn id_bytes(data: &[u8]) -> Option<u32> {
    data.get(1..5).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn client_frame(data: &[u8]) {
    let borrowed = ClientFrameRef::decode(data);
    let owned = ClientFrame::decode(data);
    match borrowed {
        Ok(frame) => {
            let owned = owned.expect("ClientFrameRef decoded but ClientFrame did not");
            assert_eq!(owned, frame.into_owned(), "owned and borrowed decoders disagree");

            let mut out = BytesMut::new();
            frame.encode(&mut out);
            assert_eq!(out.len(), frame.encoded_len(), "ClientFrameRef::encoded_len");
            assert_eq!(&out[..], data, "client frame re-encodes to other bytes: {frame:?}");
            assert_eq!(ClientFrameRef::decode(&out), Ok(frame));

            let mut out = BytesMut::new();
            owned.encode(&mut out);
            assert_eq!(out.len(), owned.encoded_len(), "ClientFrame::encoded_len");
            assert_eq!(&out[..], data, "owned client frame re-encodes to other bytes: {owned:?}");
            assert_eq!(ClientFrame::decode(&out).as_ref(), Ok(&owned));
        }
        Err(error) => {
            assert_eq!(owned, Err(error), "owned and borrowed decoders disagree");
            if data.len() >= 5 {
                assert_eq!(error.request_id, id_bytes(data), "request id not kept: {error:?}");
            }
            check_response(&error);
        }
    }
}

/// The server's answer to an undecodable client payload.
fn check_response(error: &DecodeError) {
    let response = error.response();
    match (&response, error.request_id) {
        (ServerFrame::Reply { request_id, reply: Reply::Error { code, .. } }, Some(id)) => {
            assert_eq!(*request_id, id);
            assert_eq!(*code, error.code());
        }
        (ServerFrame::Push(Push::Error { code, .. }), None) => assert_eq!(*code, error.code()),
        _ => panic!("response {response:?} to {error:?}"),
    }
    let mut out = BytesMut::new();
    response.encode(&mut out);
    assert_eq!(out.len(), response.encoded_len(), "ServerFrame::encoded_len of a response");
    assert!(out.len() <= PRE_LOGIN_MAX, "response of {} bytes", out.len());
    assert_eq!(ServerFrame::decode(&out).as_ref(), Ok(&response), "response does not round-trip");
}

fn server_frame(data: &[u8]) {
    let borrowed = ServerFrameRef::decode(data);
    let owned = ServerFrame::decode(data);
    match borrowed {
        Ok(frame) => {
            let owned = owned.expect("ServerFrameRef decoded but ServerFrame did not");
            assert_eq!(owned, frame.clone().into_owned(), "owned and borrowed decoders disagree");

            let mut out = BytesMut::new();
            frame.encode(&mut out);
            assert_eq!(&out[..], data, "server frame re-encodes to other bytes: {frame:?}");
            assert_eq!(ServerFrameRef::decode(&out).as_ref(), Ok(&frame));

            let mut out = BytesMut::new();
            owned.encode(&mut out);
            assert_eq!(out.len(), owned.encoded_len(), "ServerFrame::encoded_len");
            assert_eq!(&out[..], data, "owned server frame re-encodes to other bytes: {owned:?}");
            assert_eq!(ServerFrame::decode(&out).as_ref(), Ok(&owned));

            if let ServerFrameRef::Push(push) = frame {
                check_push_shortcuts(&push, data);
            }
        }
        Err(error) => {
            assert_eq!(owned, Err(error), "owned and borrowed decoders disagree");
            let is_reply = matches!(data.first(), Some(&opcode::OK | &opcode::ERROR));
            if is_reply && data.len() >= 5 {
                assert_eq!(error.request_id, id_bytes(data), "reply id not kept: {error:?}");
            }
            if !is_reply {
                assert_eq!(error.request_id, None, "a push has no request id: {error:?}");
            }
        }
    }
}

/// The encoders the server uses for broadcast agree with the general one.
fn check_push_shortcuts(push: &PushRef<'_>, data: &[u8]) {
    assert_eq!(push.encoded_len(), data.len(), "PushRef::encoded_len");
    let mut out = BytesMut::new();
    match *push {
        PushRef::Message { room, id, ts_us, offset, from, text, history } => {
            Push::encode_message(room, id, ts_us, offset, from, text, history, &mut out)
        }
        PushRef::Direct { id, ts_us, from, text } => Push::encode_direct(id, ts_us, from, text, &mut out),
        _ => return,
    }
    assert_eq!(&out[..], data, "push shortcut encodes other bytes");
}
