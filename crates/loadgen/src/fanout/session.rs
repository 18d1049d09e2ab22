//! One fan-out client: a member of its room that checks and times every
//! message it receives, and, for the first clients, a publisher on the
//! open-loop schedule.

use super::{Event, Layout, Seen, SeqTrack, Stamp, StampError, Wire};
use crate::schedule::{Pacer, Schedule};
use crate::session::{Io, Session};

/// Output a publisher may queue before it waits for the socket to drain;
/// messages due meanwhile go out late, timed from their schedule.
const OUT_CAP: usize = 64 << 10;

/// A fan-out client over wire protocol `W`.
pub struct FanoutSession<W> {
    wire: W,
    client: usize,
    room: usize,
    layout: Layout,
    schedule: Schedule,
    run: u32,
    size: usize,
    /// The handshake completed.
    ready: bool,
    /// The run started for this session.
    started: bool,
    /// Ready when the run started: a member whose deliveries count.
    member: bool,
    /// By sender, in the order of [`Layout::local`].
    tracks: Vec<SeqTrack>,
    /// Distinct deliveries of the window's messages it waits for, and got.
    awaited: u64,
    got: u64,
    /// Publishing: the sender index, where it is in the schedule, and the
    /// next sequence number.
    sender: Option<(usize, Pacer, u64)>,
    payload: Vec<u8>,
}

impl<W: Wire> FanoutSession<W> {
    /// Client `client` of `layout`, speaking `wire`.
    pub fn new(wire: W, client: usize, layout: Layout, schedule: Schedule, run: u32, size: usize) -> Self {
        let room = layout.room_of(client);
        FanoutSession {
            wire,
            client,
            room,
            layout,
            schedule,
            run,
            size,
            ready: false,
            started: false,
            member: false,
            tracks: vec![SeqTrack::default(); layout.senders_in(room)],
            awaited: 0,
            got: 0,
            sender: layout.sender_of(client).map(|j| (j, Pacer::new(schedule, j), 0)),
            payload: Vec::with_capacity(size),
        }
    }

    /// Publishes every message due by now, unless output piles up.
    fn send_due(&mut self, io: &mut Io<'_>) {
        let Some((j, pacer, seq)) = &mut self.sender else { return };
        pacer.release();
        while let Some(at) = pacer.due(io, OUT_CAP) {
            let stamp = Stamp { run: self.run, sender: *j as u32, seq: *seq, sched_ns: at };
            stamp.encode(&mut self.payload, self.size);
            self.wire.publish(io.out, &self.payload);
            if io.plan.in_window(at) {
                io.tally.fanout.sender(*j).sent += 1;
            }
            *seq += 1;
            pacer.advance();
        }
    }

    /// Checks and times one message received.
    fn deliver(&mut self, payload: &[u8], wire_len: usize, io: &mut Io<'_>) {
        let stamp = match Stamp::decode(payload, self.run, self.size) {
            Ok(s) => s,
            Err(StampError::Foreign) => {
                io.tally.fanout.foreign += 1;
                return io.reply(None, false, wire_len);
            }
            Err(e) => {
                io.reply(None, false, wire_len);
                return io.mismatch(e);
            }
        };
        if !self.started && self.ready {
            // A message of this run: the run has begun, and the worker has
            // not started this session yet (it starts them a batch at a
            // time). Start it now, or this delivery would go uncounted.
            self.start(io);
        }
        if !self.member {
            // Not joined in time: neither a member nor its deliveries count.
            return io.reply(None, false, wire_len);
        }
        let j = stamp.sender as usize;
        if j >= self.layout.senders || self.layout.room_of(j) != self.room || j == self.client {
            io.reply(None, false, wire_len);
            return io.mismatch(format_args!(
                "client {} got a message of sender {j}, not of its room",
                self.client
            ));
        }
        let Some(track) = self.tracks.get_mut(self.layout.local(j)) else { return };
        let seen = track.observe(stamp.seq);
        let counts = io.tally.fanout.sender(j);
        match seen {
            Seen::Duplicate => counts.duplicates += 1,
            Seen::Late => counts.reordered += 1,
            Seen::Next | Seen::Skipped(_) => {}
        }
        let of_window = seen != Seen::Duplicate && io.plan.in_window(stamp.sched_ns);
        if of_window {
            counts.delivered += 1;
            self.got += 1;
        }
        if io.plan.in_window(io.now_ns) {
            io.tally.fanout.received(self.client);
        }
        io.reply(of_window.then_some(stamp.sched_ns), of_window, wire_len);
    }
}

impl<W: Wire> Session for FanoutSession<W> {
    fn handshake(&mut self, io: &mut Io<'_>) {
        self.wire.handshake(io.out);
    }

    fn start(&mut self, io: &mut Io<'_>) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        if !self.ready {
            io.reply_error("not joined when the run started");
            return;
        }
        self.member = true;
        io.tally.fanout.join(self.client, self.room);
        // Every window message of every other sender of the room, at this
        // member: a deterministic count, since the schedule is.
        self.awaited = self
            .layout
            .senders_of(self.room)
            .filter(|&j| j != self.client)
            .map(|j| self.schedule.window_sends(j, io.plan))
            .sum();
        io.await_replies(self.awaited);
        if let Some((j, _, _)) = self.sender {
            io.tally.fanout.sender(j).active = true;
        }
        self.send_due(io);
    }

    fn on_input(&mut self, input: &[u8], io: &mut Io<'_>) -> Result<usize, String> {
        let mut used = 0;
        while let Some((event, len)) = self.wire.next(&input[used..], io.out)? {
            match event {
                Event::Joined if !self.ready => {
                    self.ready = true;
                    io.ready();
                }
                Event::Message(payload) => self.deliver(payload, len, io),
                Event::Acked => {
                    if io.plan.in_window(io.now_ns) {
                        io.tally.fanout.acked += 1;
                    }
                }
                Event::Refused(kind) => io.reply_error(&kind),
                Event::Joined | Event::Other => {}
            }
            used += len;
        }
        Ok(used)
    }

    fn next_due(&self) -> Option<u64> {
        if !self.member {
            return None;
        }
        self.sender.as_ref().and_then(|(_, pacer, _)| pacer.next_due())
    }

    fn on_due(&mut self, io: &mut Io<'_>) {
        self.send_due(io);
    }

    fn on_drained(&mut self, io: &mut Io<'_>) {
        if self.member && self.sender.as_ref().is_some_and(|(_, p, _)| p.is_held()) {
            self.send_due(io);
        }
    }

    fn outstanding(&self) -> u64 {
        self.awaited.saturating_sub(self.got)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::testing::call;
    use crate::session::{Phases, Plan, Tally};
    use std::borrow::Cow;
    use std::time::{Duration, Instant};

    const MS: u64 = 1_000_000;

    /// Frames of a 2-byte length and a payload; an empty frame is the join
    /// acknowledgement, one starting with `!` an error.
    struct TestWire;

    impl Wire for TestWire {
        fn handshake(&mut self, out: &mut Vec<u8>) {
            out.extend_from_slice(b"join");
        }

        fn publish(&mut self, out: &mut Vec<u8>, payload: &[u8]) {
            out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            out.extend_from_slice(payload);
        }

        fn next<'a>(
            &mut self,
            input: &'a [u8],
            _: &mut Vec<u8>,
        ) -> Result<Option<(Event<'a>, usize)>, String> {
            let Some(head) = input.get(..2) else { return Ok(None) };
            let len = 2 + u16::from_be_bytes([head[0], head[1]]) as usize;
            let Some(payload) = input.get(2..len) else { return Ok(None) };
            let event = match payload.first() {
                None => Event::Joined,
                Some(b'!') => Event::Refused(Cow::Borrowed("Nope")),
                Some(_) => Event::Message(payload),
            };
            Ok(Some((event, len)))
        }
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        TestWire.publish(&mut out, payload);
        out
    }

    fn plan() -> Plan {
        // Warm-up 0-10 ms, window 10-110 ms.
        let phases = Phases {
            warmup: Duration::from_millis(10),
            measure: Some(Duration::from_millis(100)),
            drain: Duration::ZERO,
        };
        Plan::new(Instant::now(), phases)
    }

    #[test]
    fn members_check_sequences_and_time_from_the_schedule() {
        let (plan, mut tally) = (plan(), Tally::default());
        // Two clients in one room, client 0 publishing 100 msgs/s: at 0, 10, 20... ms.
        let layout = Layout::new(2, 1, 1).unwrap();
        let schedule = Schedule::new(100, 1).unwrap();
        let mut sender = FanoutSession::new(TestWire, 0, layout, schedule, 7, 64);
        let mut member = FanoutSession::new(TestWire, 1, layout, schedule, 7, 64);
        for s in [&mut sender, &mut member] {
            let (_, hello) = call(&plan, &mut tally, 0, |io| s.handshake(io));
            assert_eq!(hello, b"join");
            call(&plan, &mut tally, 0, |io| s.on_input(&frame(b""), io)).0.unwrap();
        }
        assert_eq!(tally.ready, 2);
        call(&plan, &mut tally, 0, |io| member.start(io));
        assert_eq!((tally.awaited, member.outstanding()), (10, 10), "10 messages in the window");
        // The publisher runs 35 ms late: four messages (0-30 ms) go at once.
        let (_, sent) = call(&plan, &mut tally, 0, |io| sender.start(io));
        assert_eq!(sent.len(), 2 + 64, "the one due at 0");
        let (_, sent) = call(&plan, &mut tally, 35 * MS, |io| sender.on_due(io));
        assert_eq!(sent.len(), 3 * 66);
        assert_eq!(sender.next_due(), Some(40 * MS));
        // The member gets 1, 3 (2 skipped), 2 (late), 3 again (duplicate) at 36 ms.
        let msg = |seq: u64| sent[(seq as usize - 1) * 66..seq as usize * 66].to_vec();
        let input = [msg(1), msg(3), msg(2), msg(3)].concat();
        let (used, _) = call(&plan, &mut tally, 36 * MS, |io| member.on_input(&input, io));
        assert_eq!(used, Ok(input.len()));
        let counts = tally.fanout.senders[0];
        assert_eq!((counts.sent, counts.delivered, counts.duplicates, counts.reordered), (3, 3, 1, 1));
        assert_eq!((tally.answered, member.outstanding()), (3, 7));
        // Latency from the scheduled times (10, 20, 30 ms), not the send (35 ms).
        let l = tally.latency.summary();
        assert!(l.samples == 3 && (l.max_us - 26_000.0).abs() < 30.0, "{l:?}");
        assert_eq!(tally.verify_errors, 0);
    }

    #[test]
    fn a_message_before_the_start_starts_the_member() {
        let (plan, mut tally) = (plan(), Tally::default());
        let layout = Layout::new(2, 1, 1).unwrap();
        let schedule = Schedule::new(100, 1).unwrap();
        let mut m = FanoutSession::new(TestWire, 1, layout, schedule, 7, 64);
        call(&plan, &mut tally, 0, |io| m.on_input(&frame(b""), io)).0.unwrap();
        let mut payload = Vec::new();
        Stamp { run: 7, sender: 0, seq: 1, sched_ns: 10 * MS }.encode(&mut payload, 64);
        call(&plan, &mut tally, 11 * MS, |io| m.on_input(&frame(&payload), io)).0.unwrap();
        assert_eq!((tally.awaited, tally.answered, m.outstanding()), (10, 1, 9));
        call(&plan, &mut tally, 12 * MS, |io| m.start(io));
        assert_eq!(tally.awaited, 10, "started once");
        assert_eq!(tally.fanout.joined, [1]);
    }

    #[test]
    fn late_joiners_foreign_and_wrong_messages() {
        let (plan, mut tally) = (plan(), Tally::default());
        let layout = Layout::new(4, 2, 2).unwrap();
        let schedule = Schedule::new(100, 2).unwrap();
        // Client 2 (room 0) never got its join acknowledged.
        let mut late = FanoutSession::new(TestWire, 2, layout, schedule, 7, 64);
        call(&plan, &mut tally, 0, |io| late.start(io));
        assert_eq!((tally.reply_errors, tally.awaited), (1, 0));
        // Client 3 (room 1): another run's message, a refusal, and one of
        // sender 0, who is in room 0.
        let mut m = FanoutSession::new(TestWire, 3, layout, schedule, 7, 64);
        call(&plan, &mut tally, 0, |io| m.on_input(&frame(b""), io)).0.unwrap();
        call(&plan, &mut tally, 0, |io| m.start(io));
        let mut payload = Vec::new();
        Stamp { run: 8, sender: 1, seq: 0, sched_ns: 0 }.encode(&mut payload, 64);
        let mut input = frame(&payload);
        input.extend(frame(b"!"));
        Stamp { run: 7, sender: 0, seq: 0, sched_ns: 20 * MS }.encode(&mut payload, 64);
        input.extend(frame(&payload));
        call(&plan, &mut tally, 30 * MS, |io| m.on_input(&input, io)).0.unwrap();
        assert_eq!((tally.fanout.foreign, tally.reply_errors, tally.verify_errors), (1, 2, 1));
        assert_eq!(tally.error_kinds.get("Nope"), Some(&1));
        assert_eq!(tally.answered, 0);
    }
}
