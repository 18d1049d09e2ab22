//! A room's events as they reach a node of a cluster, put back in the
//! room's order, without I/O.
//!
//! In a cluster, Redis gives every room message its offset and publishes
//! it on the room's channel; each node publishes what arrives into its own
//! [`RoomState`](super::RoomState). Arrivals can be early (the room is still
//! being loaded), repeated (a message both read from the log and received),
//! or missing (the subscription broke for a while, Redis restarted). The
//! relay holds arrivals while the room is loading or catching up, drops
//! repeats, and asks for a catch-up from the log when an offset is
//! skipped, so that every member sees every message once, in offset order.
//! When the log cannot fill a gap (its epoch changed: Redis lost the room;
//! or the messages were trimmed meanwhile) the room is `Lost`: its members
//! must resume, and learn from the epoch what they missed.

use crate::protocol::PresenceKind;
use crate::store::Entry;
use reactor::ConnId;
use std::collections::VecDeque;
use std::sync::Arc;

/// An event of a room as the cluster delivers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A stored message.
    Message {
        /// The room log's epoch when it was stored.
        epoch: u64,
        /// The message, with its offset.
        entry: Arc<Entry>,
        /// The poster's token, when it was posted on this node (the poster
        /// gets no echo).
        origin: Option<u64>,
    },
    /// A member joined or left, on some node.
    Presence {
        /// Joined or left.
        kind: PresenceKind,
        /// Who.
        nick: Arc<str>,
        /// The room's members on every node after the change.
        members: u32,
        /// The member it is about, when it is on this node (a user never
        /// hears of its own presence).
        skip: Option<ConnId>,
    },
}

/// Where the relay stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The room's state is being read from the log: everything is held.
    Loading,
    /// Arrivals are published as they come.
    Live,
    /// Messages are being read from the log to fill a gap: arrivals are
    /// held until they are in.
    CatchingUp,
}

/// What the driver must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Publish this event to the room's members.
    Publish(Incoming),
    /// Read the log after this offset (then call [`Relay::caught_up`]).
    CatchUp {
        /// The last offset published.
        after: u64,
    },
    /// The log cannot give what is missing: the room's members must resume.
    Lost,
}

/// What the log holds after a position, as read for a catch-up.
#[derive(Debug)]
pub struct LogRead {
    /// The log's epoch now.
    pub epoch: u64,
    /// The log's latest offset now.
    pub last: u64,
    /// Messages after the position, oldest first (possibly not all).
    pub messages: Vec<Incoming>,
}

/// The arrival state of one room on one node.
#[derive(Debug)]
pub struct Relay {
    phase: Phase,
    held: VecDeque<Incoming>,
}

/// Events one room may hold while loading or catching up; past it the
/// room is lost (its members resume), so that a stalled read cannot grow
/// memory without bound.
pub const MAX_HELD: usize = 100_000;

impl Relay {
    /// A relay for a room being loaded.
    pub fn loading() -> Relay {
        Relay { phase: Phase::Loading, held: VecDeque::new() }
    }

    /// Where it stands.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Events held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Takes an arrival; [`Relay::next`] says what to do with it. False if
    /// the room holds too many events already (it is lost).
    pub fn push(&mut self, event: Incoming) -> bool {
        if self.held.len() >= MAX_HELD {
            return false;
        }
        self.held.push_back(event);
        true
    }

    /// The room's state was read from the log: arrivals flow.
    pub fn loaded(&mut self) {
        self.phase = Phase::Live;
    }

    /// The subscription had a gap: arrivals wait for a catch-up. True if
    /// the caller must ask for one (the room was live).
    pub fn resync(&mut self) -> bool {
        if self.phase == Phase::Live {
            self.phase = Phase::CatchingUp;
            true
        } else {
            false
        }
    }

    /// A catch-up read came back, for a room at (`epoch`, `last`). `Err`:
    /// the gap cannot be filled.
    pub fn caught_up(&mut self, epoch: u64, last: u64, read: LogRead) -> Result<(), Lost> {
        if read.epoch != epoch {
            return Err(Lost);
        }
        let first = read.messages.iter().find_map(|m| match m {
            Incoming::Message { entry, .. } => Some(entry.offset),
            Incoming::Presence { .. } => None,
        });
        match first {
            Some(o) if o > last + 1 => return Err(Lost),
            None if read.last > last => return Err(Lost),
            _ => {}
        }
        for m in read.messages.into_iter().rev() {
            self.held.push_front(m);
        }
        self.phase = Phase::Live;
        Ok(())
    }

    /// The next thing to do for a room at (`epoch`, `last` published).
    /// Call again after each [`Step::Publish`]; `None`: nothing now.
    pub fn next(&mut self, epoch: u64, last: u64) -> Option<Step> {
        if self.phase != Phase::Live {
            return None;
        }
        while let Some(event) = self.held.pop_front() {
            match &event {
                Incoming::Message { epoch: e, .. } if *e != epoch => {
                    self.held.clear();
                    return Some(Step::Lost);
                }
                Incoming::Message { entry, .. } if entry.offset <= last => continue,
                Incoming::Message { entry, .. } if entry.offset > last + 1 => {
                    self.held.push_front(event);
                    self.phase = Phase::CatchingUp;
                    return Some(Step::CatchUp { after: last });
                }
                _ => return Some(Step::Publish(event)),
            }
        }
        None
    }
}

/// A gap the log cannot fill.
#[derive(Debug, PartialEq, Eq)]
pub struct Lost;

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(epoch: u64, offset: u64) -> Incoming {
        let entry = Entry { offset, id: offset, ts_us: 0, from: "a".into(), text: "t".into() };
        Incoming::Message { epoch, entry: Arc::new(entry), origin: None }
    }

    fn presence(nick: &str) -> Incoming {
        Incoming::Presence { kind: PresenceKind::Joined, nick: nick.into(), members: 1, skip: None }
    }

    /// Runs the relay the way the driver does: returns what was published
    /// (offsets; 0 for presence) and the step it stopped at.
    fn run(r: &mut Relay, epoch: u64, last: &mut u64) -> (Vec<u64>, Option<Step>) {
        let mut out = Vec::new();
        loop {
            match r.next(epoch, *last) {
                Some(Step::Publish(Incoming::Message { entry, .. })) => {
                    *last = entry.offset;
                    out.push(entry.offset);
                }
                Some(Step::Publish(Incoming::Presence { .. })) => out.push(0),
                other => return (out, other),
            }
        }
    }

    #[test]
    fn arrivals_while_loading_wait_and_repeats_are_dropped() {
        let mut r = Relay::loading();
        for e in [msg(7, 3), presence("bob"), msg(7, 4), msg(7, 5)] {
            assert!(r.push(e));
        }
        let mut last = 0;
        assert_eq!(run(&mut r, 7, &mut last), (vec![], None), "nothing while loading");
        // The load read the log up to offset 4.
        last = 4;
        r.loaded();
        assert_eq!(run(&mut r, 7, &mut last), (vec![0, 5], None), "3 and 4 were in the log already");
    }

    #[test]
    fn a_gap_asks_for_a_catch_up_and_holds_what_follows() {
        let mut r = Relay::loading();
        r.loaded();
        let mut last = 10;
        r.push(msg(7, 11));
        r.push(msg(7, 14));
        r.push(presence("eve"));
        r.push(msg(7, 15));
        assert_eq!(run(&mut r, 7, &mut last), (vec![11], Some(Step::CatchUp { after: 11 })));
        assert_eq!(r.phase(), Phase::CatchingUp);
        r.push(msg(7, 16));
        assert_eq!(run(&mut r, 7, &mut last), (vec![], None), "held while catching up");
        let read = LogRead { epoch: 7, last: 16, messages: vec![msg(7, 12), msg(7, 13), msg(7, 14)] };
        r.caught_up(7, last, read).unwrap();
        assert_eq!(run(&mut r, 7, &mut last), (vec![12, 13, 14, 0, 15, 16], None));
    }

    #[test]
    fn a_partial_catch_up_asks_again() {
        let mut r = Relay::loading();
        r.loaded();
        let mut last = 0;
        r.push(msg(7, 5));
        assert_eq!(run(&mut r, 7, &mut last), (vec![], Some(Step::CatchUp { after: 0 })));
        r.caught_up(7, 0, LogRead { epoch: 7, last: 5, messages: vec![msg(7, 1), msg(7, 2)] }).unwrap();
        assert_eq!(run(&mut r, 7, &mut last), (vec![1, 2], Some(Step::CatchUp { after: 2 })));
    }

    #[test]
    fn a_subscription_gap_catches_up_from_the_last_offset() {
        let mut r = Relay::loading();
        r.loaded();
        assert!(r.resync());
        assert!(!r.resync(), "one catch-up at a time");
        r.push(msg(7, 9));
        let mut last = 6;
        assert_eq!(run(&mut r, 7, &mut last), (vec![], None));
        let read = LogRead { epoch: 7, last: 9, messages: vec![msg(7, 7), msg(7, 8), msg(7, 9)] };
        r.caught_up(7, 6, read).unwrap();
        assert_eq!(run(&mut r, 7, &mut last), (vec![7, 8, 9], None), "9 once");
    }

    #[test]
    fn a_new_epoch_or_a_trimmed_gap_is_lost() {
        let mut r = Relay::loading();
        r.loaded();
        let mut last = 3;
        r.push(msg(8, 1));
        assert_eq!(run(&mut r, 7, &mut last), (vec![], Some(Step::Lost)));
        assert_eq!(r.held(), 0);

        let mut r = Relay::loading();
        r.loaded();
        assert!(r.resync());
        let read = LogRead { epoch: 9, last: 1, messages: vec![] };
        assert_eq!(r.caught_up(7, 3, read), Err(Lost), "Redis lost the room: another epoch");
        let mut r = Relay::loading();
        r.loaded();
        assert!(r.resync());
        let read = LogRead { epoch: 7, last: 900, messages: vec![msg(7, 800)] };
        assert_eq!(r.caught_up(7, 3, read), Err(Lost), "offsets 4..799 were trimmed");
        let mut r = Relay::loading();
        r.loaded();
        assert!(r.resync());
        let read = LogRead { epoch: 7, last: 900, messages: vec![] };
        assert_eq!(r.caught_up(7, 3, read), Err(Lost), "everything after 3 was trimmed");
    }

    #[test]
    fn holding_is_bounded() {
        let mut r = Relay::loading();
        for i in 0..MAX_HELD {
            assert!(r.push(msg(1, i as u64 + 1)));
        }
        assert!(!r.push(msg(1, 0)));
    }
}
