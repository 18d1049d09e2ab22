//! Error codes carried on the wire and decoding errors.

use std::fmt;

use super::push::Push;
use super::reply::Reply;
use super::server::ServerFrame;
use super::NameError;

/// An error code carried by error replies and error pushes.
///
/// The numbers are stable and grouped by hundreds: `1xx` malformed or
/// unsupported frames, `2xx` session and login, `3xx` rooms and users,
/// `4xx` limits, `5xx` server conditions. Within a protocol version the set
/// of codes is fixed; a new code comes with a new [`super::PROTOCOL_VERSION`].
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// The frame could not be parsed: empty or truncated payload, trailing
    /// bytes after a complete frame, or an invalid field value.
    Malformed = 100,
    /// The opcode is not a request opcode of this protocol version.
    UnknownOpcode = 101,
    /// A string field is not valid UTF-8.
    InvalidUtf8 = 102,
    /// A nickname or room name breaks the name rules.
    InvalidName = 103,
    /// The frame payload is larger than the server's maximum. Sent as a
    /// push; the server then closes the connection.
    FrameTooLarge = 104,
    /// The protocol version in `Login` is not supported. The server closes
    /// the connection after the reply.
    UnsupportedVersion = 105,
    /// The text of a `Say` or `Direct` request is longer than
    /// `max_payload - 128` bytes.
    TextTooLong = 106,
    /// The request needs a logged-in session.
    NotLoggedIn = 200,
    /// `Login` was sent on a connection that is already logged in.
    AlreadyLoggedIn = 201,
    /// Another connection uses this nickname.
    NicknameTaken = 202,
    /// The token is missing or wrong.
    BadToken = 203,
    /// The room does not exist (it has no members).
    UnknownRoom = 300,
    /// The room exists but the sender is not a member of it.
    NotMember = 301,
    /// The sender is already a member of the room it tries to join.
    AlreadyMember = 302,
    /// No logged-in user has that nickname.
    UnknownUser = 303,
    /// Too many messages per second; the message was dropped.
    RateLimited = 400,
    /// Joining would exceed the maximum number of rooms per user.
    TooManyRooms = 401,
    /// The room has reached its maximum number of members.
    RoomFull = 402,
    /// The server has reached its maximum number of connections. Sent as a
    /// push; the server then closes the connection.
    ServerFull = 403,
    /// An unexpected server-side failure.
    Internal = 500,
    /// The server is shutting down and no longer serves requests.
    ShuttingDown = 501,
    /// The connection was silent for longer than the idle timeout. Sent as
    /// a push; the server then closes the connection.
    IdleTimeout = 502,
    /// The client does not read fast enough and its outgoing queue
    /// overflowed. Sent as a push; the server then closes the connection.
    SlowConsumer = 503,
    /// The message could not be stored (a full disk, a store that went
    /// away): it was not delivered to anyone; the client may retry.
    StoreFailed = 504,
}

impl ErrorCode {
    /// Every error code, in numeric order.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::Malformed,
        ErrorCode::UnknownOpcode,
        ErrorCode::InvalidUtf8,
        ErrorCode::InvalidName,
        ErrorCode::FrameTooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TextTooLong,
        ErrorCode::NotLoggedIn,
        ErrorCode::AlreadyLoggedIn,
        ErrorCode::NicknameTaken,
        ErrorCode::BadToken,
        ErrorCode::UnknownRoom,
        ErrorCode::NotMember,
        ErrorCode::AlreadyMember,
        ErrorCode::UnknownUser,
        ErrorCode::RateLimited,
        ErrorCode::TooManyRooms,
        ErrorCode::RoomFull,
        ErrorCode::ServerFull,
        ErrorCode::Internal,
        ErrorCode::ShuttingDown,
        ErrorCode::IdleTimeout,
        ErrorCode::SlowConsumer,
        ErrorCode::StoreFailed,
    ];

    /// The numeric value sent on the wire.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code with numeric value `value`, or `None` if it is not defined.
    pub const fn from_u16(value: u16) -> Option<ErrorCode> {
        Some(match value {
            100 => ErrorCode::Malformed,
            101 => ErrorCode::UnknownOpcode,
            102 => ErrorCode::InvalidUtf8,
            103 => ErrorCode::InvalidName,
            104 => ErrorCode::FrameTooLarge,
            105 => ErrorCode::UnsupportedVersion,
            106 => ErrorCode::TextTooLong,
            200 => ErrorCode::NotLoggedIn,
            201 => ErrorCode::AlreadyLoggedIn,
            202 => ErrorCode::NicknameTaken,
            203 => ErrorCode::BadToken,
            300 => ErrorCode::UnknownRoom,
            301 => ErrorCode::NotMember,
            302 => ErrorCode::AlreadyMember,
            303 => ErrorCode::UnknownUser,
            400 => ErrorCode::RateLimited,
            401 => ErrorCode::TooManyRooms,
            402 => ErrorCode::RoomFull,
            403 => ErrorCode::ServerFull,
            500 => ErrorCode::Internal,
            501 => ErrorCode::ShuttingDown,
            502 => ErrorCode::IdleTimeout,
            503 => ErrorCode::SlowConsumer,
            504 => ErrorCode::StoreFailed,
            _ => return None,
        })
    }

    /// A short lowercase description, also used by `Display`.
    pub const fn description(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed frame",
            ErrorCode::UnknownOpcode => "unknown opcode",
            ErrorCode::InvalidUtf8 => "invalid UTF-8",
            ErrorCode::InvalidName => "invalid name",
            ErrorCode::FrameTooLarge => "frame too large",
            ErrorCode::UnsupportedVersion => "unsupported protocol version",
            ErrorCode::TextTooLong => "text too long",
            ErrorCode::NotLoggedIn => "not logged in",
            ErrorCode::AlreadyLoggedIn => "already logged in",
            ErrorCode::NicknameTaken => "nickname taken",
            ErrorCode::BadToken => "bad token",
            ErrorCode::UnknownRoom => "unknown room",
            ErrorCode::NotMember => "not a member of the room",
            ErrorCode::AlreadyMember => "already a member of the room",
            ErrorCode::UnknownUser => "unknown user",
            ErrorCode::RateLimited => "rate limited",
            ErrorCode::TooManyRooms => "too many rooms",
            ErrorCode::RoomFull => "room full",
            ErrorCode::ServerFull => "server full",
            ErrorCode::Internal => "internal server error",
            ErrorCode::ShuttingDown => "server shutting down",
            ErrorCode::IdleTimeout => "idle timeout",
            ErrorCode::SlowConsumer => "slow consumer",
            ErrorCode::StoreFailed => "store failed",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.as_u16()
    }
}

impl TryFrom<u16> for ErrorCode {
    /// The undefined value.
    type Error = u16;

    fn try_from(value: u16) -> Result<ErrorCode, u16> {
        ErrorCode::from_u16(value).ok_or(value)
    }
}

/// What was wrong with a payload that failed to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The payload is empty (no opcode).
    Empty,
    /// The opcode is not valid for this direction and protocol version.
    UnknownOpcode(u8),
    /// The payload ends in the middle of a field.
    Truncated,
    /// Bytes remain after a complete frame.
    TrailingBytes,
    /// A string field is not valid UTF-8.
    InvalidUtf8,
    /// A name field breaks the name rules.
    InvalidName(NameError),
    /// `Login` carries an unsupported protocol version.
    UnsupportedVersion(u8),
    /// A field has a value outside its allowed set (the field is named).
    InvalidField(&'static str),
}

impl DecodeErrorKind {
    /// The error code reported to the peer for this problem.
    pub const fn code(self) -> ErrorCode {
        match self {
            DecodeErrorKind::Empty
            | DecodeErrorKind::Truncated
            | DecodeErrorKind::TrailingBytes
            | DecodeErrorKind::InvalidField(_) => ErrorCode::Malformed,
            DecodeErrorKind::UnknownOpcode(_) => ErrorCode::UnknownOpcode,
            DecodeErrorKind::InvalidUtf8 => ErrorCode::InvalidUtf8,
            DecodeErrorKind::InvalidName(_) => ErrorCode::InvalidName,
            DecodeErrorKind::UnsupportedVersion(_) => ErrorCode::UnsupportedVersion,
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::Empty => f.write_str("empty payload"),
            DecodeErrorKind::UnknownOpcode(op) => write!(f, "unknown opcode 0x{op:02x}"),
            DecodeErrorKind::Truncated => f.write_str("truncated frame"),
            DecodeErrorKind::TrailingBytes => f.write_str("trailing bytes after frame"),
            DecodeErrorKind::InvalidUtf8 => f.write_str("string is not valid UTF-8"),
            DecodeErrorKind::InvalidName(e) => write!(f, "invalid name: {e}"),
            DecodeErrorKind::UnsupportedVersion(v) => {
                write!(f, "unsupported protocol version {v} (supported: {})", super::PROTOCOL_VERSION)
            }
            DecodeErrorKind::InvalidField(field) => write!(f, "invalid value in field {field}"),
        }
    }
}

/// A payload that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// The request id of the frame, if it could be read. For client frames
    /// it is readable whenever the payload has at least 5 bytes (every
    /// request starts with an opcode and a request id); for server frames
    /// only replies carry one.
    pub request_id: Option<u32>,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// The error code reported to the peer for this problem.
    pub const fn code(&self) -> ErrorCode {
        self.kind.code()
    }

    /// The frame a server sends back for an undecodable client payload: an
    /// error reply with the request id when it was readable, otherwise an
    /// error push (after which the server may close the connection).
    pub fn response(&self) -> ServerFrame {
        let code = self.code();
        let message = self.kind.to_string();
        match self.request_id {
            Some(request_id) => ServerFrame::Reply { request_id, reply: Reply::Error { code, message } },
            None => ServerFrame::Push(Push::Error { code, message }),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.request_id {
            Some(id) => write!(f, "{} (request id {id})", self.kind),
            None => fmt::Display::fmt(&self.kind, f),
        }
    }
}

impl std::error::Error for DecodeError {}
