//! Fan-out accounting: each member checks each sender's sequence, and the
//! counts of every thread add up to what the report shows (expected,
//! delivered, missing, duplicate and reordered deliveries, per sender).

use super::Layout;
use crate::report::{FanoutFigures, SenderAnomaly};
use crate::stats::Spread;

/// Senders whose anomalies the report lists one by one.
const MAX_LISTED: usize = 100;

/// How a delivery relates to those before it from the same sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The next one.
    Next,
    /// Later than the next: this many were skipped (missing, or late).
    Skipped(u64),
    /// One that was skipped earlier (or so old that it cannot be told
    /// from a duplicate any more, which a TCP server does not send).
    Late,
    /// Received before.
    Duplicate,
}

/// One member's view of one sender's sequence: the next number expected
/// and which of the 128 before it arrived.
#[derive(Clone, Copy, Debug, Default)]
pub struct SeqTrack {
    next: u64,
    /// Bit k: `next - 1 - k` arrived.
    seen: u128,
}

impl SeqTrack {
    /// Files sequence number `seq`.
    pub fn observe(&mut self, seq: u64) -> Seen {
        if seq >= self.next {
            let skipped = seq - self.next;
            let shift = skipped.saturating_add(1);
            self.seen = if shift >= 128 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.next = seq + 1;
            return if skipped == 0 { Seen::Next } else { Seen::Skipped(skipped) };
        }
        let back = self.next - 1 - seq;
        if back >= 128 {
            return Seen::Late;
        }
        let bit = 1u128 << back;
        if self.seen & bit != 0 {
            return Seen::Duplicate;
        }
        self.seen |= bit;
        Seen::Late
    }
}

/// What happened to one sender's messages, over every member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SenderCounts {
    /// It was joined at the start, and published.
    pub active: bool,
    /// Messages it published in the window.
    pub sent: u64,
    /// Distinct deliveries of those.
    pub delivered: u64,
    /// Duplicate deliveries (whole run).
    pub duplicates: u64,
    /// Out-of-order deliveries (whole run).
    pub reordered: u64,
}

/// One thread's fan-out counts.
#[derive(Clone, Debug, Default)]
pub struct FanoutTally {
    /// By sender index.
    pub senders: Vec<SenderCounts>,
    /// Members joined at the start, by room.
    pub joined: Vec<u64>,
    /// Deliveries received in the window, by client index; `None` for
    /// clients that were not members.
    pub members: Vec<Option<u64>>,
    /// Messages of another run, or not stamped at all.
    pub foreign: u64,
    /// Publications acknowledged during the window.
    pub acked: u64,
}

fn slot<T: Default + Clone>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

impl FanoutTally {
    /// The counts of sender `j`.
    pub fn sender(&mut self, j: usize) -> &mut SenderCounts {
        slot(&mut self.senders, j)
    }

    /// Files client `i` as a member of `room` from the start.
    pub fn join(&mut self, i: usize, room: usize) {
        *slot(&mut self.joined, room) += 1;
        *slot(&mut self.members, i) = Some(0);
    }

    /// Counts a delivery to member `i` during the window.
    pub fn received(&mut self, i: usize) {
        if let Some(Some(n)) = self.members.get_mut(i) {
            *n += 1;
        }
    }

    /// Adds another thread's counts.
    pub fn merge(&mut self, o: FanoutTally) {
        for (j, c) in o.senders.into_iter().enumerate() {
            let s = self.sender(j);
            s.active |= c.active;
            s.sent += c.sent;
            s.delivered += c.delivered;
            s.duplicates += c.duplicates;
            s.reordered += c.reordered;
        }
        for (r, n) in o.joined.into_iter().enumerate() {
            *slot(&mut self.joined, r) += n;
        }
        for (i, m) in o.members.into_iter().enumerate() {
            if let Some(n) = m {
                *slot(&mut self.members, i) = Some(n);
            }
        }
        self.foreign += o.foreign;
        self.acked += o.acked;
    }

    /// The report's figures; `deliveries` were received in the window of
    /// `secs` seconds.
    pub fn figures(&self, layout: &Layout, deliveries: u64, secs: f64) -> FanoutFigures {
        let mut f = FanoutFigures {
            clients: layout.clients,
            rooms: layout.rooms,
            senders: layout.senders,
            joined: self.joined.iter().sum(),
            deliveries,
            deliveries_per_s: deliveries as f64 / secs,
            foreign: self.foreign,
            acked: self.acked,
            acked_per_s: self.acked as f64 / secs,
            ..FanoutFigures::default()
        };
        for (j, c) in self.senders.iter().enumerate().take(layout.senders) {
            let room = layout.room_of(j);
            let others = self.joined.get(room).copied().unwrap_or(0).saturating_sub(1);
            let expected = c.sent * others;
            let missing = expected.saturating_sub(c.delivered);
            f.messages += c.sent;
            f.expected += expected;
            f.delivered += c.delivered;
            f.missing += missing;
            f.duplicates += c.duplicates;
            f.reordered += c.reordered;
            if missing + c.duplicates + c.reordered > 0 {
                f.senders_with_anomalies += 1;
                if f.anomalies.len() < MAX_LISTED {
                    f.anomalies.push(SenderAnomaly {
                        sender: j,
                        room,
                        sent: c.sent,
                        expected,
                        delivered: c.delivered,
                        duplicates: c.duplicates,
                        reordered: c.reordered,
                    });
                }
            }
        }
        f.messages_per_s = f.messages as f64 / secs;
        f.publishers = Spread::of(self.senders.iter().filter(|c| c.active).map(|c| c.sent as f64 / secs));
        f.subscribers = Spread::of(self.members.iter().flatten().map(|&n| n as f64 / secs));
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe_all(seqs: &[u64]) -> Vec<Seen> {
        let mut t = SeqTrack::default();
        seqs.iter().map(|&s| t.observe(s)).collect()
    }

    #[test]
    fn in_order_sequences_are_clean() {
        assert!(observe_all(&[0, 1, 2, 3]).iter().all(|&s| s == Seen::Next));
    }

    #[test]
    fn gaps_duplicates_and_reorders_are_told_apart() {
        use Seen::*;
        // 2 is skipped, then arrives late; 3 comes twice; 5..=9 never come.
        let seen = observe_all(&[0, 1, 3, 2, 3, 4, 10, 0]);
        assert_eq!(seen, [Next, Next, Skipped(1), Late, Duplicate, Next, Skipped(5), Duplicate]);
    }

    #[test]
    fn the_window_reaches_back_128_messages() {
        let mut t = SeqTrack::default();
        assert_eq!(t.observe(200), Seen::Skipped(200));
        assert_eq!(t.observe(73), Seen::Late, "127 back: still in the window");
        assert_eq!(t.observe(73), Seen::Duplicate);
        assert_eq!(t.observe(72), Seen::Late, "128 back: out of the window");
        // A jump of more than the window forgets everything before it.
        assert_eq!(t.observe(1000), Seen::Skipped(799));
        assert_eq!(t.observe(999), Seen::Late);
        assert_eq!(t.observe(1000), Seen::Duplicate);
    }

    #[test]
    fn figures_add_up_per_sender() {
        let layout = Layout::new(6, 2, 2).unwrap();
        let (mut a, mut b) = (FanoutTally::default(), FanoutTally::default());
        // Room 0: clients 0, 2, 4 (sender 0); room 1: clients 1, 3, 5 (sender 1).
        for i in [0, 2, 4] {
            a.join(i, 0);
        }
        for i in [1, 3] {
            b.join(i, 1); // client 5 never joined
        }
        *a.sender(0) = SenderCounts { active: true, sent: 10, delivered: 20, ..SenderCounts::default() };
        *b.sender(1) = SenderCounts { active: true, sent: 10, delivered: 8, duplicates: 1, reordered: 2 };
        a.received(2);
        a.received(2);
        (a.acked, b.acked) = (7, 5);
        a.merge(b);
        let f = a.figures(&layout, 30, 2.0);
        assert_eq!(f.joined, 5);
        assert_eq!((f.messages, f.expected, f.delivered, f.missing), (20, 20 + 10, 28, 2));
        assert_eq!((f.duplicates, f.reordered, f.senders_with_anomalies), (1, 2, 1));
        assert_eq!(f.anomalies[0].sender, 1);
        assert_eq!((f.publishers.clients, f.publishers.avg), (2, 5.0));
        assert_eq!((f.subscribers.clients, f.subscribers.max), (5, 1.0));
        assert_eq!(f.deliveries_per_s, 15.0);
        assert_eq!((f.acked, f.acked_per_s), (12, 6.0), "acknowledgements of both threads");
    }
}
