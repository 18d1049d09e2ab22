//! [`ClientError`]: why a client operation failed.

use std::fmt;
use std::io;

#[cfg(doc)]
use super::ChatClient;
use crate::protocol::ErrorCode;

/// Why a client operation failed.
#[derive(Debug)]
pub enum ClientError {
    /// A socket error, including timeouts ([`ClientError::is_timeout`]).
    Io(io::Error),
    /// The server answered with an error reply; or, while a synchronous call
    /// was waiting, sent an error push and closed the connection (e.g.
    /// [`ErrorCode::ServerFull`]).
    Server {
        /// The error code.
        code: ErrorCode,
        /// The server's human-readable detail (may be empty).
        message: String,
    },
    /// The server sent something the protocol does not allow: an
    /// undecodable or oversized frame, an unexpected reply body, a broken
    /// history replay.
    Protocol(String),
    /// The server closed the connection (end of stream, or reset).
    Closed,
    /// A synchronous call stopped reading because the event queue is full
    /// ([`ChatClient::set_queue_limit`]). Nothing was lost: drain events
    /// with [`ChatClient::next_event`]; the awaited reply will come among
    /// them.
    QueueFull,
}

impl ClientError {
    /// The protocol error code, for [`ClientError::Server`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether this is a read or write timeout (retrying is safe).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Io(e) if e.kind() == io::ErrorKind::TimedOut)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o error: {e}"),
            ClientError::Server { code, message } if message.is_empty() => {
                write!(f, "{code} ({})", code.as_u16())
            }
            ClientError::Server { code, message } => write!(f, "{code} ({}): {message}", code.as_u16()),
            ClientError::Protocol(what) => write!(f, "protocol error: {what}"),
            ClientError::Closed => f.write_str("connection closed by the server"),
            ClientError::QueueFull => f.write_str("event queue full; drain it with next_event"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    /// Resets and broken pipes become [`ClientError::Closed`]; read
    /// timeouts (`WouldBlock` on Unix) become `TimedOut`.
    fn from(e: io::Error) -> ClientError {
        use io::ErrorKind as K;
        match e.kind() {
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                ClientError::Closed
            }
            K::WouldBlock => ClientError::Io(io::Error::new(K::TimedOut, "timed out waiting for the server")),
            _ => ClientError::Io(e),
        }
    }
}
