//! What a storm run counts: which stamped messages each member received
//! (a bit per message), which the server acknowledged, delays by phase
//! (before the upgrade signal, during the storm until every member has
//! resumed, after), joins and resumes.

use crate::stats::Latency;
use chat_server::protocol::ErrorCode;
use std::collections::BTreeMap;

/// A message: its sender and sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageKey {
    /// Sender index.
    pub sender: u32,
    /// Its sequence number.
    pub seq: u64,
}

/// The counts of one storm run.
pub struct StormTally {
    senders: u32,
    /// Messages per sender the bitsets hold.
    per_sender: u64,
    /// Per member, a bit per message (`seq * senders + sender`).
    received: Vec<Vec<u64>>,
    acked: Vec<u64>,
    /// Members that resumed after the signal.
    back: Vec<bool>,
    back_count: usize,
    /// When the upgrade was signalled, ns from the start.
    pub signal_ns: Option<u64>,
    /// When the last member resumed after it.
    pub all_back_ns: Option<u64>,
    /// Live deliveries of messages scheduled before the signal.
    pub before: Latency,
    /// Live deliveries of messages scheduled from the signal until every
    /// member was back.
    pub storm: Latency,
    /// Live deliveries of messages scheduled after that.
    pub after: Latency,
    /// Deliveries replayed by a resume (history pushes).
    pub history: Latency,
    /// First joins, and rejoins.
    pub joins: u64,
    /// Rejoins with a position.
    pub resumes: u64,
    /// Rejoins answered `recovered`.
    pub recovered: u64,
    /// A message at or before the position already seen, live.
    pub out_of_order: u64,
    /// A message received twice by one member.
    pub duplicates: u64,
    /// Messages without this run's stamp, or past the bitsets.
    pub foreign: u64,
    /// `GoingAway` pushes.
    pub going_away: u64,
    /// Server frames that did not decode.
    pub undecodable: u64,
    /// `Say` requests sent.
    pub posted: u64,
    /// Error replies and pushes, by code.
    pub refusals: BTreeMap<String, u64>,
}

fn set(bits: &mut [u64], i: u64) -> Option<bool> {
    let word = bits.get_mut((i / 64) as usize)?;
    let mask = 1u64 << (i % 64);
    let was = *word & mask != 0;
    *word |= mask;
    Some(was)
}

#[cfg(test)]
fn get(bits: &[u64], i: u64) -> bool {
    bits.get((i / 64) as usize).is_some_and(|w| w & (1u64 << (i % 64)) != 0)
}

impl StormTally {
    /// Counts for `members` members and `senders` senders of up to
    /// `per_sender` messages each.
    pub fn new(members: usize, senders: u32, per_sender: u64) -> StormTally {
        let words = (per_sender * u64::from(senders)).div_ceil(64) as usize;
        StormTally {
            senders: senders.max(1),
            per_sender,
            received: vec![vec![0; words]; members],
            acked: vec![0; words],
            back: vec![false; members],
            back_count: 0,
            signal_ns: None,
            all_back_ns: None,
            before: Latency::default(),
            storm: Latency::default(),
            after: Latency::default(),
            history: Latency::default(),
            joins: 0,
            resumes: 0,
            recovered: 0,
            out_of_order: 0,
            duplicates: 0,
            foreign: 0,
            going_away: 0,
            undecodable: 0,
            posted: 0,
            refusals: BTreeMap::new(),
        }
    }

    fn index(&self, k: MessageKey) -> Option<u64> {
        (k.sender < self.senders && k.seq < self.per_sender)
            .then(|| k.seq * u64::from(self.senders) + u64::from(k.sender))
    }

    /// A first join.
    pub fn joined(&mut self, _member: Option<usize>, _now_ns: u64) {
        self.joins += 1;
    }

    /// A rejoin from a position, `recovered` or not, at `now_ns`.
    pub fn resumed(&mut self, member: Option<usize>, recovered: bool, now_ns: u64) {
        self.joins += 1;
        self.resumes += 1;
        self.recovered += u64::from(recovered);
        let Some(m) = member else { return };
        if self.signal_ns.is_some() && self.back.get(m) == Some(&false) {
            self.back[m] = true;
            self.back_count += 1;
            if self.back_count == self.back.len() {
                self.all_back_ns = Some(now_ns);
            }
        }
    }

    /// Members back (resumed) since the signal.
    pub fn back(&self) -> usize {
        self.back_count
    }

    /// The server acknowledged message `k`.
    pub fn acked(&mut self, k: MessageKey) {
        if let Some(i) = self.index(k) {
            set(&mut self.acked, i);
        }
    }

    /// Whether message `k` was acknowledged.
    #[cfg(test)]
    pub fn is_acked(&self, k: MessageKey) -> bool {
        self.index(k).is_some_and(|i| get(&self.acked, i))
    }

    /// An error reply or push.
    pub fn refused(&mut self, code: ErrorCode) {
        *self.refusals.entry(super::client::code_name(code)).or_default() += 1;
    }

    /// Message `k`, scheduled at `sched_ns`, reached `member` at `now_ns`
    /// (replayed by a resume if `history`).
    pub fn delivered(
        &mut self,
        member: Option<usize>,
        k: MessageKey,
        sched_ns: u64,
        now_ns: u64,
        history: bool,
    ) {
        let Some(m) = member else { return };
        let Some(i) = self.index(k) else {
            self.foreign += 1;
            return;
        };
        match self.received.get_mut(m).and_then(|bits| set(bits, i)) {
            Some(true) => {
                self.duplicates += 1;
                return;
            }
            Some(false) => {}
            None => return,
        }
        let delay = now_ns.saturating_sub(sched_ns);
        let h = if history {
            &mut self.history
        } else if self.signal_ns.is_none_or(|s| sched_ns < s) {
            &mut self.before
        } else if self.all_back_ns.is_none_or(|b| sched_ns < b) {
            &mut self.storm
        } else {
            &mut self.after
        };
        h.record(delay);
    }

    /// Distinct messages member `m` received.
    #[cfg(test)]
    pub fn received_of(&self, m: usize) -> u64 {
        self.received.get(m).map_or(0, |bits| bits.iter().map(|w| u64::from(w.count_ones())).sum())
    }

    /// Acknowledged messages, and how many member deliveries of them are
    /// missing (acknowledged, never received).
    pub fn missing(&self) -> (u64, u64) {
        let acked: u64 = self.acked.iter().map(|w| u64::from(w.count_ones())).sum();
        let missing = self
            .received
            .iter()
            .map(|bits| {
                self.acked.iter().zip(bits).map(|(a, r)| u64::from((a & !r).count_ones())).sum::<u64>()
            })
            .sum();
        (acked, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn k(sender: u32, seq: u64) -> MessageKey {
        MessageKey { sender, seq }
    }

    #[test]
    fn acknowledged_messages_are_owed_to_every_member() {
        let mut t = StormTally::new(2, 2, 100);
        for key in [k(0, 0), k(1, 0), k(0, 1)] {
            t.acked(key);
        }
        t.acked(k(2, 0)); // no such sender: ignored
        t.delivered(Some(0), k(0, 0), 0, 5, false);
        t.delivered(Some(0), k(1, 0), 0, 5, false);
        t.delivered(Some(0), k(0, 1), 0, 5, false);
        t.delivered(Some(1), k(0, 0), 0, 5, false);
        t.delivered(Some(1), k(0, 0), 0, 6, false);
        t.delivered(Some(1), k(0, 500), 0, 6, false);
        t.delivered(None, k(0, 1), 0, 6, false);
        assert_eq!(t.missing(), (3, 2), "member 1 lacks two");
        assert_eq!((t.duplicates, t.foreign, t.received_of(0), t.received_of(1)), (1, 1, 3, 1));
    }

    #[test]
    fn delays_are_filed_by_when_the_message_was_scheduled() {
        let mut t = StormTally::new(2, 1, 100);
        t.delivered(Some(0), k(0, 0), 100, 150, false);
        t.signal_ns = Some(1_000);
        t.delivered(Some(0), k(0, 1), 900, 2_000, false); // before the signal
        t.delivered(Some(0), k(0, 2), 1_100, 2_000, false); // storm
        t.resumed(Some(0), true, 2_500);
        t.resumed(Some(0), true, 2_600); // the same member again: counted once
        assert_eq!((t.back(), t.all_back_ns), (1, None));
        t.resumed(Some(1), false, 3_000);
        assert_eq!((t.back(), t.all_back_ns, t.resumes, t.recovered), (2, Some(3_000), 3, 2));
        t.delivered(Some(1), k(0, 3), 2_900, 3_100, false); // storm
        t.delivered(Some(1), k(0, 4), 3_000, 3_100, false); // after
        t.delivered(Some(1), k(0, 1), 900, 3_200, true); // replayed
        let n = |l: &Latency| l.summary().samples;
        assert_eq!((n(&t.before), n(&t.storm), n(&t.after), n(&t.history)), (2, 2, 1, 1));
    }
}
