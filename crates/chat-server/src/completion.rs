//! Answers that come back later, from another thread: in a cluster, most
//! requests need Redis, and no event loop waits for it. The request is
//! handed to the cluster's bridge with a [`ReplyTo`]; the answer is put in
//! the connection's [`Mailbox`] and the connection is notified (token
//! [`COMPLETION`] with the request's sequence number) through its loop's
//! inbox. The session then takes it from its mailbox, on its loop.
//!
//! A mailbox belongs to one connection (or one HTTP request): when that
//! goes away, so does the mailbox, and a late answer is dropped with it.

use crate::core::Posted;
use crate::protocol::{ErrorCode, OkBody};
use crate::store::Entry;
use reactor::ConnId;
use std::sync::{Arc, Mutex};

/// Bit set in a notify token that announces a completion (the low bits
/// are the request's sequence number).
pub const COMPLETION: u64 = 1 << 60;

/// What a request waiting for the cluster gets.
pub enum Completion {
    /// A message was stored (with where), or not.
    Sent(Result<Posted, ErrorCode>),
    /// A nickname was claimed, or not.
    Login(Result<Arc<str>, ErrorCode>),
    /// The reply to send.
    Reply(Result<OkBody, (ErrorCode, String)>),
    /// A room's messages after a position (`None`: no such room).
    Page(Result<Option<crate::core::Page>, ErrorCode>),
    /// Run the request again: what it waited for is here now (a room
    /// loaded; for a join, the messages after its position, read from the
    /// log).
    Retry(Option<Vec<Arc<Entry>>>),
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Completion::Sent(r) => write!(f, "Sent({r:?})"),
            Completion::Login(r) => write!(f, "Login({r:?})"),
            Completion::Reply(r) => write!(f, "Reply({r:?})"),
            Completion::Page(r) => {
                write!(f, "Page({:?})", r.as_ref().map(|p| p.as_ref().map(|p| p.messages.len())))
            }
            Completion::Retry(r) => write!(f, "Retry({:?})", r.as_ref().map(Vec::len)),
        }
    }
}

/// Completions for one connection, with the sequence number each answers.
pub type Mailbox = Arc<Mutex<Vec<(u64, Completion)>>>;

/// Where a completion goes.
#[derive(Clone)]
pub struct ReplyTo {
    /// The connection to notify.
    pub conn: ConnId,
    /// The request's sequence number on it.
    pub seq: u64,
    /// Its mailbox.
    pub mailbox: Mailbox,
}

impl std::fmt::Debug for ReplyTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReplyTo({}, {})", self.conn, self.seq)
    }
}

impl ReplyTo {
    /// Puts `completion` in the mailbox; the caller then notifies
    /// `conn` with [`ReplyTo::token`].
    pub fn put(&self, completion: Completion) {
        crate::core::lock(&self.mailbox).push((self.seq, completion));
    }

    /// The notify token announcing it.
    pub fn token(&self) -> u64 {
        COMPLETION | self.seq
    }
}
