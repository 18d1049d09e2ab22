//! A thin HTTP/1.1 server adapter over the [`reactor`]: the same event loops
//! that serve raw-TCP framed clients serve HTTP clients too, so the two can
//! be compared on one box, and a plaintext endpoint can be measured against
//! other HTTP servers.
//!
//! Thin, but correct for real clients (curl, wrk, HTTP client libraries):
//!
//! - HTTP/1.1 and 1.0; keep-alive (1.0 only with `Connection: keep-alive`);
//!   `Connection: close` honoured; pipelined requests answered strictly in
//!   order; HEAD; `Expect: 100-continue`.
//! - Request heads parsed by `httparse` with its leniency options off;
//!   bodies framed by `Content-Length` or decoded from `chunked`, strictly.
//!   Transfer-Encoding with Content-Length, conflicting Content-Lengths, a
//!   sloppy chunk size: 400 and close, never a guess (request smuggling).
//! - Every limit of [`HttpConfig`] answers with its status (400, 408, 413,
//!   414, 431, 501, 505) and closes that connection only. A head must come
//!   whole within a timeout (slowloris), a body must keep coming, an idle
//!   keep-alive connection is closed quietly: all on reactor timers.
//! - Responses always carry `Content-Length`; they are encoded straight into
//!   the connection's output buffer. Serving `GET /` with a short body
//!   allocates nothing per request.
//! - A handler may answer later ([`Outcome::Wait`]): an HTTP long poll, woken
//!   by `notify` from another connection or thread, or by its timeout.
//! - A route may switch its connection to WebSocket ([`Outcome::upgrade`],
//!   RFC 6455 with tungstenite's codec): the same connection, write queue
//!   and limits, frames handed to a [`WebSocketHandler`].
//!
//! The I/O-free core (head parsing, body framing, chunked decoding, response
//! encoding) is [`HttpCodec`], a reactor [`Codec`](reactor::Codec); on top
//! of it [`HttpService`], a reactor [`Handler`](reactor::Handler), pairs
//! requests with responses (in order, now or later) and keeps the deadlines.
//!
//! # Example
//!
//! ```
//! use http1::{HttpConfig, HttpContext, HttpHandler, HttpService, Method, Outcome, Request, Response};
//! use reactor::{Reactor, ServiceConfig};
//! use std::io::{Read, Write};
//!
//! struct Hello;
//!
//! impl HttpHandler for Hello {
//!     type Pending = ();
//!     fn on_request(&mut self, _cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<()> {
//!         match (req.method(), req.path()) {
//!             (Method::Get | Method::Head, "/") => Response::text(200, "Hello, World!").into(),
//!             (_, "/") => Response::method_not_allowed("GET, HEAD").into(),
//!             _ => Response::not_found().into(),
//!         }
//!     }
//! }
//!
//! let reactor = Reactor::builder()
//!     .threads(1)
//!     .service(ServiceConfig::new("http"), "127.0.0.1:0", |_| HttpService::new(HttpConfig::default(), Hello))
//!     .build()
//!     .expect("bind");
//! let addr = reactor.local_addr(reactor::ServiceId::from_index(0)).unwrap();
//!
//! let mut client = std::net::TcpStream::connect(addr).unwrap();
//! client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
//! let mut reply = String::new();
//! client.read_to_string(&mut reply).unwrap();
//! assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(reply.ends_with("\r\n\r\nHello, World!"));
//!
//! reactor.shutdown(std::time::Duration::from_secs(1));
//! ```
#![deny(missing_docs)]

mod chunked;
mod codec;
mod config;
mod date;
mod decoder;
mod handler;
#[cfg(test)]
mod hot_path;
mod parse;
mod request;
mod response;
mod service;
mod websocket;

pub use crate::codec::{Continue, HttpCodec, HttpStream, Incoming, Reply};
pub use crate::config::{HttpConfig, MAX_HEADERS_LIMIT, MAX_HEAD_SIZE_LIMIT};
pub use crate::handler::{HttpContext, HttpHandler, Outcome, Upgrade, Wake};
pub use crate::request::{Fields, Method, Request, Version};
pub use crate::response::Response;
pub use crate::service::{HttpConn, HttpService};
pub use crate::websocket::{close_code, WebSocketHandler, WsContext, WsMessage};

/// The I/O-free request decoder, exported for the fuzz targets and for
/// tests: not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::decoder::Decoder;
    pub use crate::parse::Reject;
}
