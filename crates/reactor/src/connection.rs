//! What the loop keeps for one connection besides the handler's state.

use crate::handler::CloseReason;
use crate::id::ConnId;
use crate::write_queue::WriteQueue;
use bytes::BytesMut;
use mio::net::TcpStream;

/// Bits of [`ConnIo::flags`].
pub(crate) mod flag {
    /// Listed in the loop's dirty list: output to flush at the end of the turn.
    pub const DIRTY: u16 = 1 << 0;
    /// Reading paused by backpressure (output over the high watermark).
    pub const PAUSED: u16 = 1 << 1;
    /// Readable input left unread (budget spent, or paused): edge-triggered
    /// polling will not report it again, so the loop must come back to it.
    pub const READ_READY: u16 = 1 << 2;
    /// The peer sent EOF.
    pub const EOF: u16 = 1 << 3;
    /// Close once the output is flushed (reason in `pending_close`).
    pub const CLOSING: u16 = 1 << 4;
    /// FIN sent; discarding input until the peer closes or linger ends.
    pub const LINGER: u16 = 1 << 5;
    /// Close now, dropping queued output (reason in `pending_close`).
    pub const ABORT: u16 = 1 << 6;
    /// Output passed the high watermark; `on_drained` is owed.
    pub const HIGH: u16 = 1 << 7;
    /// Listed in the loop's pending-read list.
    pub const READ_LISTED: u16 = 1 << 8;
    /// The timer bounding a requested close is armed.
    pub const CLOSE_TIMER: u16 = 1 << 9;
}

/// A connection's socket and buffers.
pub(crate) struct ConnIo {
    pub stream: TcpStream,
    pub id: ConnId,
    pub out: WriteQueue,
    /// Unconsumed input; empty (and unallocated) while idle.
    pub input: BytesMut,
    /// Milliseconds since the loop's epoch when input last arrived.
    pub last_read_ms: u64,
    pub flags: u16,
    pub pending_close: Option<Box<CloseReason>>,
}

impl ConnIo {
    pub(crate) fn new(stream: TcpStream, id: ConnId, now_ms: u64) -> ConnIo {
        ConnIo {
            stream,
            id,
            out: WriteQueue::default(),
            input: BytesMut::new(),
            last_read_ms: now_ms,
            flags: 0,
            pending_close: None,
        }
    }

    pub(crate) fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    /// Asks for a close after the output is flushed; the first reason given wins.
    pub(crate) fn request_close(&mut self, reason: CloseReason) {
        if self.pending_close.is_none() {
            self.pending_close = Some(Box::new(reason));
        }
        self.flags |= flag::CLOSING;
    }

    /// Asks for an immediate close that drops queued output.
    pub(crate) fn request_abort(&mut self, reason: CloseReason) {
        if !self.has(flag::ABORT) {
            self.pending_close = Some(Box::new(reason));
        }
        self.flags |= flag::ABORT;
    }

    pub(crate) fn take_reason(&mut self) -> CloseReason {
        self.pending_close.take().map(|b| *b).unwrap_or(CloseReason::Local)
    }
}

/// One slab entry: the loop's part and the handler's part, borrowed apart.
pub(crate) struct Connection<S> {
    pub io: ConnIo,
    pub state: S,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle connection costs the loop (besides the handler's state
    /// and one timer entry): keep it small, it is multiplied by every
    /// connection held.
    #[test]
    fn an_idle_connection_is_small() {
        let size = std::mem::size_of::<ConnIo>();
        assert!(size <= 160, "ConnIo grew to {size} bytes");
    }
}
