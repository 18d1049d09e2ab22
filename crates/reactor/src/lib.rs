//! A mio readiness reactor for raw TCP messaging servers.
//!
//! One event loop per thread, each owning a `mio::Poll` and a slab of
//! connections; several services (a listener, its handler and its limits)
//! share the loops. Connections are accepted by the loop that owns the
//! service's listener and handed round-robin to every loop, so a listening
//! socket is a single descriptor (easy to pass to a new process, or to take
//! from systemd) and connections spread evenly.
//!
//! - **Handlers** ([`Handler`], or [`FrameHandler`] behind [`Framed`] for
//!   length-prefixed frames) run on the loop that owns the connection, with
//!   a [`Context`] to send, close and arm timers.
//! - **Cross-thread send**: a [`ConnId`] reaches its connection from any
//!   thread through [`ReactorHandle`] (or [`Context::send_to`]); a
//!   generation makes a stale id miss instead of reaching a newer connection
//!   in the same slot. A broadcast shares one `Bytes` among all recipients.
//!   Commands are batched: one channel message and at most one wake-up per
//!   loop per turn.
//! - **Write path**: a queue of `Bytes` per connection, flushed once per
//!   loop turn with vectored writes; high/low watermarks and a
//!   [`SlowConsumerPolicy`]; a hard cap closes slow consumers, so a
//!   connection's memory is bounded.
//! - **Read path**: input is read into a per-loop scratch buffer; a
//!   connection owns heap memory only for an unfinished message or unsent
//!   output, so an idle connection costs its slab entry. A per-event read
//!   budget keeps one busy peer from starving the rest.
//! - **Robustness**: accept errors (EMFILE) back off instead of spinning; a
//!   panicking handler closes only its connection; closes flush, send FIN
//!   and linger so that the last replies are not lost to a reset; graceful
//!   shutdown flushes and joins every thread.
//!
//! # Example: a framed echo service
//!
//! ```
//! use bytes::Bytes;
//! use reactor::{Framed, FrameHandler, FramedContext, Reactor, ServiceConfig};
//! use framing::FrameConfig;
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! struct Echo;
//!
//! impl FrameHandler for Echo {
//!     type Conn = ();
//!     fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: std::net::SocketAddr) {}
//!     fn on_frame(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Bytes) {
//!         let _ = cx.send_frame(&frame);
//!     }
//! }
//!
//! let reactor = Reactor::builder()
//!     .threads(2)
//!     .service(ServiceConfig::new("echo"), "127.0.0.1:0", |_loop| Framed::new(FrameConfig::default(), Echo))
//!     .build()
//!     .expect("bind");
//! let addr = reactor.local_addr(0).unwrap();
//!
//! let mut client = std::net::TcpStream::connect(addr).unwrap();
//! client.write_all(&[0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']).unwrap();
//! let mut reply = [0u8; 9];
//! client.read_exact(&mut reply).unwrap();
//! assert_eq!(&reply[4..], b"hello");
//!
//! reactor.shutdown(Duration::from_secs(1));
//! ```
#![deny(missing_docs)]

mod acceptor;
mod config;
mod connection;
mod context;
mod core;
mod event_loop;
mod framed;
mod handle;
mod handler;
mod id;
mod listener;
mod reactor;
mod service;
mod stats;
mod timer;
mod write_queue;

pub use crate::config::{ServiceConfig, SlowConsumerPolicy};
pub use crate::context::Context;
pub use crate::framed::{FrameHandler, Framed, FramedConn, FramedContext};
pub use crate::handle::ReactorHandle;
pub use crate::handler::{CloseReason, Handler};
pub use crate::id::ConnId;
pub use crate::listener::bind_listener;
pub use crate::reactor::{Reactor, ReactorBuilder};
pub use crate::stats::ServiceStats;
pub use crate::timer::TimerKey;
pub use framing;
