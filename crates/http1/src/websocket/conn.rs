//! One upgraded connection: tungstenite's `WebSocketContext` reading from
//! the reactor's input and writing (pongs, close replies) into the
//! connection's output, and the handler the messages go to.

use super::{close_code, frame, WebSocketHandler, WsContext, WsMessage};
use bytes::{Buf, BytesMut};
use reactor::{CloseReason, Context};
use std::io::{self, Read, Write};
use tungstenite::error::{CapacityError, Error, ProtocolError};
use tungstenite::protocol::{Message, Role, WebSocketConfig, WebSocketContext};

/// tungstenite's own read buffer per connection. It is allocated up front
/// (and grows for a large frame), so an idle connection keeps it: 64 bytes
/// took an idle chat connection over WebSocket from 1,552 to 1,103 bytes
/// of server memory against 512 (benches/ws_idle.py); its default, 128 KiB,
/// is the trap of ANCHORS 8.5. It also bounds each read from the
/// connection's input, which is memory here, not a system call.
const READ_BUFFER: usize = 64;

/// The stream tungstenite sees: reads drain the bytes the reactor read,
/// writes append to the connection's output. Reads never block; an empty
/// input is `WouldBlock`, which tungstenite takes as "more later".
struct Io<'i, 'c, 'a> {
    input: &'i mut BytesMut,
    cx: &'c mut Context<'a>,
}

impl Read for Io<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.advance(n);
        Ok(n)
    }
}

impl Write for Io<'_, '_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Dropped, like any send, once the connection is closing.
        self.cx.write(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The close code and log text for an error tungstenite reports.
fn failure(e: &Error) -> (u16, String) {
    match e {
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            (close_code::TOO_BIG, format!("message of {size} bytes, at most {max_size}"))
        }
        Error::Capacity(c) => (close_code::TOO_BIG, c.to_string()),
        Error::Utf8(_) => (close_code::INVALID_PAYLOAD, "text message is not UTF-8".into()),
        Error::Protocol(ProtocolError::InvalidCloseSequence) => {
            (close_code::PROTOCOL_ERROR, "invalid close frame".into())
        }
        Error::Protocol(p) => (close_code::PROTOCOL_ERROR, p.to_string()),
        other => (close_code::INTERNAL, other.to_string()),
    }
}

/// An upgraded connection's WebSocket state. Boxed in the HTTP connection.
pub(crate) struct WsConn {
    ctx: WebSocketContext,
    handler: Box<dyn WebSocketHandler>,
    /// A close frame was sent (or the peer's answered): nothing more goes out.
    closing: bool,
}

impl WsConn {
    pub(crate) fn new(handler: Box<dyn WebSocketHandler>, max_message: usize) -> WsConn {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message))
            .accept_unmasked_frames(false);
        WsConn { ctx: WebSocketContext::new(Role::Server, Some(config)), handler, closing: false }
    }

    pub(crate) fn open(&mut self, cx: &mut Context<'_>) {
        self.handler.on_open(&mut WsContext::new(cx, &mut self.closing));
    }

    /// Decodes what arrived and hands each message to the handler.
    pub(crate) fn on_data(&mut self, cx: &mut Context<'_>, input: &mut BytesMut) {
        while !self.closing && cx.is_open() {
            let read = self.ctx.read(&mut Io { input: &mut *input, cx: &mut *cx });
            match read {
                Ok(Message::Binary(b)) => {
                    self.handler.on_message(&mut WsContext::new(cx, &mut self.closing), WsMessage::Binary(&b))
                }
                Ok(Message::Text(t)) => {
                    self.handler.on_message(&mut WsContext::new(cx, &mut self.closing), WsMessage::Text(&t))
                }
                // Pings are answered by tungstenite (written on the next
                // read or flush, below); pongs need nothing.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {
                    // tungstenite queued the reply close frame: write it, then close.
                    let _ = self.ctx.flush(&mut Io { input: &mut *input, cx: &mut *cx });
                    self.closing = true;
                    cx.close_with(CloseReason::PeerClosed);
                }
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                    self.closing = true;
                    cx.close_with(CloseReason::PeerClosed);
                }
                Err(e) => {
                    let (code, why) = failure(&e);
                    self.fail(cx, code, &why);
                }
            }
        }
        if self.closing {
            input.clear();
        } else {
            // An automatic pong still owed goes out with this turn's output.
            let _ = self.ctx.flush(&mut Io { input: &mut *input, cx: &mut *cx });
        }
    }

    /// Fails the connection (RFC 6455 section 7.1.7): a close frame with
    /// `code`, then the TCP close; input from now on is discarded.
    pub(crate) fn fail(&mut self, cx: &mut Context<'_>, code: u16, why: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        log::debug!("http1: websocket {}: closing with {code}: {why}", cx.id());
        cx.write_with(|buf| frame::encode_close(code, why, buf));
        let reason = if code == close_code::PROTOCOL_ERROR
            || code == close_code::INVALID_PAYLOAD
            || code == close_code::TOO_BIG
        {
            CloseReason::Protocol(format!("websocket {code}: {why}"))
        } else {
            CloseReason::Local
        };
        cx.close_with(reason);
    }

    pub(crate) fn timer(&mut self, cx: &mut Context<'_>, token: u64) {
        self.handler.on_timer(&mut WsContext::new(cx, &mut self.closing), token);
    }

    pub(crate) fn notify(&mut self, cx: &mut Context<'_>, token: u64) {
        self.handler.on_notify(&mut WsContext::new(cx, &mut self.closing), token);
    }

    pub(crate) fn shutdown(&mut self, cx: &mut Context<'_>) {
        self.handler.on_shutdown(&mut WsContext::new(cx, &mut self.closing));
        WsContext::new(cx, &mut self.closing).close(close_code::GOING_AWAY, "server shutting down");
    }

    pub(crate) fn closed(mut self, cx: &mut Context<'_>, reason: &CloseReason) {
        self.handler.on_close(cx, reason);
    }
}
