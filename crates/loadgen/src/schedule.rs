//! The open-loop send schedule (wrk2's model): every send time is fixed in
//! advance from the rate, and latency is measured from the scheduled time,
//! not from when the send happened. A server that stalls then shows its
//! stall in every reply it delayed, instead of silently slowing the
//! generator down (coordinated omission).
//!
//! The k-th send of the whole run is due at k / rate and goes to connection
//! k mod connections, so connection c sends at (c + j·connections) / rate.
//! Connections go to threads round-robin, so each thread's sends are evenly
//! spaced too. Times are computed in integer nanoseconds from the start, so
//! they never drift however long the run.

use crate::session::{Io, Plan};

/// When each connection sends, for a total rate over all connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    rate: u64,
    connections: u64,
}

const NS: u128 = 1_000_000_000;

impl Schedule {
    /// A schedule of `rate` sends per second in all, over `connections`.
    pub fn new(rate: u64, connections: usize) -> Result<Schedule, String> {
        if rate == 0 {
            return Err("--rate must be at least 1 frame/s".into());
        }
        if connections == 0 {
            return Err("at least one connection is needed".into());
        }
        Ok(Schedule { rate, connections: connections as u64 })
    }

    /// Nanoseconds from the start to the `j`-th send of connection `conn`.
    pub fn offset_ns(&self, conn: usize, j: u64) -> u64 {
        let k = j as u128 * self.connections as u128 + conn as u128;
        u64::try_from(k * NS / self.rate as u128).unwrap_or(u64::MAX)
    }

    /// How many sends of connection `conn` fall in the measured window.
    pub fn window_sends(&self, conn: usize, plan: &Plan) -> u64 {
        let Some(end) = plan.measure_end_ns else { return 0 };
        let first = self.sends_before(conn, plan.measure_start_ns);
        self.sends_before(conn, end).saturating_sub(first)
    }

    /// How many sends of connection `conn` are due strictly before `t_ns`.
    pub fn sends_before(&self, conn: usize, t_ns: u64) -> u64 {
        // offset(j) >= t  <=>  (j·C + c)·1e9 >= t·rate  <=>  j·C + c >= ceil(t·rate / 1e9).
        let first_global = (t_ns as u128 * self.rate as u128).div_ceil(NS);
        let c = conn as u128;
        if first_global <= c {
            return 0;
        }
        u64::try_from((first_global - c).div_ceil(self.connections as u128)).unwrap_or(u64::MAX)
    }
}

/// One connection's progress through a [`Schedule`]: which send is next,
/// and whether it waits for output to drain (or for a reply, when the
/// session caps what is in flight). A send that waits goes out late,
/// stamped with its scheduled time, so the wait shows in its latency.
#[derive(Clone, Copy, Debug)]
pub struct Pacer {
    schedule: Schedule,
    conn: usize,
    next: u64,
    held: bool,
    done: bool,
}

impl Pacer {
    /// Connection `conn`'s sends on `schedule`.
    pub fn new(schedule: Schedule, conn: usize) -> Pacer {
        Pacer { schedule, conn, next: 0, held: false, done: false }
    }

    /// The scheduled time of the next send if it may go now: due by now,
    /// scheduled before the window's end, and queued output under
    /// `out_cap` (else the pacer holds until [`Pacer::release`]). The
    /// caller sends it now: how late that is gets recorded.
    pub fn due(&mut self, io: &mut Io<'_>, out_cap: usize) -> Option<u64> {
        if self.held || self.done {
            return None;
        }
        let at = self.schedule.offset_ns(self.conn, self.next);
        if at >= io.plan.measure_end_ns.unwrap_or(u64::MAX) {
            self.done = true;
            return None;
        }
        if at > io.now_ns {
            return None;
        }
        if io.out.len() >= out_cap {
            self.held = true;
            return None;
        }
        if io.plan.in_window(at) {
            io.tally.send_lag.record(io.now_ns.saturating_sub(at));
        }
        Some(at)
    }

    /// The send [`Pacer::due`] returned went out.
    pub fn advance(&mut self) {
        self.next += 1;
    }

    /// Waits (for a reply, say) until [`Pacer::release`].
    pub fn hold(&mut self) {
        self.held = true;
    }

    /// Whether it waits.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Sends may go again.
    pub fn release(&mut self) {
        self.held = false;
    }

    /// When the next send is due, unless it waits or the schedule is over.
    pub fn next_due(&self) -> Option<u64> {
        (!self.held && !self.done).then(|| self.schedule.offset_ns(self.conn, self.next))
    }

    /// Sends of the measured window that never went out.
    pub fn unsent(&self, plan: &Plan) -> u64 {
        let Some(end) = plan.measure_end_ns else { return 0 };
        let first = self.schedule.sends_before(self.conn, plan.measure_start_ns);
        let due = self.schedule.sends_before(self.conn, end);
        due.saturating_sub(self.next.max(first))
    }
}

/// The connections thread `thread` of `threads` drives, in order:
/// round-robin, so that each thread's sends stay evenly spaced.
pub fn conns_of(thread: usize, connections: usize, threads: usize) -> impl Iterator<Item = usize> {
    (thread..connections).step_by(threads.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every send due before `end_ns`, as (time, connection), in time order.
    fn all_sends(s: &Schedule, conns: impl Iterator<Item = usize>, end_ns: u64) -> Vec<(u64, usize)> {
        let mut v: Vec<(u64, usize)> =
            conns.flat_map(|c| (0..s.sends_before(c, end_ns)).map(move |j| (s.offset_ns(c, j), c))).collect();
        v.sort();
        v
    }

    #[test]
    fn per_connection_times() {
        let s = Schedule::new(1000, 10).unwrap();
        assert_eq!(s.offset_ns(0, 0), 0);
        assert_eq!(s.offset_ns(3, 0), 3_000_000);
        assert_eq!(s.offset_ns(3, 1), 13_000_000);
        assert_eq!(s.offset_ns(9, 99), 999_000_000);
    }

    #[test]
    fn whole_run_is_evenly_spaced_at_the_rate() {
        let s = Schedule::new(1000, 7).unwrap();
        let sends = all_sends(&s, 0..7, 1_000_000_000);
        assert_eq!(sends.len(), 1000);
        for (k, &(t, c)) in sends.iter().enumerate() {
            assert_eq!(t, k as u64 * 1_000_000, "send {k}");
            assert_eq!(c, k % 7, "send {k} goes round-robin");
        }
    }

    #[test]
    fn threads_split_connections_and_sends_evenly() {
        let (rate, conns, threads) = (12_000, 12, 3);
        let s = Schedule::new(rate, conns).unwrap();
        let mut seen = vec![0; conns];
        for t in 0..threads {
            for c in conns_of(t, conns, threads) {
                seen[c] += 1;
            }
            let sends = all_sends(&s, conns_of(t, conns, threads), 1_000_000_000);
            assert_eq!(sends.len() as u64, rate / threads as u64, "thread {t}");
            // Thread t sends every `threads`-th global slot: evenly spaced.
            let step = threads as u64 * 1_000_000_000 / rate;
            assert!(sends.windows(2).all(|w| w[1].0 - w[0].0 == step), "thread {t}");
        }
        assert!(seen.iter().all(|&n| n == 1), "each connection on exactly one thread");
    }

    #[test]
    fn uneven_rates_do_not_drift() {
        let s = Schedule::new(3, 1).unwrap();
        assert_eq!(s.offset_ns(0, 1), 333_333_333);
        assert_eq!(s.offset_ns(0, 2), 666_666_666);
        assert_eq!(s.offset_ns(0, 3_000_000), 1_000_000 * 1_000_000_000);
    }

    #[test]
    fn sends_before_matches_the_offsets() {
        for (rate, conns) in [(1000, 10), (7, 3), (1_000_000, 100), (999, 1000)] {
            let s = Schedule::new(rate, conns).unwrap();
            for c in [0, conns / 2, conns - 1] {
                for t in [0, 1, 999_999, 1_000_000, 123_456_789, 2_000_000_000] {
                    let n = s.sends_before(c, t);
                    assert!(n == 0 || s.offset_ns(c, n - 1) < t, "rate {rate} conn {c} t {t}");
                    assert!(s.offset_ns(c, n) >= t, "rate {rate} conn {c} t {t}");
                }
            }
        }
    }

    #[test]
    fn zero_rate_is_refused() {
        assert!(Schedule::new(0, 10).is_err());
        assert!(Schedule::new(10, 0).is_err());
    }
}
