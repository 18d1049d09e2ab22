//! The chat wire protocol: message types and an I/O-free codec.
//!
//! This module is deterministic and does no I/O (in the spirit of
//! `quinn-proto`): it turns frame *payloads* into typed values and back.
//! The transport (a 4-byte big-endian length prefix per frame) is handled by
//! the `framing` crate; everything here works on the bytes after the prefix
//! has been stripped. The normative description of the protocol, written so
//! that a client can be implemented in another language, is
//! `docs/PROTOCOL.md` at the root of the workspace.
//!
//! # Overview
//!
//! * The client sends [`ClientFrame`]s: a [`Request`] plus a client-chosen
//!   request id. Every request gets exactly one [`Reply`] carrying the same
//!   id, except [`Request::Pong`] (an answer to a server ping) which gets
//!   none unless it is malformed.
//! * The server sends [`ServerFrame`]s: either a reply or a [`Push`]
//!   (room message, direct message, presence, ping, going-away, error).
//! * Decoding is strict: unknown opcodes, truncated fields, invalid UTF-8,
//!   names breaking the [name rules](validate_name), unknown flag bits and
//!   trailing bytes are all errors. A [`DecodeError`] remembers the request id
//!   when it could be read, so the server can answer with
//!   [`DecodeError::response`].
//! * Borrowing variants ([`ClientFrameRef`], [`RequestRef`], [`PushRef`],
//!   [`ServerFrameRef`]) decode without allocating; the owned types are thin
//!   conversions over them. [`Push::encode_message`] encodes a room message
//!   straight from borrowed parts, so the server can encode it once and
//!   share the bytes with every member.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use chat_server::protocol::{ClientFrame, Request, PROTOCOL_VERSION};
//!
//! let frame = ClientFrame {
//!     request_id: 1,
//!     request: Request::Login {
//!         version: PROTOCOL_VERSION,
//!         nick: "alice".into(),
//!         token: None,
//!     },
//! };
//! let mut payload = BytesMut::new();
//! frame.encode(&mut payload);
//! assert_eq!(ClientFrame::decode(&payload), Ok(frame));
//! ```

// Peer bytes must never be able to panic this module.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable,
        clippy::todo
    )
)]
#![warn(missing_docs)]

mod client;
mod error;
mod push;
mod reply;
mod server;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;

pub use client::{ClientFrame, ClientFrameRef, Request, RequestRef};
pub use error::{DecodeError, DecodeErrorKind, ErrorCode};
pub use push::{PresenceKind, Push, PushRef};
pub use reply::{OkBody, Position, Reply, RoomInfo, ServerLimits};
pub use server::{ServerFrame, ServerFrameRef};

/// The protocol version implemented by this module, sent in
/// [`Request::Login`]. A server answers any other version with
/// [`ErrorCode::UnsupportedVersion`] and closes the connection.
pub const PROTOCOL_VERSION: u8 = 2;

/// Maximum length of a nickname or room name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Maximum length of a length-prefixed string (`str8`) such as a login
/// token, in bytes. Longer strings are truncated by the encoders (at a UTF-8
/// character boundary).
pub const MAX_STR8_LEN: usize = 255;

/// Bytes of a frame payload reserved for everything but the text in
/// message frames: the longest text a server accepts in a `Say` or `Direct`
/// request is `max_payload - TEXT_HEADROOM` bytes (see
/// [`ServerLimits::max_text_len`]), which guarantees that the resulting push
/// (with room name, sender name, id and timestamp) still fits in
/// `max_payload`.
pub const TEXT_HEADROOM: u32 = 128;

/// Default interval after which a server pings a silent client (20 s).
/// This is server configuration: it is not carried on the wire.
pub const DEFAULT_PING_INTERVAL_MS: u32 = 20_000;

/// Frame opcodes: the first byte of every payload.
///
/// Requests (client to server) use `0x01..=0x3F`, replies `0x40..=0x7F` and
/// pushes (server to client, unsolicited) `0x80..=0xFF`.
pub mod opcode {
    /// Request: log in with a nickname and optional token.
    pub const LOGIN: u8 = 0x01;
    /// Request: join (and possibly create) a room.
    pub const JOIN: u8 = 0x02;
    /// Request: leave a room.
    pub const LEAVE: u8 = 0x03;
    /// Request: post a message to a room.
    pub const SAY: u8 = 0x04;
    /// Request: send a direct message to a user.
    pub const DIRECT: u8 = 0x05;
    /// Request: list rooms with their member counts.
    pub const LIST_ROOMS: u8 = 0x06;
    /// Request: list the members of a room.
    pub const WHO: u8 = 0x07;
    /// Request: client ping; answered with an `OK` reply carrying a pong body.
    pub const PING: u8 = 0x08;
    /// Request: answer to a server ping push (gets no reply).
    pub const PONG: u8 = 0x09;

    /// Reply: success, followed by a body kind (see [`super::body_kind`]).
    pub const OK: u8 = 0x40;
    /// Reply: failure, with an error code and message.
    pub const ERROR: u8 = 0x41;

    /// Push: a message posted to a room (live or history).
    pub const MESSAGE: u8 = 0x80;
    /// Push: a direct message.
    pub const DIRECT_MESSAGE: u8 = 0x81;
    /// Push: a user joined or left a room.
    pub const PRESENCE: u8 = 0x82;
    /// Push: server ping; the client answers with a [`PONG`] request.
    pub const SERVER_PING: u8 = 0x83;
    /// Push: the server is shutting down or restarting.
    pub const GOING_AWAY: u8 = 0x84;
    /// Push: an error not tied to a request, usually sent just before close.
    pub const ERROR_PUSH: u8 = 0x85;
    /// Push: a room's member count (large rooms, instead of presence).
    pub const MEMBER_COUNT: u8 = 0x86;
}

/// Kinds of `OK` reply bodies: the byte after the request id in an
/// [`opcode::OK`] reply, which makes server frames decodable without
/// knowing which request they answer.
pub mod body_kind {
    /// No body (answers `Leave`).
    pub const EMPTY: u8 = 0x00;
    /// Server limits (answers `Login`).
    pub const WELCOME: u8 = 0x01;
    /// Member count and history count (answers `Join`).
    pub const JOINED: u8 = 0x02;
    /// Message id and timestamp (answers `Say` and `Direct`).
    pub const SENT: u8 = 0x03;
    /// Room list (answers `ListRooms`).
    pub const ROOMS: u8 = 0x04;
    /// Member list (answers `Who`).
    pub const MEMBERS: u8 = 0x05;
    /// Echoed nonce (answers `Ping`).
    pub const PONG: u8 = 0x06;
}

/// Why a name (nickname or room name) is invalid; see [`validate_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong {
        /// The actual length in bytes.
        len: usize,
    },
    /// The name contains a character outside `[A-Za-z0-9_.-]`.
    InvalidChar {
        /// The first offending character.
        ch: char,
    },
}

impl NameError {
    /// The error code a server reports for this problem
    /// ([`ErrorCode::InvalidName`]).
    pub const fn code(self) -> ErrorCode {
        ErrorCode::InvalidName
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("name is empty"),
            NameError::TooLong { len } => {
                write!(f, "name is {len} bytes long, the maximum is {MAX_NAME_LEN}")
            }
            NameError::InvalidChar { ch } => {
                write!(f, "name contains {ch:?}; allowed characters are A-Z a-z 0-9 _ . -")
            }
        }
    }
}

impl std::error::Error for NameError {}

/// Returns true if `b` may appear in a name: `[A-Za-z0-9_.-]`.
const fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Checks the rules shared by nicknames and room names: 1 to
/// [`MAX_NAME_LEN`] (32) bytes, each one of `A-Z`, `a-z`, `0-9`, `_`, `.`
/// or `-`. Names are compared byte for byte (case-sensitive).
///
/// The decoders apply this check to every name field, so names obtained
/// from a successful decode are always valid.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(ch) = name.chars().find(|&c| !(c.is_ascii() && is_name_byte(c as u8))) {
        return Err(NameError::InvalidChar { ch });
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    Ok(())
}
