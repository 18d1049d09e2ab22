//! Per-service counters, written by the loops without contention and summed
//! on read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One loop's counters for one service. Only that loop writes them, so the
/// relaxed atomics never contend; they are atomics only so that any thread
/// can read them.
#[derive(Default)]
#[repr(align(128))] // keep loops' counters on separate cache lines
pub(crate) struct Counters {
    pub accepted: AtomicU64,
    pub closed: AtomicU64,
    pub rejected: AtomicU64,
    pub accept_errors: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub frames_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub idle_timeouts: AtomicU64,
    pub handshake_timeouts: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub panics: AtomicU64,
    /// Messages a connection's codec refused (sent to it from elsewhere).
    pub refused: AtomicU64,
    /// A gauge: connections whose close is decided but whose socket is
    /// still flushing or lingering.
    pub closing: AtomicU64,
}

impl Counters {
    #[inline]
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        // A plain load+store: this loop is the only writer.
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.store(counter.load(Relaxed).wrapping_sub(n), Relaxed);
    }
}

/// A snapshot of one service's counters, summed over every loop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Service name.
    pub name: String,
    /// Connections accepted (not counting ones rejected at the limit).
    pub accepted: u64,
    /// Connections open now: accepted and not yet closed from the handler's
    /// view (`on_close` has not run).
    pub open: u64,
    /// Connections whose close is decided but whose socket is still writing
    /// its last output or lingering for the peer's FIN.
    pub closing: u64,
    /// Connections closed, for any reason.
    pub closed: u64,
    /// Connections refused because the service was at `max_connections`.
    pub rejected: u64,
    /// Failed `accept` calls (EMFILE and the like).
    pub accept_errors: u64,
    /// Bytes read from peers.
    pub bytes_in: u64,
    /// Bytes written to peers.
    pub bytes_out: u64,
    /// Messages decoded by the service's codec (frames, requests).
    pub frames_in: u64,
    /// Messages encoded by the service's codec: replies, and messages sent
    /// to its connections from elsewhere.
    pub frames_out: u64,
    /// Messages sent to a connection from elsewhere that its codec refused
    /// (an HTTP connection takes no pushed message, say).
    pub refused: u64,
    /// Connections closed because their output queue passed its limit.
    pub slow_consumers: u64,
    /// Connections closed for being silent past the idle timeout.
    pub idle_timeouts: u64,
    /// Connections closed because their transport's handshake (TLS) did not
    /// finish within the handshake timeout.
    pub handshake_timeouts: u64,
    /// Connections closed for a protocol error (bad frame, oversized input,
    /// bytes the transport could not take: a broken TLS record, say).
    pub protocol_errors: u64,
    /// Handler panics (each closed its connection).
    pub panics: u64,
}

impl ServiceStats {
    pub(crate) fn sum<'a>(
        name: &str,
        sockets: u64,
        loops: impl Iterator<Item = &'a Counters>,
    ) -> ServiceStats {
        let mut s = ServiceStats { name: name.to_string(), ..ServiceStats::default() };
        for c in loops {
            s.accepted += c.accepted.load(Relaxed);
            s.closed += c.closed.load(Relaxed);
            s.rejected += c.rejected.load(Relaxed);
            s.accept_errors += c.accept_errors.load(Relaxed);
            s.bytes_in += c.bytes_in.load(Relaxed);
            s.bytes_out += c.bytes_out.load(Relaxed);
            s.frames_in += c.frames_in.load(Relaxed);
            s.frames_out += c.frames_out.load(Relaxed);
            s.slow_consumers += c.slow_consumers.load(Relaxed);
            s.idle_timeouts += c.idle_timeouts.load(Relaxed);
            s.handshake_timeouts += c.handshake_timeouts.load(Relaxed);
            s.protocol_errors += c.protocol_errors.load(Relaxed);
            s.panics += c.panics.load(Relaxed);
            s.refused += c.refused.load(Relaxed);
            s.closing = s.closing.wrapping_add(c.closing.load(Relaxed));
        }
        // Read apart from `sockets`: a close in between may skew it by one.
        s.closing = s.closing.min(sockets);
        s.open = sockets - s.closing;
        s
    }
}
