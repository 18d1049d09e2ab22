//! Client-to-server frames: requests.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, DecodeErrorKind};
use super::opcode;
use super::wire::{put_str8, str8_len, Reader};
use super::{Position, PROTOCOL_VERSION};

/// Size of the header shared by every client frame: opcode and request id.
const HEADER_LEN: usize = 1 + 4;
/// Bit 0 of a `Join`'s flags: a resume position follows.
const JOIN_RESUME: u8 = 0x01;

/// A request from the client (owned form). See [`RequestRef`] for the
/// borrowed form the decoders produce without allocating.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    /// Log in. Must be the first request; answered with
    /// [`OkBody::Welcome`](super::OkBody::Welcome).
    Login {
        /// Protocol version spoken by the client ([`PROTOCOL_VERSION`]).
        version: u8,
        /// Requested nickname, unique across the server.
        nick: String,
        /// Shared-secret token, if any. An empty token is encoded exactly
        /// like `None` (and decodes as `None`).
        token: Option<String>,
    },
    /// Join a room, creating it if it does not exist. Answered with
    /// [`OkBody::Joined`](super::OkBody::Joined), then the room's history:
    /// the messages after `resume` when they can be recovered, else the
    /// recent ones.
    Join {
        /// Room name.
        room: String,
        /// The last position the client saw in this room, to get exactly
        /// the messages after it.
        resume: Option<Position>,
    },
    /// Leave a room. Answered with [`OkBody::Empty`](super::OkBody::Empty).
    Leave {
        /// Room name.
        room: String,
    },
    /// Post a message to a room the client is a member of. Answered with
    /// [`OkBody::Sent`](super::OkBody::Sent).
    Say {
        /// Room name.
        room: String,
        /// Message text.
        text: String,
    },
    /// Send a direct message to a logged-in user. Answered with
    /// [`OkBody::Sent`](super::OkBody::Sent).
    Direct {
        /// Recipient nickname.
        to: String,
        /// Message text.
        text: String,
    },
    /// List rooms. Answered with [`OkBody::Rooms`](super::OkBody::Rooms).
    ListRooms,
    /// List a room's members. Answered with
    /// [`OkBody::Members`](super::OkBody::Members).
    Who {
        /// Room name.
        room: String,
    },
    /// Client ping. Answered with [`OkBody::Pong`](super::OkBody::Pong)
    /// echoing the nonce.
    Ping {
        /// Opaque value echoed by the server.
        nonce: u64,
    },
    /// Answer to a server [`Push::Ping`](super::Push::Ping). Gets no reply.
    Pong {
        /// The nonce of the server ping.
        nonce: u64,
    },
}

/// A request borrowing its strings from the payload it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestRef<'a> {
    /// See [`Request::Login`].
    Login {
        /// Protocol version spoken by the client.
        version: u8,
        /// Requested nickname.
        nick: &'a str,
        /// Shared-secret token; `Some("")` is encoded like `None`.
        token: Option<&'a str>,
    },
    /// See [`Request::Join`].
    Join {
        /// Room name.
        room: &'a str,
        /// The last position the client saw in this room.
        resume: Option<Position>,
    },
    /// See [`Request::Leave`].
    Leave {
        /// Room name.
        room: &'a str,
    },
    /// See [`Request::Say`].
    Say {
        /// Room name.
        room: &'a str,
        /// Message text.
        text: &'a str,
    },
    /// See [`Request::Direct`].
    Direct {
        /// Recipient nickname.
        to: &'a str,
        /// Message text.
        text: &'a str,
    },
    /// See [`Request::ListRooms`].
    ListRooms,
    /// See [`Request::Who`].
    Who {
        /// Room name.
        room: &'a str,
    },
    /// See [`Request::Ping`].
    Ping {
        /// Opaque value echoed by the server.
        nonce: u64,
    },
    /// See [`Request::Pong`].
    Pong {
        /// The nonce of the server ping.
        nonce: u64,
    },
}

impl Request {
    /// The opcode of this request (see [`opcode`]).
    pub fn opcode(&self) -> u8 {
        self.as_borrowed().opcode()
    }

    /// A borrowed view of this request.
    pub fn as_borrowed(&self) -> RequestRef<'_> {
        match self {
            Request::Login { version, nick, token } => {
                RequestRef::Login { version: *version, nick, token: token.as_deref() }
            }
            Request::Join { room, resume } => RequestRef::Join { room, resume: *resume },
            Request::Leave { room } => RequestRef::Leave { room },
            Request::Say { room, text } => RequestRef::Say { room, text },
            Request::Direct { to, text } => RequestRef::Direct { to, text },
            Request::ListRooms => RequestRef::ListRooms,
            Request::Who { room } => RequestRef::Who { room },
            Request::Ping { nonce } => RequestRef::Ping { nonce: *nonce },
            Request::Pong { nonce } => RequestRef::Pong { nonce: *nonce },
        }
    }
}

impl RequestRef<'_> {
    /// The opcode of this request (see [`opcode`]).
    pub fn opcode(&self) -> u8 {
        match self {
            RequestRef::Login { .. } => opcode::LOGIN,
            RequestRef::Join { .. } => opcode::JOIN,
            RequestRef::Leave { .. } => opcode::LEAVE,
            RequestRef::Say { .. } => opcode::SAY,
            RequestRef::Direct { .. } => opcode::DIRECT,
            RequestRef::ListRooms => opcode::LIST_ROOMS,
            RequestRef::Who { .. } => opcode::WHO,
            RequestRef::Ping { .. } => opcode::PING,
            RequestRef::Pong { .. } => opcode::PONG,
        }
    }

    /// Copies the borrowed strings into an owned [`Request`].
    pub fn into_owned(self) -> Request {
        match self {
            RequestRef::Login { version, nick, token } => Request::Login {
                version,
                nick: nick.to_owned(),
                token: token.filter(|t| !t.is_empty()).map(str::to_owned),
            },
            RequestRef::Join { room, resume } => Request::Join { room: room.into(), resume },
            RequestRef::Leave { room } => Request::Leave { room: room.into() },
            RequestRef::Say { room, text } => Request::Say { room: room.into(), text: text.into() },
            RequestRef::Direct { to, text } => Request::Direct { to: to.into(), text: text.into() },
            RequestRef::ListRooms => Request::ListRooms,
            RequestRef::Who { room } => Request::Who { room: room.into() },
            RequestRef::Ping { nonce } => Request::Ping { nonce },
            RequestRef::Pong { nonce } => Request::Pong { nonce },
        }
    }

    /// Size of the encoded body (after opcode and request id).
    fn body_len(&self) -> usize {
        match self {
            RequestRef::Login { nick, token, .. } => 1 + str8_len(nick) + str8_len(token.unwrap_or_default()),
            RequestRef::Join { room, resume } => str8_len(room) + 1 + resume.map_or(0, |_| 16),
            RequestRef::Leave { room } | RequestRef::Who { room } => str8_len(room),
            RequestRef::Say { room: name, text } | RequestRef::Direct { to: name, text } => {
                str8_len(name) + text.len()
            }
            RequestRef::ListRooms => 0,
            RequestRef::Ping { .. } | RequestRef::Pong { .. } => 8,
        }
    }

    fn encode_body(&self, dst: &mut BytesMut) {
        match self {
            RequestRef::Login { version, nick, token } => {
                dst.put_u8(*version);
                put_str8(dst, nick);
                put_str8(dst, token.unwrap_or_default());
            }
            RequestRef::Join { room, resume } => {
                put_str8(dst, room);
                match resume {
                    Some(p) => {
                        dst.put_u8(JOIN_RESUME);
                        dst.put_u64(p.epoch);
                        dst.put_u64(p.offset);
                    }
                    None => dst.put_u8(0),
                }
            }
            RequestRef::Leave { room } | RequestRef::Who { room } => put_str8(dst, room),
            RequestRef::Say { room: name, text } | RequestRef::Direct { to: name, text } => {
                put_str8(dst, name);
                dst.put_slice(text.as_bytes());
            }
            RequestRef::ListRooms => {}
            RequestRef::Ping { nonce } | RequestRef::Pong { nonce } => dst.put_u64(*nonce),
        }
    }
}

/// Whether `op` is a request opcode of this protocol version.
const fn is_request_opcode(op: u8) -> bool {
    matches!(op, opcode::LOGIN..=opcode::PONG)
}

/// A complete client frame payload (owned form): a request and the
/// client-chosen id that the reply will carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientFrame {
    /// Client-chosen id, echoed in the reply.
    pub request_id: u32,
    /// The request.
    pub request: Request,
}

/// A client frame borrowing its strings from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientFrameRef<'a> {
    /// Client-chosen id, echoed in the reply.
    pub request_id: u32,
    /// The request.
    pub request: RequestRef<'a>,
}

impl ClientFrame {
    /// Decodes a frame payload (without the length prefix).
    pub fn decode(payload: &[u8]) -> Result<ClientFrame, DecodeError> {
        ClientFrameRef::decode(payload).map(ClientFrameRef::into_owned)
    }

    /// Appends the payload (without the length prefix) to `dst`.
    ///
    /// Strings longer than [`MAX_STR8_LEN`](super::MAX_STR8_LEN) bytes in
    /// length-prefixed fields are truncated; names should be checked with
    /// [`validate_name`](super::validate_name) beforehand, since the server
    /// rejects invalid ones.
    pub fn encode(&self, dst: &mut BytesMut) {
        self.as_borrowed().encode(dst);
    }

    /// Exact size of the payload [`encode`](Self::encode) produces.
    pub fn encoded_len(&self) -> usize {
        self.as_borrowed().encoded_len()
    }

    /// A borrowed view of this frame.
    pub fn as_borrowed(&self) -> ClientFrameRef<'_> {
        ClientFrameRef { request_id: self.request_id, request: self.request.as_borrowed() }
    }
}

impl<'a> ClientFrameRef<'a> {
    /// Decodes a frame payload (without the length prefix), borrowing
    /// strings from it. Names are validated, strings must be UTF-8 and the
    /// whole payload must be consumed.
    ///
    /// On error, [`DecodeError::request_id`] is set whenever the payload is
    /// at least 5 bytes long, including for unknown opcodes, because every
    /// request starts with an opcode and a request id.
    pub fn decode(payload: &'a [u8]) -> Result<ClientFrameRef<'a>, DecodeError> {
        let mut r = Reader::new(payload);
        let op = r.u8().map_err(|_| r.err(DecodeErrorKind::Empty))?;
        let request_id = r.u32().map_err(|e| {
            if is_request_opcode(op) {
                e
            } else {
                r.err(DecodeErrorKind::UnknownOpcode(op))
            }
        })?;
        r.set_request_id(request_id);
        let request = match op {
            opcode::LOGIN => {
                let version = r.u8()?;
                if version != PROTOCOL_VERSION {
                    // Checked before the rest: another version may use
                    // another layout.
                    return Err(r.err(DecodeErrorKind::UnsupportedVersion(version)));
                }
                let nick = r.name()?;
                let token = r.opt_str8()?;
                RequestRef::Login { version, nick, token }
            }
            opcode::JOIN => {
                let room = r.name()?;
                let resume = match r.u8()? {
                    0 => None,
                    JOIN_RESUME => Some(Position { epoch: r.u64()?, offset: r.u64()? }),
                    _ => return Err(r.err(DecodeErrorKind::InvalidField("join flags"))),
                };
                RequestRef::Join { room, resume }
            }
            opcode::LEAVE => RequestRef::Leave { room: r.name()? },
            opcode::SAY => {
                let room = r.name()?;
                let text = r.text()?;
                RequestRef::Say { room, text }
            }
            opcode::DIRECT => {
                let to = r.name()?;
                let text = r.text()?;
                RequestRef::Direct { to, text }
            }
            opcode::LIST_ROOMS => RequestRef::ListRooms,
            opcode::WHO => RequestRef::Who { room: r.name()? },
            opcode::PING => RequestRef::Ping { nonce: r.u64()? },
            opcode::PONG => RequestRef::Pong { nonce: r.u64()? },
            _ => return Err(r.err(DecodeErrorKind::UnknownOpcode(op))),
        };
        r.finish()?;
        Ok(ClientFrameRef { request_id, request })
    }

    /// Appends the payload (without the length prefix) to `dst`; see
    /// [`ClientFrame::encode`].
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_u8(self.request.opcode());
        dst.put_u32(self.request_id);
        self.request.encode_body(dst);
    }

    /// Exact size of the payload [`encode`](Self::encode) produces.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.request.body_len()
    }

    /// Copies the borrowed strings into an owned [`ClientFrame`].
    pub fn into_owned(self) -> ClientFrame {
        ClientFrame { request_id: self.request_id, request: self.request.into_owned() }
    }
}
