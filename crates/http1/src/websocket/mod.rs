//! WebSocket (RFC 6455) on an HTTP/1.1 connection: after a request is
//! answered with `101 Switching Protocols`, the same reactor connection
//! (its write queue, backpressure, slow-consumer policy and deadlines)
//! carries WebSocket frames, decoded by tungstenite's codec
//! ([`tungstenite::protocol::WebSocketContext`]) and handed to a
//! [`WebSocketHandler`].
//!
//! The adapter does the handshake (`GET` + `Upgrade: websocket`, version
//! 13, a 16-byte key), requires masked client frames, answers pings, runs
//! the close handshake, bounds messages ([`HttpConfig::ws_max_message`],
//! fragments reassembled included) and fails the connection with the right
//! close code: 1002 for a protocol error (unmasked frame, reserved bits,
//! bad fragmentation or control frame), 1007 for a text message that is not
//! UTF-8, 1009 for a message over the limit.
//!
//! A route upgrades in a few lines:
//!
//! ```
//! use http1::{HttpContext, HttpHandler, Method, Outcome, Request, Response};
//! use http1::{WebSocketHandler, WsContext, WsMessage};
//!
//! struct Echo;
//!
//! impl WebSocketHandler for Echo {
//!     fn on_message(&mut self, cx: &mut WsContext<'_, '_>, msg: WsMessage<'_>) {
//!         match msg {
//!             WsMessage::Binary(b) => cx.send_binary(b),
//!             WsMessage::Text(t) => cx.send_text(t),
//!         }
//!     }
//! }
//!
//! struct Api;
//!
//! impl HttpHandler for Api {
//!     type Pending = ();
//!     fn on_request(&mut self, _cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<()> {
//!         match req.path() {
//!             "/echo" => Outcome::upgrade(req, Echo),
//!             _ => Response::not_found().into(),
//!         }
//!     }
//! }
//! ```
//!
//! [`HttpConfig::ws_max_message`]: crate::HttpConfig::ws_max_message

mod conn;
mod frame;
pub(crate) mod handshake;

pub use frame::{encode_close_frame, encode_frame};

pub(crate) use conn::WsConn;

use bytes::BytesMut;
use reactor::{CloseReason, Context};
use std::ops::{Deref, DerefMut};

/// Close codes the adapter and handlers use (RFC 6455 section 7.4.1).
pub mod close_code {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The server is going down, or the connection was idle too long.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A kind of message the endpoint does not take (text where binary is
    /// expected, say).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text message that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message that breaks the endpoint's policy.
    pub const POLICY: u16 = 1008;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL: u16 = 1011;
}

/// A whole message (fragments reassembled). It borrows the decoder's
/// buffer: copy what is kept past the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsMessage<'a> {
    /// A binary message.
    Binary(&'a [u8]),
    /// A text message (checked to be UTF-8).
    Text(&'a str),
}

/// One WebSocket connection's behaviour, once upgraded: the value given to
/// [`Outcome::upgrade`](crate::Outcome::upgrade), kept for the life of the
/// connection. Every method runs on the loop that owns the connection.
///
/// Timers armed and notifies aimed at the connection (`cx.set_timer`,
/// `notify(cx.id(), token)`) reach [`WebSocketHandler::on_timer`] and
/// [`WebSocketHandler::on_notify`], as for any reactor connection.
pub trait WebSocketHandler: Send + 'static {
    /// The handshake is answered; frames may be sent.
    fn on_open(&mut self, cx: &mut WsContext<'_, '_>) {
        let _ = cx;
    }

    /// A whole message arrived.
    fn on_message(&mut self, cx: &mut WsContext<'_, '_>, msg: WsMessage<'_>);

    /// A timer armed with `cx.set_timer(after, token)` fired (tokens from
    /// `1 << 63` up are the adapter's).
    fn on_timer(&mut self, cx: &mut WsContext<'_, '_>, token: u64) {
        let _ = (cx, token);
    }

    /// `notify(id, token)` reached this connection.
    fn on_notify(&mut self, cx: &mut WsContext<'_, '_>, token: u64) {
        let _ = (cx, token);
    }

    /// The reactor is shutting down: a last message may be sent. The
    /// adapter then closes with 1001 (going away).
    fn on_shutdown(&mut self, cx: &mut WsContext<'_, '_>) {
        let _ = cx;
    }

    /// The connection is closed (by either side, an error or a limit): drop
    /// what refers to it. The context reaches other connections only.
    fn on_close(&mut self, cx: &mut Context<'_>, reason: &CloseReason) {
        let _ = (cx, reason);
    }
}

/// A WebSocket handler's view of its connection: send messages, close with
/// a code, and (through `Deref`) everything a reactor [`Context`] does: the
/// connection id, the loop's clock, timers, sends to other connections.
///
/// Send through [`WsContext::send_binary`] and friends: bytes written with
/// the raw `Context::write` would not be framed.
pub struct WsContext<'c, 'a> {
    cx: &'c mut Context<'a>,
    closing: &'c mut bool,
}

impl<'c, 'a> WsContext<'c, 'a> {
    pub(crate) fn new(cx: &'c mut Context<'a>, closing: &'c mut bool) -> WsContext<'c, 'a> {
        WsContext { cx, closing }
    }

    /// Sends a binary message (one frame).
    pub fn send_binary(&mut self, payload: &[u8]) {
        self.send_binary_with(|buf| buf.extend_from_slice(payload));
    }

    /// Sends a binary message whose payload `fill` appends straight into the
    /// connection's output buffer: no buffer of its own per message.
    pub fn send_binary_with(&mut self, fill: impl FnOnce(&mut BytesMut)) {
        if !*self.closing {
            self.cx.write_with(|buf| frame::encode_in_place(frame::BINARY, buf, fill));
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        if !*self.closing {
            self.cx.write_with(|buf| {
                frame::encode_in_place(frame::TEXT, buf, |b| b.extend_from_slice(text.as_bytes()))
            });
        }
    }

    /// Starts the close handshake with `code` and a short `reason` (cut to
    /// the 123 bytes a close frame holds); nothing is sent after it, and the
    /// connection closes once the close frame is written.
    pub fn close(&mut self, code: u16, reason: &str) {
        if !*self.closing {
            *self.closing = true;
            self.cx.write_with(|buf| frame::encode_close(code, reason, buf));
            self.cx.close();
        }
    }

    /// True once the connection is closing: sends are dropped.
    pub fn is_closing(&self) -> bool {
        *self.closing || !self.cx.is_open()
    }
}

impl<'a> Deref for WsContext<'_, 'a> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        self.cx
    }
}

impl<'a> DerefMut for WsContext<'_, 'a> {
    fn deref_mut(&mut self) -> &mut Context<'a> {
        self.cx
    }
}
