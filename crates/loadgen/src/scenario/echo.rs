//! `echo`: framed echo under load. Each frame carries its sequence number
//! and send time, so every echo is checked and timed. Closed loop keeps
//! `depth` frames in flight per connection; open loop (`--rate`) sends on a
//! schedule fixed in advance and times replies from the scheduled send, so
//! a stalling server cannot hide its stalls (no coordinated omission).

use super::{Common, TimedRun};
use crate::parse;
use crate::report::{grouped, Report};
use crate::runner;
use crate::schedule::{Pacer, Schedule};
use crate::session::{Io, Session};
use crate::wire::{self, MIN_PAYLOAD};
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest payload: frames are built whole in memory.
const MAX_PAYLOAD: usize = 16 << 20;
/// Output an open-loop connection may queue before it waits for the socket
/// to drain; frames due meanwhile go out late, timed from their schedule.
const OUT_CAP: usize = 64 << 10;
/// How long after the window replies to its frames are waited for.
const DRAIN: Duration = Duration::from_secs(2);

/// Arguments of `echo`.
#[derive(Args, Clone, Debug)]
pub struct EchoArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub addr: SocketAddr,
    /// Connections (100, 10k).
    #[arg(long, short, default_value = "100", value_parser = parse::count_usize)]
    pub connections: usize,
    /// Payload bytes per frame, at least 16 (64, 4k, 1MiB); the 4-byte
    /// length prefix comes on top.
    #[arg(long, default_value = "64", value_parser = parse::size)]
    pub size: usize,
    /// Closed loop: frames in flight per connection, each reply sending the
    /// next.
    #[arg(long, default_value_t = 1, conflicts_with = "rate")]
    pub depth: usize,
    /// Open loop: frames per second over all connections (50k, 1m), sent on
    /// a fixed schedule; latency counts from the scheduled time.
    #[arg(long, value_parser = parse::count)]
    pub rate: Option<u64>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: TimedRun,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// How frames are sent.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// Keep this many frames in flight.
    Closed {
        /// Frames in flight per connection.
        depth: u64,
    },
    /// Send on this schedule.
    Open {
        /// Send times of every connection.
        schedule: Schedule,
    },
}

/// One connection of the echo scenario.
pub struct EchoSession {
    size: usize,
    load: Load,
    /// Send no more than this many frames in all.
    limit: Option<u64>,
    next_seq: u64,
    expect_seq: u64,
    /// Sequence number of the first frame of the measured window: frames of
    /// the window are contiguous, so this is all it takes to tell them.
    window_from: Option<u64>,
    /// Open loop: where this connection is in the schedule.
    pacer: Option<Pacer>,
}

impl EchoSession {
    /// A session for connection `conn` sending `size`-byte payloads.
    pub fn new(conn: usize, size: usize, load: Load, limit: Option<u64>) -> EchoSession {
        EchoSession {
            size,
            load,
            limit,
            next_seq: 0,
            expect_seq: 0,
            window_from: None,
            pacer: match load {
                Load::Open { schedule } => Some(Pacer::new(schedule, conn)),
                Load::Closed { .. } => None,
            },
        }
    }

    fn may_send(&self) -> bool {
        self.limit.is_none_or(|l| self.next_seq < l)
    }

    fn send(&mut self, io: &mut Io<'_>, stamp_ns: u64) {
        wire::encode(io.out, self.size, self.next_seq, stamp_ns);
        if io.sent(stamp_ns) && self.window_from.is_none() {
            self.window_from = Some(self.next_seq);
        }
        self.next_seq += 1;
    }

    fn in_flight(&self) -> u64 {
        self.next_seq - self.expect_seq
    }

    /// Closed loop: top up to `depth` frames in flight.
    fn top_up(&mut self, io: &mut Io<'_>) {
        if let Load::Closed { depth } = self.load {
            while self.in_flight() < depth && io.sending() && self.may_send() {
                self.send(io, io.now_ns);
            }
        }
    }

    /// Open loop: send every frame due by now, unless output piles up.
    fn send_due(&mut self, io: &mut Io<'_>) {
        let Some(mut pacer) = self.pacer else { return };
        pacer.release();
        while self.may_send() {
            let Some(at) = pacer.due(io, OUT_CAP) else { break };
            self.send(io, at);
            pacer.advance();
        }
        self.pacer = Some(pacer);
    }
}

impl Session for EchoSession {
    fn start(&mut self, io: &mut Io<'_>) {
        self.top_up(io);
        self.send_due(io);
    }

    fn on_input(&mut self, input: &[u8], io: &mut Io<'_>) -> Result<usize, String> {
        let max = self.size.saturating_mul(2).max(64 << 10);
        let mut used = 0;
        while let Some((payload, len)) = wire::next_frame(&input[used..], max)? {
            used += len;
            if self.in_flight() == 0 {
                io.mismatch("reply to a frame that was never sent");
                continue;
            }
            let of_window = self.window_from.is_some_and(|from| self.expect_seq >= from);
            match wire::verify(payload, self.size, self.expect_seq) {
                Ok(reply) => io.reply(Some(reply.stamp_ns), of_window, len),
                Err(m) => {
                    io.reply(None, of_window, len);
                    io.mismatch(m);
                }
            }
            self.expect_seq += 1;
        }
        self.top_up(io);
        Ok(used)
    }

    fn next_due(&self) -> Option<u64> {
        self.pacer.filter(|_| self.may_send()).and_then(|p| p.next_due())
    }

    fn on_due(&mut self, io: &mut Io<'_>) {
        self.send_due(io);
    }

    fn on_drained(&mut self, io: &mut Io<'_>) {
        if self.pacer.is_some_and(|p| p.is_held()) {
            self.send_due(io);
        }
    }

    fn outstanding(&self) -> u64 {
        self.window_from.map_or(0, |from| self.next_seq.saturating_sub(self.expect_seq.max(from)))
    }

    fn finish(&mut self, io: &mut Io<'_>) {
        // Open loop: frames of the window that backpressure kept from being sent.
        if let Some(pacer) = self.pacer {
            io.unsent(pacer.unsent(io.plan));
        }
    }
}

/// Runs the echo scenario.
pub fn run(args: &EchoArgs) -> Result<Report, String> {
    if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&args.size) {
        return Err(format!(
            "--size must be {MIN_PAYLOAD} to {MAX_PAYLOAD} bytes (sequence number and time stamp take 16)"
        ));
    }
    if args.depth == 0 {
        return Err("--depth must be at least 1".into());
    }
    args.common.check()?;
    let (load, mode) = match args.rate {
        Some(rate) => {
            let schedule = Schedule::new(rate, args.connections)?;
            (Load::Open { schedule }, format!("open loop, {} frames/s", grouped(rate)))
        }
        None => (Load::Closed { depth: args.depth as u64 }, format!("closed loop, depth {}", args.depth)),
    };
    let spec = args.run.spec(args.addr, args.connections, &args.common, DRAIN)?;
    let size = args.size;
    let outcome = runner::start(&spec, move |i| EchoSession::new(i, size, load, None))?
        .complete(&args.common.pids(), DRAIN + Duration::from_secs(1));
    let report = Report::timed("echo", args.addr.to_string(), mode, &spec, &args.run, &outcome);
    Ok(Report {
        payload_bytes: size,
        depth: args.rate.is_none().then_some(args.depth),
        rate: args.rate,
        server: outcome.measured.server.map(|s| s.per("frame", outcome.tally.replies)),
        ..report
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::testing::call;
    use crate::session::{Phases, Plan, Tally};
    use std::time::Instant;

    const MS: u64 = 1_000_000;

    fn plan() -> Plan {
        // Warm-up 0-2 ms, window 2-100 ms.
        let phases = Phases {
            warmup: Duration::from_millis(2),
            measure: Some(Duration::from_millis(98)),
            drain: Duration::ZERO,
        };
        Plan::new(Instant::now(), phases)
    }

    fn stamps(wire_bytes: &[u8], size: usize) -> Vec<(u64, u64)> {
        let mut v = Vec::new();
        let mut at = 0;
        while let Some((p, len)) = wire::next_frame(&wire_bytes[at..], size).unwrap() {
            let seq = u64::from_be_bytes(p[..8].try_into().unwrap());
            let reply = wire::verify(p, size, seq).unwrap();
            v.push((reply.seq, reply.stamp_ns));
            at += len;
        }
        v
    }

    #[test]
    fn closed_loop_keeps_depth_in_flight_and_times_replies() {
        let (plan, mut tally) = (plan(), Tally::default());
        let mut s = EchoSession::new(0, 32, Load::Closed { depth: 3 }, None);
        let (_, sent) = call(&plan, &mut tally, 3 * MS, |io| s.start(io));
        assert_eq!(stamps(&sent, 32), [(0, 3 * MS), (1, 3 * MS), (2, 3 * MS)]);
        assert_eq!((tally.sent, s.outstanding()), (3, 3));
        // Two replies and half of the third arrive at 5 ms.
        let cut = 2 * 36 + 10;
        let (used, more) = call(&plan, &mut tally, 5 * MS, |io| s.on_input(&sent[..cut], io));
        assert_eq!(used, Ok(2 * 36));
        assert_eq!(stamps(&more, 32), [(3, 5 * MS), (4, 5 * MS)]);
        assert_eq!((tally.answered, tally.verify_errors, s.outstanding()), (2, 0, 3));
        let l = tally.latency.summary();
        assert!((l.p50_us - 2000.0).abs() < 2.0 && l.samples == 2, "{l:?}");
    }

    #[test]
    fn warmup_frames_are_not_measured() {
        let (plan, mut tally) = (plan(), Tally::default());
        let mut s = EchoSession::new(0, 16, Load::Closed { depth: 1 }, None);
        let (_, sent) = call(&plan, &mut tally, MS, |io| s.start(io));
        assert_eq!((tally.sent, s.outstanding()), (0, 0), "sent in the warm-up");
        call(&plan, &mut tally, 3 * MS, |io| s.on_input(&sent, io)).0.unwrap();
        assert_eq!((tally.answered, tally.replies, tally.sent), (0, 1, 1));
        assert_eq!(tally.latency.summary().samples, 0);
    }

    #[test]
    fn open_loop_sends_on_schedule_with_scheduled_stamps() {
        let (plan, mut tally) = (plan(), Tally::default());
        // 1000 frames/s over 2 connections: connection 1 at 1, 3, 5... ms.
        let schedule = Schedule::new(1000, 2).unwrap();
        let mut s = EchoSession::new(1, 16, Load::Open { schedule }, None);
        let (_, sent) = call(&plan, &mut tally, 0, |io| s.start(io));
        assert!(sent.is_empty());
        assert_eq!(s.next_due(), Some(MS));
        // Late by 9 ms: everything due goes out at once, stamped as scheduled.
        let (_, sent) = call(&plan, &mut tally, 10 * MS, |io| s.on_due(io));
        let want: Vec<(u64, u64)> = (0..5).map(|j| (j, (2 * j + 1) * MS)).collect();
        assert_eq!(stamps(&sent, 16), want);
        assert_eq!(s.next_due(), Some(11 * MS));
        assert_eq!(tally.sent, 4, "the 1 ms frame was in the warm-up");
        // Replies at 12 ms: latency from the schedule (9, 7, 5, 3 ms), not
        // from when the frames actually went out (all at 10 ms).
        call(&plan, &mut tally, 12 * MS, |io| s.on_input(&sent, io)).0.unwrap();
        let l = tally.latency.summary();
        assert!((l.max_us - 9_000.0).abs() < 9.0 && l.samples == 4, "{l:?}");
        assert!((l.mean_us - 6_000.0).abs() < 6.0, "{l:?}");
        // Past the window nothing more is due, however late the call.
        call(&plan, &mut tally, 150 * MS, |io| s.on_due(io));
        assert_eq!(s.next_due(), None);
        // Frames due in the window but never sent are unanswered.
        call(&plan, &mut tally, 150 * MS, |io| s.finish(io));
        assert_eq!(tally.unanswered, 0, "all were sent late, none left unsent");
        // A connection that never got to send its window's frames (0, 2 ... 98 ms).
        let mut stuck = EchoSession::new(0, 16, Load::Open { schedule }, None);
        call(&plan, &mut tally, 0, |io| stuck.start(io));
        call(&plan, &mut tally, 150 * MS, |io| stuck.finish(io));
        assert_eq!(tally.unanswered, 49);
    }

    #[test]
    fn corrupt_and_unsolicited_replies_are_errors() {
        let (plan, mut tally) = (plan(), Tally::default());
        let mut s = EchoSession::new(0, 24, Load::Closed { depth: 1 }, Some(1));
        let (_, mut sent) = call(&plan, &mut tally, 3 * MS, |io| s.start(io));
        sent[4 + 20] ^= 1;
        let extra = sent.clone();
        sent.extend_from_slice(&extra);
        let (used, more) = call(&plan, &mut tally, 4 * MS, |io| s.on_input(&sent, io));
        assert_eq!(used, Ok(sent.len()));
        assert!(more.is_empty(), "the limit of one frame holds");
        assert_eq!((tally.verify_errors, tally.answered, s.outstanding()), (2, 1, 0));
        assert_eq!(tally.latency.summary().samples, 0, "a corrupt stamp is not timed");
    }
}
