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
    pub protocol_errors: AtomicU64,
    pub panics: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        // A plain load+store: this loop is the only writer.
        counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
    }
}

/// A snapshot of one service's counters, summed over every loop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Service name.
    pub name: String,
    /// Connections accepted (not counting ones rejected at the limit).
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
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
    /// Frames decoded (counted by framed handlers).
    pub frames_in: u64,
    /// Frames sent (counted by framed handlers).
    pub frames_out: u64,
    /// Connections closed because their output queue passed its limit.
    pub slow_consumers: u64,
    /// Connections closed for being silent past the idle timeout.
    pub idle_timeouts: u64,
    /// Connections closed for a protocol error (bad frame, oversized input).
    pub protocol_errors: u64,
    /// Handler panics (each closed its connection).
    pub panics: u64,
}

impl ServiceStats {
    pub(crate) fn sum<'a>(name: &str, open: u64, loops: impl Iterator<Item = &'a Counters>) -> ServiceStats {
        let mut s = ServiceStats { name: name.to_string(), open, ..ServiceStats::default() };
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
            s.protocol_errors += c.protocol_errors.load(Relaxed);
            s.panics += c.panics.load(Relaxed);
        }
        s
    }
}
