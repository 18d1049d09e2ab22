//! One upgraded connection's stream, on the codec's side: tungstenite's
//! `WebSocketContext` reading from the reactor's input. What tungstenite
//! writes by itself while reading (pongs, the answer to a close) is kept
//! here until the service sends it (`WsPending`): a codec decodes, it does
//! not write.

use super::close_code;
use bytes::{Buf, Bytes, BytesMut};
use std::io::{self, Read, Write};
use tungstenite::error::{CapacityError, Error, ProtocolError};
use tungstenite::protocol::{Message, Role, WebSocketConfig, WebSocketContext};

/// tungstenite's own read buffer per connection. It is allocated up front
/// (and grows for a large frame), so an idle connection keeps it: with 64
/// bytes an idle chat connection over WebSocket costs about 1.2 KB of
/// server memory, 512 cost about 450 bytes more (benches/ws_idle.py); its
/// default, 128 KiB, is the trap of ANCHORS 8.5. It also bounds each read
/// from the connection's input, which is memory here, not a system call.
const READ_BUFFER: usize = 64;

/// What happened on a WebSocket, as the codec hands it to the service.
pub(crate) enum WsEvent {
    /// A whole binary message.
    Binary(Bytes),
    /// A whole text message (UTF-8 checked).
    Text(tungstenite::Utf8Bytes),
    /// The peer closed (its close frame is answered in `pending`).
    Closed,
    /// The peer broke the protocol: close with this code and reason.
    Failed(u16, String),
}

/// The stream tungstenite sees: reads drain the bytes the reactor read
/// (an empty input is `WouldBlock`, which tungstenite takes as "more
/// later"); writes go to `pending`.
struct Io<'i, 'o> {
    input: &'i mut BytesMut,
    pending: &'o mut BytesMut,
}

impl Read for Io<'_, '_> {
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

impl Write for Io<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
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

/// An upgraded connection's WebSocket stream. Boxed in the codec state.
pub(crate) struct WsStream {
    ctx: WebSocketContext,
    /// Bytes tungstenite wrote by itself, not yet sent.
    pub(crate) pending: BytesMut,
    /// A close frame was sent or answered: nothing more goes out, input is
    /// discarded.
    pub(crate) closing: bool,
}

impl WsStream {
    pub(crate) fn new(max_message: usize) -> WsStream {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message))
            .accept_unmasked_frames(false);
        WsStream {
            ctx: WebSocketContext::new(Role::Server, Some(config)),
            pending: BytesMut::new(),
            closing: false,
        }
    }

    /// The next event from `input` (consumed as it is read); `None` when
    /// more input is needed.
    pub(crate) fn decode(&mut self, input: &mut BytesMut) -> Option<WsEvent> {
        if self.closing {
            input.clear();
            return None;
        }
        loop {
            let read = self.ctx.read(&mut Io { input: &mut *input, pending: &mut self.pending });
            return Some(match read {
                Ok(Message::Binary(b)) => WsEvent::Binary(b),
                Ok(Message::Text(t)) => WsEvent::Text(t),
                // Pings are answered by tungstenite (into `pending`); pongs
                // need nothing.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) => {
                    // tungstenite queued the answer: into `pending` with it.
                    let _ = self.ctx.flush(&mut Io { input: &mut *input, pending: &mut self.pending });
                    self.closing = true;
                    WsEvent::Closed
                }
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A pong owed goes out with this read's output.
                    let _ = self.ctx.flush(&mut Io { input: &mut *input, pending: &mut self.pending });
                    return None;
                }
                Err(Error::ConnectionClosed | Error::AlreadyClosed) => {
                    self.closing = true;
                    WsEvent::Closed
                }
                Err(e) => {
                    let (code, why) = failure(&e);
                    // The service sends the close frame (and sets `closing`).
                    input.clear();
                    WsEvent::Failed(code, why)
                }
            });
        }
    }
}
