//! What the loop keeps for one connection besides the handler's state.

use crate::handler::CloseReason;
use crate::id::ConnId;
use crate::lifecycle::Lifecycle;
use crate::write_queue::WriteQueue;
use bytes::BytesMut;
use mio::net::TcpStream;

/// Listed in the loop's dirty list: output to flush.
const DIRTY: u8 = 1 << 0;
/// Listed in the loop's pending-read list.
const READ_LISTED: u8 = 1 << 1;

/// A close a handler asked for during a callback, applied when it returns.
pub(crate) struct CloseRequest {
    pub reason: CloseReason,
    /// Drop the queued output instead of writing it first.
    pub abort: bool,
}

/// A connection's socket, buffers and lifecycle.
pub(crate) struct ConnIo {
    pub stream: TcpStream,
    pub id: ConnId,
    pub out: WriteQueue,
    /// Undecoded input; empty (and unallocated) while idle.
    pub input: BytesMut,
    /// Milliseconds since the loop's epoch when input last arrived.
    pub last_read_ms: u64,
    pub life: Lifecycle,
    /// Loop list membership (`DIRTY`, `READ_LISTED`).
    lists: u8,
    /// Boxed: rare, and it keeps an idle connection small.
    pub close_request: Option<Box<CloseRequest>>,
}

impl ConnIo {
    pub(crate) fn new(stream: TcpStream, id: ConnId, now_ms: u64) -> ConnIo {
        ConnIo {
            stream,
            id,
            out: WriteQueue::default(),
            input: BytesMut::new(),
            last_read_ms: now_ms,
            life: Lifecycle::new(),
            lists: 0,
            close_request: None,
        }
    }

    /// Asks for a close, applied when the current callback returns. The
    /// first reason wins; an abort overrides a flushing close.
    pub(crate) fn request_close(&mut self, reason: CloseReason, abort: bool) {
        match &mut self.close_request {
            None => self.close_request = Some(Box::new(CloseRequest { reason, abort })),
            Some(r) if abort && !r.abort => **r = CloseRequest { reason, abort },
            Some(_) => {}
        }
    }

    /// Marks the connection dirty; true if it was not (list it then).
    pub(crate) fn mark_dirty(&mut self) -> bool {
        let fresh = self.lists & DIRTY == 0;
        self.lists |= DIRTY;
        fresh
    }

    pub(crate) fn clear_dirty(&mut self) {
        self.lists &= !DIRTY;
    }

    /// Marks the connection for a read later in the turn; true if it was
    /// not listed yet.
    pub(crate) fn list_read(&mut self) -> bool {
        let fresh = self.lists & READ_LISTED == 0;
        self.lists |= READ_LISTED;
        fresh
    }

    pub(crate) fn unlist_read(&mut self) {
        self.lists &= !READ_LISTED;
    }
}

/// One slab entry: the loop's part, the transport's and codec's
/// per-connection state, and the handler's state, borrowed apart.
pub(crate) struct Connection<T, K, S> {
    pub io: ConnIo,
    pub transport: T,
    pub codec: K,
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
        // The whole entry of a plain framed connection whose handler keeps
        // nothing (the loop's part, the frame codec's state; the slab adds a
        // word for its own tag).
        let entry =
            std::mem::size_of::<Connection<(), <crate::FrameCodec as crate::Codec>::Conn, Option<()>>>();
        assert!(entry <= 176, "a plain framed connection's entry grew to {entry} bytes");
    }
}
