//! The interface a service implements, and why connections close.

use crate::context::Context;
use bytes::BytesMut;
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// A service's behaviour, called by the event loop that owns a connection.
///
/// Each loop has its own handler value (made by the factory given to
/// [`ReactorBuilder::service`]), so a handler needs no locks for its own
/// fields; state shared by all loops goes behind an `Arc`. Per-connection
/// state is [`Handler::Conn`], kept inline in the loop's connection slab.
///
/// A panic in any method closes that one connection with
/// [`CloseReason::Panic`]; the loop and its other connections go on.
///
/// [`ReactorBuilder::service`]: crate::ReactorBuilder::service
pub trait Handler: Send + 'static {
    /// Per-connection state.
    type Conn: 'static;

    /// A connection was accepted. Returns its state.
    fn on_open(&mut self, cx: &mut Context<'_>, peer: SocketAddr) -> Self::Conn;

    /// Bytes arrived. `input` holds every byte not yet consumed: take what
    /// forms whole messages (e.g. with `split_to`) and leave the rest, which
    /// is kept for the next call. Input left unconsumed past
    /// [`ServiceConfig::max_read_buffer`] closes the connection.
    ///
    /// [`ServiceConfig::max_read_buffer`]: crate::ServiceConfig::max_read_buffer
    fn on_data(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, input: &mut BytesMut);

    /// A timer armed with [`Context::set_timer`] fired.
    fn on_timer(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, token: u64) {
        let _ = (cx, conn, token);
    }

    /// Another connection or thread called `notify` for this connection.
    fn on_notify(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, token: u64) {
        let _ = (cx, conn, token);
    }

    /// `notify_loop(loop, service, token)` reached this service's handler on
    /// this loop: work for the loop rather than for one connection. The
    /// context has no current connection (sends to "itself" are dropped) but
    /// reaches every connection by id.
    fn on_loop_notify(&mut self, cx: &mut Context<'_>, token: u64) {
        let _ = (cx, token);
    }

    /// The peer closed its side of the connection (EOF): nothing more will
    /// be read. Bytes left unconsumed in `input` are an incomplete message.
    /// Return true (the default) to close once queued output is written;
    /// false to keep writing to the half-closed connection (e.g. responses
    /// still owed) until the handler closes it.
    fn on_eof(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn, input: &mut BytesMut) -> bool {
        let _ = (cx, conn, input);
        true
    }

    /// Queued output drained below the low watermark after passing the high
    /// one: a chance to resume producing for this connection.
    fn on_drained(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn) {
        let _ = (cx, conn);
    }

    /// The reactor is shutting down gracefully: say goodbye (e.g. a
    /// going-away message). The connection closes once its output is
    /// flushed, or at the shutdown deadline.
    fn on_shutdown(&mut self, cx: &mut Context<'_>, conn: &mut Self::Conn) {
        let _ = (cx, conn);
    }

    /// The connection is closed. The context can still reach other
    /// connections; sends to this one are dropped.
    fn on_close(&mut self, cx: &mut Context<'_>, conn: Self::Conn, reason: &CloseReason) {
        let _ = (cx, conn, reason);
    }
}

/// Why a connection closed.
#[derive(Debug)]
pub enum CloseReason {
    /// The peer closed the connection and everything queued was sent.
    PeerClosed,
    /// A read or write failed (reset by peer, broken pipe, ...).
    Io(io::Error),
    /// The peer broke the protocol (bad or oversized frame, input over the
    /// read-buffer limit); the text says how.
    Protocol(String),
    /// The handler closed it.
    Local,
    /// Nothing was received for the service's idle timeout.
    IdleTimeout,
    /// Queued output passed the service's limit (or its high watermark under
    /// [`SlowConsumerPolicy::Disconnect`]).
    ///
    /// [`SlowConsumerPolicy::Disconnect`]: crate::SlowConsumerPolicy::Disconnect
    SlowConsumer {
        /// Bytes queued when it was closed.
        queued: usize,
    },
    /// The reactor shut down.
    Shutdown,
    /// The handler panicked; the text is the panic message.
    Panic(String),
}

impl CloseReason {
    /// True for closes that point at a misbehaving peer or a bug, worth a
    /// warning in the logs rather than a debug line.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, CloseReason::Protocol(_) | CloseReason::SlowConsumer { .. } | CloseReason::Panic(_))
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by peer"),
            CloseReason::Io(e) => write!(f, "i/o error: {e}"),
            CloseReason::Protocol(why) => write!(f, "protocol error: {why}"),
            CloseReason::Local => f.write_str("closed by server"),
            CloseReason::IdleTimeout => f.write_str("idle timeout"),
            CloseReason::SlowConsumer { queued } => {
                write!(f, "slow consumer: {queued} bytes of output queued")
            }
            CloseReason::Shutdown => f.write_str("server shutting down"),
            CloseReason::Panic(msg) => write!(f, "handler panicked: {msg}"),
        }
    }
}
