//! A connection's lifecycle as a pure state machine: no socket, no clock,
//! no handler. The loop feeds it what happened (input, EOF, output queued or
//! written, a close asked for, a timer, an I/O error) and does what each
//! transition answers (pause reading, call `on_drained`, call `on_close`,
//! send FIN, remove the connection). Every transition is unit-tested below.
//!
//! ```text
//!            close (flush)                output empty            peer FIN, error
//!   Open ───────────────────▶ Closing ───────────────────▶ Lingering ─────────────▶ Closed
//!    │  ▲ backpressure on/off     │  (transport closed,        │    or close timer
//!    │  └ (paused while high)     │   then FIN sent)           │
//!    │                            │ EOF already seen, or       │
//!    │ abort, slow consumer,      │ close timer, or error      │
//!    │ I/O error, idle timeout    ▼                            ▼
//!    └──────────────────────────────────────────────────────▶ Closed
//! ```
//!
//! Leaving `Open` is the *decision* to close: that is when the handler's
//! `on_close` runs and the close is counted, whatever flushing and lingering
//! follow. `Closed` means the socket goes.

use crate::config::SlowConsumerPolicy;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading and writing; the handler owns it.
    Open,
    /// Closing decided: queued output is being written, input is left
    /// unread, nothing new is queued.
    Closing,
    /// Output written and FIN sent: input is read and dropped until the
    /// peer closes too (or the close timer fires), so that unread input does
    /// not turn the close into a reset that destroys the last replies.
    Lingering,
    /// Done: the socket is to be closed and the connection removed.
    Closed,
}

/// The output limits backpressure is judged by (from the service config).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub high: usize,
    pub low: usize,
    pub max: usize,
    pub policy: SlowConsumerPolicy,
}

/// Whether a read may go ahead now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadGate {
    /// Read and hand the input to the handler.
    Read,
    /// Read and drop the input (lingering).
    Discard,
    /// Do not read now; `read_ready` remembers that input may be waiting.
    Hold,
}

/// What queued output means for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backpressure {
    /// Within limits (or already closing: the queue only shrinks now).
    Ok,
    /// Over the high watermark under `PauseReading`: reading stops.
    Paused,
    /// Over the hard limit, or over the high watermark under `Disconnect`:
    /// close now, dropping the output.
    SlowConsumer,
}

/// What the loop does after a close was asked for or became due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Step {
    /// The close was decided by this call: call `on_close`, count it.
    pub decided: bool,
    /// Arm the timer that bounds the whole close (flush and linger).
    pub arm_timer: bool,
    /// Let the transport queue its own goodbye (a TLS close_notify), then
    /// flush again.
    pub close_transport: bool,
    /// Shut down the writing side (FIN) and start reading to discard.
    pub send_fin: bool,
    /// Close the socket and remove the connection.
    pub remove: bool,
}

impl Step {
    const NOTHING: Step =
        Step { decided: false, arm_timer: false, close_transport: false, send_fin: false, remove: false };
}

/// A connection's state. Small and `Copy`: it lives in every slab entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lifecycle {
    phase: Phase,
    /// The peer sent EOF: nothing more will be read.
    eof: bool,
    /// Reading stopped by backpressure.
    paused: bool,
    /// Output passed the high watermark; `on_drained` is owed.
    high: bool,
    /// Input may be waiting unread: edge-triggered polling will not report
    /// it again, so the loop must come back to it.
    read_ready: bool,
    /// The transport was told the connection is closing.
    transport_closed: bool,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A connection just accepted.
    pub(crate) const fn new() -> Lifecycle {
        Lifecycle {
            phase: Phase::Open,
            eof: false,
            paused: false,
            high: false,
            read_ready: false,
            transport_closed: false,
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// True while the handler owns the connection.
    pub(crate) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Output may be queued only while open: once the close is decided
    /// (`on_close` ran), sends to the connection are dropped.
    pub(crate) fn accepts_output(&self) -> bool {
        self.phase == Phase::Open
    }

    #[cfg(test)]
    pub(crate) fn is_eof(&self) -> bool {
        self.eof
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// A readiness event (or a resumed read) asks to read.
    pub(crate) fn read_gate(&mut self) -> ReadGate {
        match self.phase {
            Phase::Lingering => ReadGate::Discard,
            Phase::Closing | Phase::Closed => ReadGate::Hold,
            Phase::Open if self.paused || self.eof => {
                self.read_ready = true;
                ReadGate::Hold
            }
            Phase::Open => {
                self.read_ready = false;
                ReadGate::Read
            }
        }
    }

    /// A read pass stopped with input possibly left (budget spent, paused).
    pub(crate) fn leave_unread(&mut self) {
        self.read_ready = true;
    }

    /// The peer closed its side (EOF): nothing more will be read.
    pub(crate) fn peer_closed(&mut self) {
        self.eof = true;
    }

    /// Output now queued: `queued` bytes.
    pub(crate) fn output(&mut self, queued: usize, limits: &Limits) -> Backpressure {
        if self.phase != Phase::Open {
            return Backpressure::Ok;
        }
        if queued > limits.max {
            return Backpressure::SlowConsumer;
        }
        if queued > limits.high && !self.high {
            self.high = true;
            return match limits.policy {
                SlowConsumerPolicy::PauseReading => {
                    self.paused = true;
                    Backpressure::Paused
                }
                SlowConsumerPolicy::Disconnect => Backpressure::SlowConsumer,
            };
        }
        Backpressure::Ok
    }

    /// Output was written and `queued` bytes are left. `Some(resume)` when
    /// it fell below the low watermark after passing the high one: call
    /// `on_drained`, and read again at once if `resume` (input waited while
    /// reading was paused).
    pub(crate) fn written(&mut self, queued: usize, limits: &Limits) -> Option<bool> {
        if !self.high || queued > limits.low {
            return None;
        }
        self.high = false;
        let resume = self.paused && self.read_ready && self.phase == Phase::Open;
        self.paused = false;
        Some(resume && !self.eof)
    }

    /// A close is asked for: after the queued output (`abort` false) or at
    /// once, dropping it. The first decision stands; an abort still
    /// cuts a flushing close short.
    pub(crate) fn close(&mut self, abort: bool) -> Step {
        match (self.phase, abort) {
            (Phase::Open, false) => {
                self.phase = Phase::Closing;
                Step { decided: true, arm_timer: true, ..Step::NOTHING }
            }
            (Phase::Open, true) => {
                self.phase = Phase::Closed;
                Step { decided: true, remove: true, ..Step::NOTHING }
            }
            (Phase::Closing | Phase::Lingering, true) => {
                self.phase = Phase::Closed;
                Step { remove: true, ..Step::NOTHING }
            }
            _ => Step::NOTHING,
        }
    }

    /// A read or write failed (reset by peer, broken pipe...).
    pub(crate) fn reset(&mut self) -> Step {
        let decided = self.phase == Phase::Open;
        if self.phase == Phase::Closed {
            return Step::NOTHING;
        }
        self.phase = Phase::Closed;
        Step { decided, remove: true, ..Step::NOTHING }
    }

    /// Everything queued (by the handler and by the transport) is written.
    /// While closing this moves the close on: first the transport's goodbye,
    /// then FIN (or, if the peer already sent its own, the end).
    pub(crate) fn flushed(&mut self) -> Step {
        if self.phase != Phase::Closing {
            return Step::NOTHING;
        }
        if !self.transport_closed {
            self.transport_closed = true;
            return Step { close_transport: true, ..Step::NOTHING };
        }
        if self.eof {
            // The peer is gone already: no input can come to linger for.
            self.phase = Phase::Closed;
            return Step { remove: true, ..Step::NOTHING };
        }
        self.phase = Phase::Lingering;
        Step { send_fin: true, ..Step::NOTHING }
    }

    /// FIN could not be sent (the socket is already shut): end it.
    pub(crate) fn fin_failed(&mut self) -> Step {
        self.reset()
    }

    /// While lingering, the peer closed (EOF) or the socket failed.
    pub(crate) fn linger_done(&mut self) -> Step {
        if self.phase != Phase::Lingering {
            return Step::NOTHING;
        }
        self.phase = Phase::Closed;
        Step { remove: true, ..Step::NOTHING }
    }

    /// The timer bounding the close fired: a peer that never reads or never
    /// closes cannot hold the connection.
    pub(crate) fn close_timer_fired(&mut self) -> Step {
        match self.phase {
            Phase::Closing | Phase::Lingering => {
                self.phase = Phase::Closed;
                Step { remove: true, ..Step::NOTHING }
            }
            _ => Step::NOTHING,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { high: 100, low: 25, max: 1000, policy: SlowConsumerPolicy::PauseReading };
    const DISCONNECT: Limits = Limits { policy: SlowConsumerPolicy::Disconnect, ..LIMITS };

    fn step(decided: bool, arm_timer: bool, close_transport: bool, send_fin: bool, remove: bool) -> Step {
        Step { decided, arm_timer, close_transport, send_fin, remove }
    }

    #[test]
    fn open_reads_and_accepts_output() {
        let mut c = Lifecycle::new();
        assert_eq!(c.phase(), Phase::Open);
        assert!(c.is_open() && c.accepts_output());
        assert_eq!(c.read_gate(), ReadGate::Read);
        assert_eq!(c.output(50, &LIMITS), Backpressure::Ok);
    }

    #[test]
    fn eof_stops_reading_but_not_writing() {
        let mut c = Lifecycle::new();
        c.peer_closed();
        assert!(c.is_eof());
        assert_eq!(c.read_gate(), ReadGate::Hold);
        assert!(c.accepts_output(), "a half-closed peer can still be answered");
    }

    #[test]
    fn half_close_then_close_ends_without_lingering() {
        let mut c = Lifecycle::new();
        c.peer_closed();
        assert_eq!(c.close(false), step(true, true, false, false, false));
        assert_eq!(c.flushed(), step(false, false, true, false, false), "transport first");
        assert_eq!(c.flushed(), step(false, false, false, false, true), "no FIN wait: peer already sent its");
        assert_eq!(c.phase(), Phase::Closed);
    }

    #[test]
    fn backpressure_pauses_then_resumes_with_drained() {
        let mut c = Lifecycle::new();
        assert_eq!(c.output(101, &LIMITS), Backpressure::Paused);
        assert!(c.is_paused());
        assert_eq!(c.output(500, &LIMITS), Backpressure::Ok, "already past high: no new verdict");
        assert_eq!(c.read_gate(), ReadGate::Hold, "paused: input waits");
        assert_eq!(c.written(30, &LIMITS), None, "above low");
        assert_eq!(c.written(25, &LIMITS), Some(true), "drained; input waited, so read again");
        assert!(!c.is_paused());
        assert_eq!(c.read_gate(), ReadGate::Read);
        assert_eq!(c.written(0, &LIMITS), None, "on_drained once per crossing");
    }

    #[test]
    fn drained_without_waiting_input_does_not_resume_a_read() {
        let mut c = Lifecycle::new();
        assert_eq!(c.output(101, &LIMITS), Backpressure::Paused);
        assert_eq!(c.written(0, &LIMITS), Some(false));
    }

    #[test]
    fn slow_consumer_over_the_hard_limit_or_under_disconnect() {
        let mut c = Lifecycle::new();
        assert_eq!(c.output(1001, &LIMITS), Backpressure::SlowConsumer);
        let mut d = Lifecycle::new();
        assert_eq!(d.output(101, &DISCONNECT), Backpressure::SlowConsumer);
        assert_eq!(d.close(true), step(true, false, false, false, true));
        assert_eq!(d.phase(), Phase::Closed);
    }

    #[test]
    fn close_with_flush_then_linger_then_peer_fin() {
        let mut c = Lifecycle::new();
        assert_eq!(c.close(false), step(true, true, false, false, false));
        assert_eq!(c.phase(), Phase::Closing);
        assert!(!c.accepts_output(), "nothing new once on_close ran");
        assert_eq!(c.read_gate(), ReadGate::Hold, "input waits while the output flushes");
        assert_eq!(c.output(5000, &LIMITS), Backpressure::Ok, "a closing queue only shrinks");
        assert_eq!(c.close(false), Step::NOTHING, "the first decision stands");
        assert_eq!(c.flushed(), step(false, false, true, false, false));
        assert_eq!(c.flushed(), step(false, false, false, true, false));
        assert_eq!(c.phase(), Phase::Lingering);
        assert_eq!(c.read_gate(), ReadGate::Discard);
        assert_eq!(c.linger_done(), step(false, false, false, false, true));
        assert_eq!(c.phase(), Phase::Closed);
    }

    #[test]
    fn linger_and_flush_are_bounded_by_the_close_timer() {
        let mut closing = Lifecycle::new();
        closing.close(false);
        assert_eq!(closing.close_timer_fired(), step(false, false, false, false, true));
        let mut lingering = Lifecycle::new();
        lingering.close(false);
        lingering.flushed();
        lingering.flushed();
        assert_eq!(lingering.close_timer_fired(), step(false, false, false, false, true));
        let mut open = Lifecycle::new();
        assert_eq!(open.close_timer_fired(), Step::NOTHING, "a stale timer of an open connection");
    }

    #[test]
    fn abort_drops_output_and_cuts_a_flushing_close_short() {
        let mut c = Lifecycle::new();
        assert_eq!(c.close(true), step(true, false, false, false, true));
        let mut d = Lifecycle::new();
        d.close(false);
        assert_eq!(d.close(true), step(false, false, false, false, true), "decided earlier: on_close ran");
    }

    #[test]
    fn reset_decides_only_once() {
        let mut c = Lifecycle::new();
        assert_eq!(c.reset(), step(true, false, false, false, true));
        assert_eq!(c.reset(), Step::NOTHING);
        let mut d = Lifecycle::new();
        d.close(false);
        assert_eq!(d.reset(), step(false, false, false, false, true));
        let mut e = Lifecycle::new();
        e.close(false);
        e.flushed();
        assert_eq!(e.fin_failed(), step(false, false, false, false, true));
    }

    #[test]
    fn shutdown_is_a_flushing_close() {
        // The loop calls on_shutdown, then close(false): the same path as any
        // close, so queued goodbyes are flushed before FIN.
        let mut c = Lifecycle::new();
        assert_eq!(c.output(10, &LIMITS), Backpressure::Ok);
        assert!(c.close(false).decided);
        assert!(c.flushed().close_transport);
        assert!(c.flushed().send_fin);
    }

    #[test]
    fn flushed_while_open_does_nothing() {
        let mut c = Lifecycle::new();
        assert_eq!(c.flushed(), Step::NOTHING);
        assert_eq!(c.linger_done(), Step::NOTHING);
    }

    #[test]
    fn budget_spent_leaves_input_for_later() {
        let mut c = Lifecycle::new();
        assert_eq!(c.read_gate(), ReadGate::Read);
        c.leave_unread();
        assert_eq!(c.output(101, &LIMITS), Backpressure::Paused);
        assert_eq!(c.written(0, &LIMITS), Some(true), "the unread input is read on resume");
    }

    #[test]
    fn it_stays_small() {
        assert!(std::mem::size_of::<Lifecycle>() <= 8);
    }
}
