//! HTTP/1.1 as a reactor [`Codec`]: request heads and bodies decoded from a
//! connection's input, responses encoded straight into its output. The
//! request/response pairing (pipelining in order, long polls, deadlines) is
//! [`HttpService`](crate::HttpService)'s, on top.
//!
//! After a `101 Switching Protocols` the same codec decodes WebSocket
//! frames (with tungstenite's codec) and frames what the connection is sent:
//! a message another connection sends it by id becomes one binary
//! WebSocket message.

use crate::config::HttpConfig;
use crate::date::DateCache;
use crate::decoder::Decoder;
use crate::parse::Reject;
use crate::request::Request;
use crate::response::{encode, Persistence, Response, CONTINUE};
use crate::websocket::{frame, WsEvent, WsStream};
use bytes::{Bytes, BytesMut};
use reactor::{Codec, Encoder, Output, Refused};
use std::convert::Infallible;
use std::time::Instant;

/// The HTTP/1.1 codec of an [`HttpService`](crate::HttpService): one per
/// loop, with the limits of its [`HttpConfig`] and the loop's cached date.
pub struct HttpCodec {
    config: HttpConfig,
    date: DateCache,
}

impl HttpCodec {
    /// A codec with the limits of `config`.
    pub fn new(config: HttpConfig) -> HttpCodec {
        HttpCodec { config, date: DateCache::new() }
    }

    /// The limits in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }
}

/// Where a connection's request stream is.
pub struct HttpStream {
    pub(crate) decoder: Decoder,
    /// Input is no longer parsed (a bad request, a closing response, too
    /// many queued): what arrives is discarded.
    pub(crate) stopped: bool,
    /// Set once the connection switched to WebSocket: input is frames.
    pub(crate) ws: Option<Box<WsStream>>,
}

/// What the codec hands the service: a whole request, one it must refuse
/// (answered in its turn, then the connection closes), or, once upgraded,
/// what happened on the WebSocket.
pub struct Incoming(pub(crate) Arrived);

/// See [`Incoming`].
pub(crate) enum Arrived {
    Request(Request),
    Reject(Reject),
    Ws(WsEvent),
}

impl Codec for HttpCodec {
    type Conn = HttpStream;
    type Item<'a> = Incoming;
    type DecodeError = Infallible;

    fn open(&mut self) -> HttpStream {
        HttpStream { decoder: Decoder::new(), stopped: false, ws: None }
    }

    fn decode(
        &mut self,
        conn: &mut HttpStream,
        input: &mut BytesMut,
    ) -> Result<Option<(Incoming, usize)>, Infallible> {
        if let Some(ws) = conn.ws.as_mut() {
            return Ok(ws.decode(input).map(|ev| (Incoming(Arrived::Ws(ev)), 0)));
        }
        if conn.stopped {
            input.clear();
            return Ok(None);
        }
        Ok(match conn.decoder.decode(input, &self.config) {
            Ok(Some(req)) => Some((Incoming(Arrived::Request(req)), 0)),
            Ok(None) => None,
            Err(reject) => {
                // No request boundary is known after a bad one.
                conn.stopped = true;
                Some((Incoming(Arrived::Reject(reject)), 0))
            }
        })
    }

    fn encode_payload(
        &mut self,
        conn: &mut HttpStream,
        payload: &Bytes,
        out: &mut Output<'_>,
    ) -> Result<(), Refused> {
        match conn.ws.as_deref() {
            // One binary message; a large payload is queued without a copy.
            Some(ws) if !ws.closing => {
                out.append_with(|buf| frame::put_header(frame::BINARY, payload.len(), buf));
                out.push(payload);
                Ok(())
            }
            // Closing: dropped, like any send to a closing connection.
            Some(_) => Ok(()),
            None => Err(Refused("an HTTP/1.1 connection takes no message but a response to its request")),
        }
    }
}

/// The `101 Switching Protocols` head, with its accept key: for the
/// adapter's own use.
#[doc(hidden)]
pub struct Switch<'k>(pub(crate) &'k str);

impl Encoder<Switch<'_>> for HttpCodec {
    type Error = Infallible;

    fn encode(&mut self, _: &mut HttpStream, s: Switch<'_>, out: &mut Output<'_>) -> Result<(), Infallible> {
        out.append_with(|buf| crate::websocket::handshake::encode_switch(s.0, buf));
        Ok(())
    }
}

/// A WebSocket message whose payload the closure writes (`.0` is the
/// frame's first byte): for the adapter's own use. Dropped once closing.
#[doc(hidden)]
pub struct WsFill<F>(pub(crate) u8, pub(crate) F);

impl<F: FnOnce(&mut BytesMut)> Encoder<WsFill<F>> for HttpCodec {
    type Error = Infallible;

    fn encode(
        &mut self,
        conn: &mut HttpStream,
        m: WsFill<F>,
        out: &mut Output<'_>,
    ) -> Result<(), Infallible> {
        if conn.ws.as_deref().is_some_and(|ws| !ws.closing) {
            out.append_with(|buf| frame::encode_in_place(m.0, buf, m.1));
        }
        Ok(())
    }
}

/// A close frame, after which nothing more is sent: for the adapter's own
/// use.
#[doc(hidden)]
pub struct WsClose<'r> {
    pub(crate) code: u16,
    pub(crate) reason: &'r str,
}

impl Encoder<WsClose<'_>> for HttpCodec {
    type Error = Infallible;

    fn encode(
        &mut self,
        conn: &mut HttpStream,
        c: WsClose<'_>,
        out: &mut Output<'_>,
    ) -> Result<(), Infallible> {
        if let Some(ws) = conn.ws.as_deref_mut() {
            if !ws.closing {
                ws.closing = true;
                out.append_with(|buf| frame::encode_close(c.code, c.reason, buf));
            }
        }
        Ok(())
    }
}

/// What tungstenite wrote while reading (pongs, the answer to a close):
/// for the adapter's own use.
#[doc(hidden)]
pub struct WsPending;

impl Encoder<WsPending> for HttpCodec {
    type Error = Infallible;

    fn encode(
        &mut self,
        conn: &mut HttpStream,
        _: WsPending,
        out: &mut Output<'_>,
    ) -> Result<(), Infallible> {
        if let Some(ws) = conn.ws.as_deref_mut() {
            if !ws.pending.is_empty() {
                out.append(&ws.pending);
                ws.pending = BytesMut::new();
            }
        }
        Ok(())
    }
}

/// A response as the service sends it: for the adapter's own use.
#[doc(hidden)]
pub struct Reply<'r> {
    pub(crate) response: &'r Response,
    pub(crate) head_only: bool,
    pub(crate) persistence: Persistence,
    pub(crate) now: Instant,
}

impl Encoder<Reply<'_>> for HttpCodec {
    type Error = Infallible;

    fn encode(
        &mut self,
        _: &mut HttpStream,
        reply: Reply<'_>,
        out: &mut Output<'_>,
    ) -> Result<(), Infallible> {
        let date = self.date.get(reply.now);
        let body =
            out.append_with(|buf| encode(reply.response, reply.head_only, reply.persistence, date, buf));
        if let Some(body) = body {
            out.push(&body);
        }
        Ok(())
    }
}

/// An interim `100 Continue`: for the adapter's own use.
#[doc(hidden)]
pub struct Continue;

impl Encoder<Continue> for HttpCodec {
    type Error = Infallible;

    fn encode(&mut self, _: &mut HttpStream, _: Continue, out: &mut Output<'_>) -> Result<(), Infallible> {
        out.append(CONTINUE);
        Ok(())
    }
}
