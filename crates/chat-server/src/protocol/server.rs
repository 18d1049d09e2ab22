//! Server-to-client frames: a reply or a push.

use bytes::BytesMut;

use super::error::{DecodeError, DecodeErrorKind, ErrorCode};
use super::opcode;
use super::push::{Push, PushRef};
use super::reply::{OkBody, Reply};
use super::wire::Reader;

/// A complete server frame payload (owned form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerFrame {
    /// The answer to the request with id `request_id`.
    Reply {
        /// The id of the request being answered.
        request_id: u32,
        /// The answer.
        reply: Reply,
    },
    /// An unsolicited frame.
    Push(Push),
}

/// A server frame whose push, if any, borrows its strings from the payload.
/// Replies are always decoded owned: there is one per request, and some
/// carry lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerFrameRef<'a> {
    /// See [`ServerFrame::Reply`].
    Reply {
        /// The id of the request being answered.
        request_id: u32,
        /// The answer.
        reply: Reply,
    },
    /// See [`ServerFrame::Push`].
    Push(PushRef<'a>),
}

impl ServerFrame {
    /// An `OK` reply to request `request_id`.
    pub fn ok(request_id: u32, body: OkBody) -> ServerFrame {
        ServerFrame::Reply { request_id, reply: Reply::Ok(body) }
    }

    /// An error reply to request `request_id`.
    pub fn error(request_id: u32, code: ErrorCode, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Reply { request_id, reply: Reply::Error { code, message: message.into() } }
    }

    /// Decodes a frame payload (without the length prefix).
    pub fn decode(payload: &[u8]) -> Result<ServerFrame, DecodeError> {
        ServerFrameRef::decode(payload).map(ServerFrameRef::into_owned)
    }

    /// Appends the payload (without the length prefix) to `dst`.
    ///
    /// Strings longer than [`MAX_STR8_LEN`](super::MAX_STR8_LEN) bytes in
    /// length-prefixed fields are truncated. The caller keeps lists short
    /// enough for the payload to fit the maximum size (see
    /// [`encoded_len`](Self::encoded_len)).
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            ServerFrame::Reply { request_id, reply } => reply.encode(*request_id, dst),
            ServerFrame::Push(push) => push.encode(dst),
        }
    }

    /// Exact size of the payload [`encode`](Self::encode) produces.
    pub fn encoded_len(&self) -> usize {
        match self {
            ServerFrame::Reply { reply, .. } => 5 + reply.body_len(),
            ServerFrame::Push(push) => push.as_borrowed().encoded_len(),
        }
    }
}

impl<'a> ServerFrameRef<'a> {
    /// Decodes a frame payload (without the length prefix), borrowing the
    /// strings of pushes from it. Names are validated, strings must be
    /// UTF-8, error codes must be defined and the whole payload must be
    /// consumed.
    pub fn decode(payload: &'a [u8]) -> Result<ServerFrameRef<'a>, DecodeError> {
        let mut r = Reader::new(payload);
        let op = r.u8().map_err(|_| r.err(DecodeErrorKind::Empty))?;
        let frame = match op {
            opcode::OK | opcode::ERROR => {
                let request_id = r.u32()?;
                r.set_request_id(request_id);
                let reply = Reply::decode(op, &mut r)?;
                ServerFrameRef::Reply { request_id, reply }
            }
            _ => ServerFrameRef::Push(PushRef::decode_body(op, &mut r)?),
        };
        r.finish()?;
        Ok(frame)
    }

    /// Appends the payload (without the length prefix) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        match self {
            ServerFrameRef::Reply { request_id, reply } => reply.encode(*request_id, dst),
            ServerFrameRef::Push(push) => push.encode(dst),
        }
    }

    /// Converts into an owned [`ServerFrame`].
    pub fn into_owned(self) -> ServerFrame {
        match self {
            ServerFrameRef::Reply { request_id, reply } => ServerFrame::Reply { request_id, reply },
            ServerFrameRef::Push(push) => ServerFrame::Push(push.into_owned()),
        }
    }
}
