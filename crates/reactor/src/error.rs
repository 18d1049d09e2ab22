//! Errors of building a reactor and of reaching it from other threads.

use crate::config::ConfigError;
use crate::id::ServiceId;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why [`ReactorBuilder::build`](crate::ReactorBuilder::build) failed.
#[derive(Debug)]
pub enum BuildError {
    /// `threads(n)` asked for no loop, or for more than a reactor runs.
    Threads {
        /// The number asked for.
        requested: usize,
        /// The most a reactor runs.
        max: usize,
    },
    /// `mailbox_capacity(0)`: a mailbox that holds nothing.
    MailboxCapacity,
    /// More services than a connection id can name.
    TooManyServices {
        /// The most a reactor hosts.
        max: usize,
    },
    /// A service's config is invalid.
    Config {
        /// The service's name.
        service: String,
        /// What is wrong.
        error: ConfigError,
    },
    /// A service's address could not be resolved (or resolved to nothing).
    Resolve {
        /// The service's name.
        service: String,
        /// The resolver's error.
        error: io::Error,
    },
    /// A service's listener could not be bound or prepared.
    Listen {
        /// The service's name.
        service: String,
        /// The address tried last, if one was resolved.
        addr: Option<SocketAddr>,
        /// The error.
        error: io::Error,
    },
    /// The loops could not be set up (poll, waker, thread).
    Io(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Threads { requested, max } => {
                write!(f, "threads: {requested} is not between 1 and {max}")
            }
            BuildError::MailboxCapacity => f.write_str("mailbox_capacity must be at least 1"),
            BuildError::TooManyServices { max } => write!(f, "at most {max} services"),
            BuildError::Config { service, error } => write!(f, "service {service}: {error}"),
            BuildError::Resolve { service, error } => write!(f, "service {service}: cannot resolve: {error}"),
            BuildError::Listen { service, addr: Some(addr), error } => {
                write!(f, "service {service}: cannot listen on {addr}: {error}")
            }
            BuildError::Listen { service, addr: None, error } => {
                write!(f, "service {service}: cannot use its listener: {error}")
            }
            BuildError::Io(e) => write!(f, "cannot start the event loops: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config { error, .. } => Some(error),
            BuildError::Resolve { error, .. } | BuildError::Listen { error, .. } | BuildError::Io(error) => {
                Some(error)
            }
            _ => None,
        }
    }
}

impl From<BuildError> for io::Error {
    /// For callers that return `io::Result`: the kind is kept where there is
    /// one (an address in use stays `AddrInUse`), the message is the whole
    /// error.
    fn from(e: BuildError) -> io::Error {
        let kind = match &e {
            BuildError::Resolve { error, .. } | BuildError::Listen { error, .. } | BuildError::Io(error) => {
                error.kind()
            }
            _ => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e.to_string())
    }
}

/// Why a [`ReactorHandle`](crate::ReactorHandle) could not queue work for a
/// loop. Nothing was queued; the caller decides whether to retry, drop or
/// disconnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The loop's mailbox for other threads is full: the loop is behind
    /// (see [`ReactorBuilder::mailbox_capacity`](crate::ReactorBuilder::mailbox_capacity)).
    Full,
    /// No such loop, or it has exited (the reactor shut down).
    Closed,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full => f.write_str("the event loop's mailbox is full"),
            SendError::Closed => f.write_str("no such event loop, or it has exited"),
        }
    }
}

impl std::error::Error for SendError {}

/// Why [`ReactorHandle::reconfigure`](crate::ReactorHandle::reconfigure) refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconfigureError {
    /// The reactor has no such service.
    UnknownService(ServiceId),
    /// The new config is invalid; the old one stays.
    Invalid(ConfigError),
}

impl fmt::Display for ReconfigureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconfigureError::UnknownService(id) => write!(f, "no {id}"),
            ReconfigureError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReconfigureError {}
