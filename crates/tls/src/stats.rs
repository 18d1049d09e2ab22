//! What happened to TLS connections, counted across loops.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters one TLS endpoint (every loop's [`TlsTransport`] of a service,
/// or of several) shares. Handshake-rate updates: relaxed atomics are cheap
/// at that rate. Read them with [`TlsStats::snapshot`].
///
/// Handshakes that stall are closed by the reactor and counted in its
/// [`ServiceStats::handshake_timeouts`](reactor::ServiceStats::handshake_timeouts);
/// every close below is also a
/// [`ServiceStats::protocol_errors`](reactor::ServiceStats::protocol_errors).
///
/// [`TlsTransport`]: crate::TlsTransport
#[derive(Debug, Default)]
pub struct TlsStats {
    handshakes: AtomicU64,
    failed_handshakes: AtomicU64,
    not_tls: AtomicU64,
    record_errors: AtomicU64,
    truncated: AtomicU64,
}

/// A snapshot of [`TlsStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsCounts {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that failed on the peer's bytes (a bad ClientHello, no
    /// common cipher suite or protocol, an alert from the peer, a peer that
    /// closed during the handshake), not-TLS ones included.
    pub failed_handshakes: u64,
    /// Connections whose first bytes were not a TLS handshake record
    /// (plaintext on a TLS port).
    pub not_tls: u64,
    /// Established connections closed for a bad record (one that does not
    /// decrypt, an unexpected message, an alert).
    pub record_errors: u64,
    /// Connections the peer closed in the middle of a record.
    pub truncated: u64,
}

/// Which counter an event goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Handshake,
    FailedHandshake,
    NotTls,
    RecordError,
    Truncated,
}

impl TlsStats {
    pub(crate) fn count(&self, event: Event) {
        let counter = match event {
            Event::Handshake => &self.handshakes,
            Event::FailedHandshake => &self.failed_handshakes,
            Event::NotTls => {
                self.failed_handshakes.fetch_add(1, Relaxed);
                &self.not_tls
            }
            Event::RecordError => &self.record_errors,
            Event::Truncated => &self.truncated,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// The counts now. Safe from any thread.
    pub fn snapshot(&self) -> TlsCounts {
        TlsCounts {
            handshakes: self.handshakes.load(Relaxed),
            failed_handshakes: self.failed_handshakes.load(Relaxed),
            not_tls: self.not_tls.load(Relaxed),
            record_errors: self.record_errors.load(Relaxed),
            truncated: self.truncated.load(Relaxed),
        }
    }
}
