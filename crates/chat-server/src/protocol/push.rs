//! Pushes: frames the server sends on its own initiative.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, DecodeErrorKind, ErrorCode};
use super::opcode;
use super::wire::{put_str8, str8_len, Reader};

/// Bit 0 of the flags byte of a message push: the message is history.
const FLAG_HISTORY: u8 = 0x01;

/// Kind of a presence event.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PresenceKind {
    /// The user joined the room.
    Joined = 1,
    /// The user left the room (by request or by disconnecting).
    Left = 2,
}

impl PresenceKind {
    fn from_u8(value: u8) -> Option<PresenceKind> {
        match value {
            1 => Some(PresenceKind::Joined),
            2 => Some(PresenceKind::Left),
            _ => None,
        }
    }
}

/// A frame the server sends on its own initiative (owned form).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Push {
    /// A message posted to a room the client is a member of.
    Message {
        /// Room name.
        room: String,
        /// Server-assigned message id.
        id: u64,
        /// Server timestamp, unix microseconds.
        ts_us: u64,
        /// The message's position in the room's log (1, 2, 3, ...).
        offset: u64,
        /// Sender nickname.
        from: String,
        /// Message text.
        text: String,
        /// Whether this is a history message replayed after a join.
        history: bool,
    },
    /// A direct message to the client.
    Direct {
        /// Server-assigned message id.
        id: u64,
        /// Server timestamp, unix microseconds.
        ts_us: u64,
        /// Sender nickname.
        from: String,
        /// Message text.
        text: String,
    },
    /// Another user joined or left a room the client is a member of.
    Presence {
        /// Room name.
        room: String,
        /// The user's nickname.
        nick: String,
        /// Joined or left.
        kind: PresenceKind,
    },
    /// Server ping; the client answers with [`Request::Pong`](super::Request::Pong).
    Ping {
        /// Opaque value to echo.
        nonce: u64,
    },
    /// The server is shutting down or restarting.
    GoingAway {
        /// Suggested delay before reconnecting, in milliseconds; 0 means no
        /// hint.
        retry_after_ms: u32,
        /// Human-readable reason.
        reason: String,
    },
    /// An error not tied to a request, typically sent just before the
    /// server closes the connection.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// The member count of a room the client is in, sent instead of
    /// presence events in rooms above the server's presence threshold.
    MemberCount {
        /// Room name.
        room: String,
        /// Members now.
        members: u32,
    },
}

/// A push borrowing its strings from the payload it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushRef<'a> {
    /// See [`Push::Message`].
    Message {
        /// Room name.
        room: &'a str,
        /// Server-assigned message id.
        id: u64,
        /// Server timestamp, unix microseconds.
        ts_us: u64,
        /// The message's position in the room's log.
        offset: u64,
        /// Sender nickname.
        from: &'a str,
        /// Message text.
        text: &'a str,
        /// Whether this is a history message.
        history: bool,
    },
    /// See [`Push::Direct`].
    Direct {
        /// Server-assigned message id.
        id: u64,
        /// Server timestamp, unix microseconds.
        ts_us: u64,
        /// Sender nickname.
        from: &'a str,
        /// Message text.
        text: &'a str,
    },
    /// See [`Push::Presence`].
    Presence {
        /// Room name.
        room: &'a str,
        /// The user's nickname.
        nick: &'a str,
        /// Joined or left.
        kind: PresenceKind,
    },
    /// See [`Push::Ping`].
    Ping {
        /// Opaque value to echo.
        nonce: u64,
    },
    /// See [`Push::GoingAway`].
    GoingAway {
        /// Suggested delay before reconnecting, in milliseconds; 0 means no
        /// hint.
        retry_after_ms: u32,
        /// Human-readable reason.
        reason: &'a str,
    },
    /// See [`Push::Error`].
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable detail.
        message: &'a str,
    },
    /// See [`Push::MemberCount`].
    MemberCount {
        /// Room name.
        room: &'a str,
        /// Members now.
        members: u32,
    },
}

impl Push {
    /// Appends the payload of a room message push to `dst` without building
    /// a [`Push`]: the server encodes each message once and shares the bytes
    /// with every member.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_message(
        room: &str,
        id: u64,
        ts_us: u64,
        offset: u64,
        from: &str,
        text: &str,
        history: bool,
        dst: &mut BytesMut,
    ) {
        PushRef::Message { room, id, ts_us, offset, from, text, history }.encode(dst);
    }

    /// Appends the payload of a direct message push to `dst` without
    /// building a [`Push`].
    pub fn encode_direct(id: u64, ts_us: u64, from: &str, text: &str, dst: &mut BytesMut) {
        PushRef::Direct { id, ts_us, from, text }.encode(dst);
    }

    /// Appends the payload (without the length prefix) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        self.as_borrowed().encode(dst);
    }

    /// A borrowed view of this push.
    pub fn as_borrowed(&self) -> PushRef<'_> {
        match self {
            Push::Message { room, id, ts_us, offset, from, text, history } => PushRef::Message {
                room,
                id: *id,
                ts_us: *ts_us,
                offset: *offset,
                from,
                text,
                history: *history,
            },
            Push::Direct { id, ts_us, from, text } => PushRef::Direct { id: *id, ts_us: *ts_us, from, text },
            Push::Presence { room, nick, kind } => PushRef::Presence { room, nick, kind: *kind },
            Push::Ping { nonce } => PushRef::Ping { nonce: *nonce },
            Push::GoingAway { retry_after_ms, reason } => {
                PushRef::GoingAway { retry_after_ms: *retry_after_ms, reason }
            }
            Push::Error { code, message } => PushRef::Error { code: *code, message },
            Push::MemberCount { room, members } => PushRef::MemberCount { room, members: *members },
        }
    }
}

impl<'a> PushRef<'a> {
    /// The opcode of this push (see [`opcode`]).
    pub fn opcode(&self) -> u8 {
        match self {
            PushRef::Message { .. } => opcode::MESSAGE,
            PushRef::Direct { .. } => opcode::DIRECT_MESSAGE,
            PushRef::Presence { .. } => opcode::PRESENCE,
            PushRef::Ping { .. } => opcode::SERVER_PING,
            PushRef::GoingAway { .. } => opcode::GOING_AWAY,
            PushRef::Error { .. } => opcode::ERROR_PUSH,
            PushRef::MemberCount { .. } => opcode::MEMBER_COUNT,
        }
    }

    /// Exact size of the payload [`encode`](Self::encode) produces.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            PushRef::Message { room, from, text, .. } => {
                1 + 24 + str8_len(room) + str8_len(from) + text.len()
            }
            PushRef::Direct { from, text, .. } => 16 + str8_len(from) + text.len(),
            PushRef::Presence { room, nick, .. } => 1 + str8_len(room) + str8_len(nick),
            PushRef::Ping { .. } => 8,
            PushRef::GoingAway { reason, .. } => 4 + reason.len(),
            PushRef::Error { message, .. } => 2 + message.len(),
            PushRef::MemberCount { room, .. } => str8_len(room) + 4,
        }
    }

    /// Appends the payload (without the length prefix) to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_u8(self.opcode());
        match self {
            PushRef::Message { room, id, ts_us, offset, from, text, history } => {
                dst.put_u8(if *history { FLAG_HISTORY } else { 0 });
                dst.put_u64(*id);
                dst.put_u64(*ts_us);
                dst.put_u64(*offset);
                put_str8(dst, room);
                put_str8(dst, from);
                dst.put_slice(text.as_bytes());
            }
            PushRef::Direct { id, ts_us, from, text } => {
                dst.put_u64(*id);
                dst.put_u64(*ts_us);
                put_str8(dst, from);
                dst.put_slice(text.as_bytes());
            }
            PushRef::Presence { room, nick, kind } => {
                dst.put_u8(*kind as u8);
                put_str8(dst, room);
                put_str8(dst, nick);
            }
            PushRef::Ping { nonce } => dst.put_u64(*nonce),
            PushRef::GoingAway { retry_after_ms, reason } => {
                dst.put_u32(*retry_after_ms);
                dst.put_slice(reason.as_bytes());
            }
            PushRef::Error { code, message } => {
                dst.put_u16(code.as_u16());
                dst.put_slice(message.as_bytes());
            }
            PushRef::MemberCount { room, members } => {
                put_str8(dst, room);
                dst.put_u32(*members);
            }
        }
    }

    /// Decodes the body of the push with opcode `op`.
    pub(super) fn decode_body(op: u8, r: &mut Reader<'a>) -> Result<PushRef<'a>, DecodeError> {
        Ok(match op {
            opcode::MESSAGE => {
                let flags = r.u8()?;
                if flags & !FLAG_HISTORY != 0 {
                    return Err(r.err(DecodeErrorKind::InvalidField("message flags")));
                }
                let id = r.u64()?;
                let ts_us = r.u64()?;
                let offset = r.u64()?;
                let room = r.name()?;
                let from = r.name()?;
                let text = r.text()?;
                PushRef::Message { room, id, ts_us, offset, from, text, history: flags & FLAG_HISTORY != 0 }
            }
            opcode::DIRECT_MESSAGE => {
                let id = r.u64()?;
                let ts_us = r.u64()?;
                let from = r.name()?;
                let text = r.text()?;
                PushRef::Direct { id, ts_us, from, text }
            }
            opcode::PRESENCE => {
                let kind = PresenceKind::from_u8(r.u8()?)
                    .ok_or_else(|| r.err(DecodeErrorKind::InvalidField("presence kind")))?;
                let room = r.name()?;
                let nick = r.name()?;
                PushRef::Presence { room, nick, kind }
            }
            opcode::SERVER_PING => PushRef::Ping { nonce: r.u64()? },
            opcode::GOING_AWAY => {
                let retry_after_ms = r.u32()?;
                let reason = r.text()?;
                PushRef::GoingAway { retry_after_ms, reason }
            }
            opcode::ERROR_PUSH => {
                let code = r.error_code()?;
                let message = r.text()?;
                PushRef::Error { code, message }
            }
            opcode::MEMBER_COUNT => {
                let room = r.name()?;
                let members = r.u32()?;
                PushRef::MemberCount { room, members }
            }
            _ => return Err(r.err(DecodeErrorKind::UnknownOpcode(op))),
        })
    }

    /// Copies the borrowed strings into an owned [`Push`].
    pub fn into_owned(self) -> Push {
        match self {
            PushRef::Message { room, id, ts_us, offset, from, text, history } => Push::Message {
                room: room.into(),
                id,
                ts_us,
                offset,
                from: from.into(),
                text: text.into(),
                history,
            },
            PushRef::Direct { id, ts_us, from, text } => {
                Push::Direct { id, ts_us, from: from.into(), text: text.into() }
            }
            PushRef::Presence { room, nick, kind } => {
                Push::Presence { room: room.into(), nick: nick.into(), kind }
            }
            PushRef::Ping { nonce } => Push::Ping { nonce },
            PushRef::GoingAway { retry_after_ms, reason } => {
                Push::GoingAway { retry_after_ms, reason: reason.into() }
            }
            PushRef::Error { code, message } => Push::Error { code, message: message.into() },
            PushRef::MemberCount { room, members } => Push::MemberCount { room: room.into(), members },
        }
    }
}
