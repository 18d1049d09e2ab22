//! A mio readiness reactor for raw TCP messaging servers.
//!
//! One event loop per thread, each owning a `mio::Poll` and a slab of
//! connections; several services (a listener, its handler and its limits)
//! share the loops. Connections are accepted by the loop that owns the
//! service's listener and handed round-robin to every loop, so a listening
//! socket is a single descriptor (easy to pass to a new process, or to take
//! from systemd) and connections spread evenly.
//!
//! # The stack
//!
//! ```text
//! socket ⇄ Transport (Plain; TLS) ⇄ Codec (FrameCodec; http1's HttpCodec) ⇄ Handler
//! ```
//!
//! - A [`Transport`] turns wire bytes into plaintext and back ([`Plain`]
//!   passes them through with no state and no copy).
//! - A [`Codec`] turns plaintext into messages and messages into output,
//!   I/O-free ([`FrameCodec`]: length-prefixed frames in any layout a
//!   [`framing::FrameConfig`] describes).
//! - A [`Handler`], the one handler trait, gets each message and sends
//!   replies through the codec: it never writes raw bytes into its own
//!   stream.
//!
//! A [`Service`] bundles the three for one loop; the loop drives any stack
//! the same way, so TLS under a handler or a protocol switch inside a codec
//! (WebSocket after an HTTP upgrade) changes neither the loop nor the
//! handler's other callbacks.
//!
//! # Example: a framed echo service
//!
//! ```
//! use reactor::{Frame, FrameCodec, FramedContext, Handler, Reactor, Service, ServiceConfig, ServiceId};
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Codec = FrameCodec;
//!     type Conn = ();
//!     fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: std::net::SocketAddr) {}
//!     fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
//!         // The frame borrows the read buffer; the reply is encoded
//!         // straight into the connection's output.
//!         let _ = cx.send_frame(&frame);
//!     }
//! }
//!
//! let reactor = Reactor::builder()
//!     .threads(2)
//!     .service(ServiceConfig::new("echo"), "127.0.0.1:0", |_loop| Service::new(FrameCodec::default(), Echo))
//!     .build()
//!     .expect("bind");
//! let addr = reactor.local_addr(ServiceId::from_index(0)).unwrap();
//!
//! let mut client = std::net::TcpStream::connect(addr).unwrap();
//! client.write_all(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']).unwrap();
//! let mut reply = [0u8; 9];
//! client.read_exact(&mut reply).unwrap();
//! assert_eq!(&reply[4..], b"hello");
//!
//! reactor.shutdown(Duration::from_secs(1));
//! ```
//!
//! More in `examples/`, as a ladder: `echo_server` (this, with options),
//! `pubsub` (a topic registry shared across loops, cleanup on close,
//! graceful shutdown on SIGINT/SIGTERM), `loco` (a protocol whose header
//! comes before its length field).
//!
//! # Threads
//!
//! Handlers and contexts live on their loop's thread: every callback of one
//! handler value runs there, one at a time, so a handler needs no lock for
//! its own fields. A handler must not block. Other threads (and loops)
//! reach connections through a [`ReactorHandle`], whose methods are all
//! safe from any thread and never block; each method's docs say so.
//!
//! # Ordering
//!
//! - Messages from one source to one connection arrive in the order sent.
//!   A source is one callback's context (then one loop's turns, in order),
//!   or one thread's [`ReactorHandle`].
//! - Messages from different sources (two loops, two threads, a loop and a
//!   thread) to one connection interleave in no promised order. A program
//!   that needs one order for everyone (a chat room) must give each message
//!   its place before sending (a sequence number, a log offset), or send
//!   from one place.
//! - A connection's own replies ([`ConnContext::send`]) made during a
//!   callback come before any message sent to it by id in that callback
//!   ([`Context::send_to`], [`Context::broadcast`]); those are encoded after
//!   the callback returns.
//! - A broadcast reaches each connection once, in order with the sender's
//!   other messages to that connection.
//!
//! # Backpressure and full queues
//!
//! - Each connection's output is bounded: past
//!   [`ServiceConfig::write_high_watermark`] the [`SlowConsumerPolicy`]
//!   applies (stop reading that client, or disconnect it); past
//!   [`ServiceConfig::max_write_queue`] it is closed whatever the policy
//!   ([`CloseReason::SlowConsumer`]).
//! - Each loop's mailbox for other threads is bounded
//!   ([`ReactorBuilder::mailbox_capacity`]): when full, [`ReactorHandle`]
//!   refuses the message with [`SendError::Full`] at once (nothing queued,
//!   the refusal counted); the caller chooses to retry, drop or disconnect.
//!   Loops never wait on one another: what they send each other goes
//!   through an unbounded queue, bounded in practice by their own turns.
//! - Undecoded input per connection is bounded by
//!   [`ServiceConfig::max_read_buffer`]; a codec may bound it tighter (a
//!   maximum frame length, checked before anything is allocated).
//!
//! # A connection's life
//!
//! 1. **Open**: accepted, `on_open`, then `on_message` per message, timers,
//!    notifies. Reads are budgeted per event
//!    ([`ServiceConfig::read_budget`]); output is flushed with vectored
//!    writes once per loop turn for each connection that has some (and
//!    mid-turn once 64 connections have output waiting).
//! 2. **Close decided**: by the handler ([`Context::close`],
//!    [`Context::abort`]), by the peer's EOF (`on_eof` returns true), by
//!    bad input ([`Handler::on_decode_error`], then
//!    [`CloseReason::Protocol`]), by a limit (idle timeout, handshake timeout, slow
//!    consumer), by an I/O error, or by shutdown. **`on_close` runs now**,
//!    once: the connection stops counting as open
//!    ([`ServiceStats::open`]), messages to it are dropped, and the handler
//!    should forget its id.
//! 3. **Flush**: what was queued before is written (unless the close was an
//!    abort: idle timeout, slow consumer, I/O error, panic). Input is left
//!    unread.
//! 4. **FIN and linger**: once written, the transport says goodbye (a TLS
//!    `close_notify`), FIN is sent, and input is read and dropped until the
//!    peer closes too, so that unread input does not turn the close into a
//!    reset that destroys the last replies. If the peer had already sent
//!    its EOF, the socket closes at once.
//! 5. **Gone**: the socket is closed. Steps 3 and 4 together last at most
//!    [`ServiceConfig::linger`] (2 s by default); meanwhile the socket counts
//!    in [`ServiceStats::closing`] and against `max_connections`.
//!
//! Graceful shutdown ([`ReactorHandle::shutdown`]) stops accepting, calls
//! `on_shutdown` on every open connection, and closes each through steps 2
//! to 5; it returns once every socket is gone, or at its grace deadline,
//! when whatever is left is closed at once. So a peer that never closes its
//! side can hold the shutdown for up to the linger.
//!
//! Every transition is the pure state machine in `lifecycle.rs`, unit
//! tested without sockets.
//!
//! # Defaults
//!
//! See the table on [`ServiceConfig`]; the reactor's own: one loop per core,
//! a mailbox of 65,536 messages per loop for other threads, a 64 KiB read
//! buffer per loop, 4 KiB output buffers pooled per loop (up to 8 MiB kept).
//!
//! # Robustness
//!
//! Accept errors (EMFILE) back off instead of spinning, with a spare
//! descriptor to refuse the connection at the head of the backlog; a
//! panicking handler closes only its connection; a stale [`ConnId`] misses
//! (its generation is checked) instead of reaching a newer connection in
//! the same slot.
#![deny(missing_docs)]

mod acceptor;
mod codec;
mod config;
mod connection;
mod context;
mod core;
mod error;
mod event_loop;
mod frame_codec;
mod handle;
mod handler;
mod id;
mod lifecycle;
mod listener;
mod reactor;
mod service;
mod stack;
mod stats;
mod timer;
mod transport;
mod write_queue;

pub use crate::codec::{Codec, Encoder, Output, Refused};
pub use crate::config::{ConfigError, ServiceConfig, SlowConsumerPolicy};
pub use crate::context::{ConnContext, Context};
pub use crate::error::{BuildError, ReconfigureError, SendError};
pub use crate::frame_codec::{Fill, Frame, FrameCodec, FrameDecodeError, FrameState, FramedContext, Parts};
pub use crate::handle::ReactorHandle;
pub use crate::handler::{CloseReason, Handler, Message};
pub use crate::id::{ConnId, ServiceId};
pub use crate::listener::bind_listener;
pub use crate::reactor::{Reactor, ReactorBuilder, DEFAULT_MAILBOX_CAPACITY};
pub use crate::stack::{IntoService, Service};
pub use crate::stats::ServiceStats;
pub use crate::timer::TimerKey;
pub use crate::transport::{Plain, Received, Socket, Transport, Unsent, SHORT_READ_DRAINS};
pub use framing;
