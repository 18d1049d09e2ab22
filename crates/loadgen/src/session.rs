//! What a scenario implements: a [`Session`] per connection, driven by the
//! shared worker loop, which hands it an [`Io`] to queue output and count
//! what happened; and the [`Plan`] of the run's phases.

use crate::fanout::FanoutTally;
use crate::stats::Latency;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::{Duration, Instant};

/// The phases of a run, before it starts.
#[derive(Clone, Copy, Debug)]
pub struct Phases {
    /// Load without measuring.
    pub warmup: Duration,
    /// The measured window; `None` runs until stopped.
    pub measure: Option<Duration>,
    /// After the window, how long to wait for replies to frames sent in it.
    pub drain: Duration,
}

/// The phases of a running run, as nanoseconds from its start (`epoch`),
/// the instant every connection was up and sessions began.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// When sessions started.
    pub epoch: Instant,
    /// Start of the measured window.
    pub measure_start_ns: u64,
    /// End of the measured window (no new frames after it).
    pub measure_end_ns: Option<u64>,
    /// How long after the window the run waits for outstanding replies.
    pub drain_ns: u64,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Plan {
    /// The plan of a run starting at `epoch`.
    pub fn new(epoch: Instant, phases: Phases) -> Plan {
        let start = ns(phases.warmup);
        Plan {
            epoch,
            measure_start_ns: start,
            measure_end_ns: phases.measure.map(|m| start.saturating_add(ns(m))),
            drain_ns: ns(phases.drain),
        }
    }

    /// The plan of the handshake that precedes a run: nothing in it is
    /// measured.
    pub fn handshake(epoch: Instant) -> Plan {
        Plan { epoch, measure_start_ns: u64::MAX, measure_end_ns: None, drain_ns: 0 }
    }

    /// Nanoseconds since the start.
    pub fn now_ns(&self) -> u64 {
        ns(self.epoch.elapsed())
    }

    /// The instant `t_ns` after the start.
    pub fn at(&self, t_ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(t_ns)
    }

    /// Whether new frames may be sent at `now_ns`.
    pub fn sending(&self, now_ns: u64) -> bool {
        self.measure_end_ns.is_none_or(|end| now_ns < end)
    }

    /// Whether `t_ns` falls in the measured window.
    pub fn in_window(&self, t_ns: u64) -> bool {
        t_ns >= self.measure_start_ns && self.sending(t_ns)
    }
}

/// Counts of one thread, merged over threads at the end.
#[derive(Default)]
pub struct Tally {
    /// Latency of replies to frames sent in the window.
    pub latency: Latency,
    /// Open loop: how late sends of the window went out after their
    /// scheduled time (the generator's share of the latency on the way out).
    pub send_lag: Latency,
    /// How long the event loop took per turn in the window, from the poll's
    /// return to the next poll: a reply is read at most that late.
    pub turns: Latency,
    /// Replies received during the window, and their bytes on the wire.
    pub replies: u64,
    /// See `replies`.
    pub reply_bytes: u64,
    /// Replies received at any time, and their bytes (for progress).
    pub all_replies: u64,
    /// See `all_replies`.
    pub all_reply_bytes: u64,
    /// Frames sent (or scheduled, open loop) in the window.
    pub sent: u64,
    /// Replies of the window awaited without a frame of this thread asking
    /// for them (fan-out deliveries, which other connections cause).
    pub awaited: u64,
    /// Replies to frames of the window.
    pub answered: u64,
    /// Frames of the window never answered: lost with their connection, not
    /// back by the end of the drain, or never sent for backpressure.
    pub unanswered: u64,
    /// Connections established.
    pub connected: u64,
    /// Connections that failed or timed out while connecting.
    pub connect_errors: u64,
    /// Connections lost to an I/O or protocol error.
    pub io_errors: u64,
    /// Connections the server closed.
    pub closed: u64,
    /// Replies that were not what was sent.
    pub verify_errors: u64,
    /// Replies that were errors (HTTP non-2xx, chat error replies, NATS
    /// `-ERR`), counted by kind in `error_kinds`.
    pub reply_errors: u64,
    /// Error replies by kind (`RateLimited`, `HTTP 404`...).
    pub error_kinds: BTreeMap<String, u64>,
    /// Sessions whose handshake (login, join, subscribe) completed.
    pub ready: u64,
    /// Fan-out accounting (chat, nats).
    pub fanout: FanoutTally,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
}

impl Tally {
    /// Every error counted.
    pub fn errors(&self) -> u64 {
        self.connect_errors + self.io_errors + self.closed + self.verify_errors + self.reply_errors
    }

    /// Frames of the window still waiting for a reply.
    pub fn in_flight(&self) -> u64 {
        (self.sent + self.awaited).saturating_sub(self.answered + self.unanswered)
    }

    /// Remembers `what` if it is the first error.
    pub fn note(&mut self, what: impl Display) {
        if self.first_error.is_none() {
            self.first_error = Some(what.to_string());
        }
    }

    /// Adds another thread's counts.
    pub fn merge(&mut self, o: Tally) {
        self.latency.merge(&o.latency);
        self.send_lag.merge(&o.send_lag);
        self.turns.merge(&o.turns);
        self.replies += o.replies;
        self.reply_bytes += o.reply_bytes;
        self.all_replies += o.all_replies;
        self.all_reply_bytes += o.all_reply_bytes;
        self.sent += o.sent;
        self.awaited += o.awaited;
        self.answered += o.answered;
        self.unanswered += o.unanswered;
        self.connected += o.connected;
        self.connect_errors += o.connect_errors;
        self.io_errors += o.io_errors;
        self.closed += o.closed;
        self.verify_errors += o.verify_errors;
        self.reply_errors += o.reply_errors;
        for (kind, n) in o.error_kinds {
            *self.error_kinds.entry(kind).or_default() += n;
        }
        self.ready += o.ready;
        self.fanout.merge(o.fanout);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// A session's view of its connection during a callback.
pub struct Io<'a> {
    /// Output to send; the worker writes it out once per loop turn.
    pub out: &'a mut Vec<u8>,
    /// This turn's time, ns since the start.
    pub now_ns: u64,
    /// The run's phases.
    pub plan: &'a Plan,
    /// This thread's counts.
    pub tally: &'a mut Tally,
}

impl Io<'_> {
    /// Whether new frames may be sent now.
    pub fn sending(&self) -> bool {
        self.plan.sending(self.now_ns)
    }

    /// Counts a frame stamped `stamp_ns`; true if it belongs to the window.
    pub fn sent(&mut self, stamp_ns: u64) -> bool {
        let in_window = self.plan.in_window(stamp_ns);
        self.tally.sent += u64::from(in_window);
        in_window
    }

    /// Counts a reply of `wire_bytes` to a frame that belongs to the window
    /// if `of_window`; its latency is recorded if its stamp is known.
    pub fn reply(&mut self, stamp_ns: Option<u64>, of_window: bool, wire_bytes: usize) {
        let t = &mut *self.tally;
        t.all_replies += 1;
        t.all_reply_bytes += wire_bytes as u64;
        if self.plan.in_window(self.now_ns) {
            t.replies += 1;
            t.reply_bytes += wire_bytes as u64;
        }
        if of_window {
            t.answered += 1;
            if let Some(stamp) = stamp_ns {
                t.latency.record(self.now_ns.saturating_sub(stamp));
            }
        }
    }

    /// Counts a reply that differs from what was sent.
    pub fn mismatch(&mut self, what: impl Display) {
        self.tally.verify_errors += 1;
        self.tally.note(what);
    }

    /// Counts frames of the window that were never sent.
    pub fn unsent(&mut self, frames: u64) {
        self.tally.unanswered += frames;
    }

    /// Counts replies of the window this connection waits for although it
    /// did not ask for them (fan-out deliveries).
    pub fn await_replies(&mut self, n: u64) {
        self.tally.awaited += n;
    }

    /// Counts an error reply of this kind (`RateLimited`, `HTTP 503`).
    pub fn reply_error(&mut self, kind: &str) {
        self.tally.reply_errors += 1;
        match self.tally.error_kinds.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.tally.error_kinds.insert(kind.to_string(), 1);
            }
        }
        self.tally.note(format_args!("error reply: {kind}"));
    }

    /// The session's handshake completed.
    pub fn ready(&mut self) {
        self.tally.ready += 1;
    }
}

/// One connection's protocol, driven by the worker loop. Callbacks must
/// not block: they queue output in [`Io::out`] and return.
pub trait Session: Send + 'static {
    /// Every connection is up: queue a handshake (log in, join,
    /// subscribe), and call [`Io::ready`] once it has completed; the run
    /// starts when every session is ready. Times passed meanwhile count
    /// from the end of connecting, not from the run's start. By default
    /// there is no handshake.
    fn handshake(&mut self, io: &mut Io<'_>) {
        io.ready();
    }

    /// The run starts (every connection is up and ready): queue the first
    /// output.
    fn start(&mut self, io: &mut Io<'_>);

    /// Bytes arrived after the unconsumed rest of earlier ones; returns how
    /// many were consumed. An error closes the connection.
    fn on_input(&mut self, input: &[u8], io: &mut Io<'_>) -> Result<usize, String>;

    /// When the session next wants [`Session::on_due`], in ns from the start.
    fn next_due(&self) -> Option<u64> {
        None
    }

    /// Its due time came.
    fn on_due(&mut self, _io: &mut Io<'_>) {}

    /// All queued output was written out.
    fn on_drained(&mut self, _io: &mut Io<'_>) {}

    /// Frames of the window sent and not yet answered.
    fn outstanding(&self) -> u64;

    /// The run is over: count what the tally does not know yet.
    fn finish(&mut self, _io: &mut Io<'_>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_windows() {
        let phases = Phases {
            warmup: Duration::from_secs(2),
            measure: Some(Duration::from_secs(10)),
            drain: Duration::from_secs(1),
        };
        let p = Plan::new(Instant::now(), phases);
        assert!(!p.in_window(1_999_999_999));
        assert!(p.in_window(2_000_000_000));
        assert!(p.in_window(11_999_999_999));
        assert!(!p.in_window(12_000_000_000));
        assert!(p.sending(11_999_999_999) && !p.sending(12_000_000_000));
        let forever = Plan::new(Instant::now(), Phases { measure: None, ..phases });
        assert!(forever.sending(u64::MAX) && forever.in_window(u64::MAX));
    }
}

/// Helpers for the sessions' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Io, Plan, Tally};

    /// Runs `f` with an Io at `now_ns`; returns the output it queued.
    pub(crate) fn call<R>(
        plan: &Plan,
        tally: &mut Tally,
        now_ns: u64,
        f: impl FnOnce(&mut Io<'_>) -> R,
    ) -> (R, Vec<u8>) {
        let mut out = Vec::new();
        let r = f(&mut Io { out: &mut out, now_ns, plan, tally });
        (r, out)
    }
}
