//! The interface a service implements, and why connections close.

use crate::codec::Codec;
use crate::context::{ConnContext, Context};
use std::fmt;
use std::io;
use std::net::SocketAddr;

/// The message type a handler's codec decodes.
pub type Message<'a, H> = <<H as Handler>::Codec as Codec>::Item<'a>;

/// A service's behaviour, called by the event loop that owns a connection,
/// with the messages its [`Codec`] decodes.
///
/// This is the one handler trait: a frame protocol, HTTP or anything else is
/// a choice of codec ([`FrameCodec`](crate::FrameCodec) for length-prefixed
/// frames; `http1` has one for HTTP/1.1), not another trait.
///
/// Each loop has its own handler value (made by the factory given to
/// [`ReactorBuilder::service`]), so a handler needs no locks for its own
/// fields; state shared by all loops goes behind an `Arc`. Per-connection
/// state is [`Handler::Conn`], kept inline in the loop's connection slab.
///
/// Every method runs on the loop thread that owns the connection (or, for
/// [`Handler::on_loop_notify`], the loop notified), never two at once for
/// one handler value. A handler must not block: the loop serves every other
/// connection of that thread. A panic in any method closes that one
/// connection with [`CloseReason::Panic`]; the loop and its other
/// connections go on.
///
/// The life of a connection, as a handler sees it: `on_open`, then
/// `on_message` for each message (and `on_timer`, `on_notify`,
/// `on_drained` as they come), `on_eof` if the peer closes its side first,
/// and `on_close` once, when the close is decided (by the handler, the
/// peer, an error or a limit). After `on_close` the connection is no longer
/// the handler's: what it queued before is still written (then FIN, then the
/// linger), but nothing new is accepted. See the crate docs' lifecycle
/// section.
///
/// [`ReactorBuilder::service`]: crate::ReactorBuilder::service
pub trait Handler: Send + 'static {
    /// How this service's connections turn bytes into messages.
    type Codec: Codec;
    /// Per-connection state.
    type Conn: 'static;

    /// A connection was accepted. Returns its state.
    fn on_open(&mut self, cx: &mut ConnContext<'_, '_, Self::Codec>, peer: SocketAddr) -> Self::Conn;

    /// A whole message arrived. It may borrow the loop's read buffer: copy
    /// what is to be kept past this call.
    fn on_message(
        &mut self,
        cx: &mut ConnContext<'_, '_, Self::Codec>,
        conn: &mut Self::Conn,
        msg: Message<'_, Self>,
    );

    /// The input could not be decoded (for frames: a length over the
    /// maximum, a corrupt header, or EOF inside a frame). A last message may
    /// be sent (an error reply); the connection is closed after this call
    /// with [`CloseReason::Protocol`], once that is written.
    fn on_decode_error(
        &mut self,
        cx: &mut ConnContext<'_, '_, Self::Codec>,
        conn: &mut Self::Conn,
        error: &<Self::Codec as Codec>::DecodeError,
    ) {
        let _ = (cx, conn, error);
    }

    /// Called after each read's messages were handed over (or none was
    /// whole yet): a place for per-read bookkeeping, such as a deadline for
    /// a message still arriving. The default does nothing.
    fn on_read(&mut self, cx: &mut ConnContext<'_, '_, Self::Codec>, conn: &mut Self::Conn) {
        let _ = (cx, conn);
    }

    /// Called before input is decoded, with this loop's codec: a chance to
    /// apply settings changed at run time (a frame limit after a config
    /// reload). The default does nothing.
    fn tune_codec(&mut self, codec: &mut Self::Codec) {
        let _ = codec;
    }

    /// A timer armed with [`Context::set_timer`] fired.
    fn on_timer(&mut self, cx: &mut ConnContext<'_, '_, Self::Codec>, conn: &mut Self::Conn, token: u64) {
        let _ = (cx, conn, token);
    }

    /// Another connection or thread called `notify` for this connection.
    fn on_notify(&mut self, cx: &mut ConnContext<'_, '_, Self::Codec>, conn: &mut Self::Conn, token: u64) {
        let _ = (cx, conn, token);
    }

    /// `notify_loop(loop, service, token)` reached this service's handler on
    /// this loop: work for the loop rather than for one connection (say,
    /// "deliver what is new in this room to your members"). The context has
    /// no current connection but reaches every connection by id.
    fn on_loop_notify(&mut self, cx: &mut Context<'_>, token: u64) {
        let _ = (cx, token);
    }

    /// The peer closed its side of the connection (EOF): nothing more will
    /// be read. Return true (the default) to close once queued output is
    /// written; false to keep writing to the half-closed connection (e.g.
    /// responses still owed) until the handler closes it.
    fn on_eof(&mut self, cx: &mut ConnContext<'_, '_, Self::Codec>, conn: &mut Self::Conn) -> bool {
        let _ = (cx, conn);
        true
    }

    /// Queued output drained below the low watermark after passing the high
    /// one: a chance to resume producing for this connection.
    fn on_drained(&mut self, cx: &mut ConnContext<'_, '_, Self::Codec>, conn: &mut Self::Conn) {
        let _ = (cx, conn);
    }

    /// The reactor is shutting down gracefully: say goodbye (e.g. a
    /// going-away message). The connection closes after this call, once its
    /// output is written, or at the shutdown deadline.
    fn on_shutdown(&mut self, cx: &mut ConnContext<'_, '_, Self::Codec>, conn: &mut Self::Conn) {
        let _ = (cx, conn);
    }

    /// The close of the connection was decided (`reason` says by whom). Runs
    /// once, as soon as the close is decided, not when the socket is gone:
    /// drop every reference to the connection here (registries, rooms).
    /// Output queued before is still written; sends to the connection from
    /// now on are dropped. The context reaches other connections; it has no
    /// current one.
    fn on_close(&mut self, cx: &mut Context<'_>, conn: Self::Conn, reason: &CloseReason) {
        let _ = (cx, conn, reason);
    }
}

/// Why a connection closed.
#[derive(Debug)]
pub enum CloseReason {
    /// The peer closed the connection.
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
    /// The transport's handshake (TLS) did not finish within the service's
    /// handshake timeout.
    HandshakeTimeout,
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
        matches!(
            self,
            CloseReason::Protocol(_)
                | CloseReason::HandshakeTimeout
                | CloseReason::SlowConsumer { .. }
                | CloseReason::Panic(_)
        )
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
            CloseReason::HandshakeTimeout => f.write_str("handshake timeout"),
            CloseReason::SlowConsumer { queued } => {
                write!(f, "slow consumer: {queued} bytes of output queued")
            }
            CloseReason::Shutdown => f.write_str("server shutting down"),
            CloseReason::Panic(msg) => write!(f, "handler panicked: {msg}"),
        }
    }
}
