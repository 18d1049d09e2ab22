//! WebSocket (RFC 6455) on an HTTP/1.1 connection: after a request is
//! answered with `101 Switching Protocols`, the same reactor connection
//! (its write queue, backpressure, slow-consumer policy and deadlines)
//! carries WebSocket frames, decoded by tungstenite's codec
//! ([`tungstenite::protocol::WebSocketContext`]) inside the connection's
//! [`HttpCodec`](crate::HttpCodec) and handed to a [`WebSocketHandler`].
//! A message another connection sends this one by id
//! ([`reactor::Context::send_to`], a broadcast) becomes one binary message:
//! the codec frames it, as a frame codec adds its length prefix.
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
//!     fn on_message(&mut self, cx: &mut WsContext<'_, '_, '_>, msg: WsMessage<'_>) {
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
pub(crate) mod frame;
pub(crate) mod handshake;

pub(crate) use conn::{WsEvent, WsStream};

use crate::codec::{HttpCodec, WsClose, WsFill};
use bytes::BytesMut;
use reactor::{CloseReason, ConnContext, Context};
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
    fn on_open(&mut self, cx: &mut WsContext<'_, '_, '_>) {
        let _ = cx;
    }

    /// A whole message arrived.
    fn on_message(&mut self, cx: &mut WsContext<'_, '_, '_>, msg: WsMessage<'_>);

    /// A timer armed with `cx.set_timer(after, token)` fired (tokens from
    /// `1 << 63` up are the adapter's).
    fn on_timer(&mut self, cx: &mut WsContext<'_, '_, '_>, token: u64) {
        let _ = (cx, token);
    }

    /// `notify(id, token)` reached this connection.
    fn on_notify(&mut self, cx: &mut WsContext<'_, '_, '_>, token: u64) {
        let _ = (cx, token);
    }

    /// The reactor is shutting down: a last message may be sent. The
    /// adapter then closes with 1001 (going away).
    fn on_shutdown(&mut self, cx: &mut WsContext<'_, '_, '_>) {
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
/// Messages go through the connection's codec, framed as WebSocket
/// messages: a handler cannot write bytes into its stream.
pub struct WsContext<'w, 'c, 'a> {
    cx: &'w mut ConnContext<'c, 'a, HttpCodec>,
}

impl<'w, 'c, 'a> WsContext<'w, 'c, 'a> {
    pub(crate) fn new(cx: &'w mut ConnContext<'c, 'a, HttpCodec>) -> WsContext<'w, 'c, 'a> {
        WsContext { cx }
    }

    /// Sends a binary message (one frame).
    pub fn send_binary(&mut self, payload: &[u8]) {
        self.send_binary_with(|buf| buf.extend_from_slice(payload));
    }

    /// Sends a binary message whose payload `fill` appends straight into the
    /// connection's output buffer: no buffer of its own per message.
    pub fn send_binary_with(&mut self, fill: impl FnOnce(&mut BytesMut)) {
        let Ok(()) = self.cx.send(WsFill(frame::BINARY, fill));
    }

    /// Sends a text message.
    pub fn send_text(&mut self, text: &str) {
        let Ok(()) =
            self.cx.send(WsFill(frame::TEXT, |b: &mut BytesMut| b.extend_from_slice(text.as_bytes())));
    }

    /// Sends a close frame with `code` and a short `reason` (cut to the 123
    /// bytes a close frame holds), after which nothing is sent; the
    /// connection closes once it is written.
    pub fn close(&mut self, code: u16, reason: &str) {
        let Ok(()) = self.cx.send(WsClose { code, reason });
        self.cx.close();
    }

    /// True once the connection is closing: sends are dropped.
    pub fn is_closing(&mut self) -> bool {
        let closing = self.cx.codec_state().ws.as_deref().is_none_or(|ws| ws.closing);
        closing || !self.cx.is_open()
    }
}

impl<'a> Deref for WsContext<'_, '_, 'a> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        self.cx
    }
}

impl<'a> DerefMut for WsContext<'_, '_, 'a> {
    fn deref_mut(&mut self) -> &mut Context<'a> {
        self.cx
    }
}
