//! One loop's timers: a min-heap of deadlines with lazy cancellation.

use crate::id::ConnId;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::time::Instant;

/// Names a timer armed with [`Context::set_timer`], to cancel it.
///
/// [`Context::set_timer`]: crate::Context::set_timer
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey(u64);

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TimerKind {
    /// The connection's idle deadline may have passed.
    Idle,
    /// The connection's transport may not have finished its handshake.
    Handshake,
    /// A handler's timer, with the handler's token.
    User(u64),
    /// A closing connection's linger time is over.
    Linger,
    /// A listener paused after an accept error may retry.
    AcceptRetry,
    /// Graceful shutdown's deadline: close whatever is left.
    ShutdownDeadline,
}

#[derive(Debug)]
pub(crate) struct Timer {
    pub deadline: Instant,
    pub seq: u64,
    /// The connection (or, for listener timers, the listener token's id).
    pub target: ConnId,
    pub kind: TimerKind,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline && self.seq == other.seq
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    // Reversed: BinaryHeap is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.deadline.cmp(&self.deadline).then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Deadlines of one loop. Timers of closed connections are not removed: they
/// fire, miss on the generation check and are dropped, which is cheaper than
/// finding them. User timers (the only ones a caller can cancel) are listed
/// while armed: cancelling one takes it off the list and it is skipped when
/// it comes up; cancelling one that already fired or was cancelled does
/// nothing, so nothing is remembered past a timer's deadline.
#[derive(Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Timer>,
    armed: HashSet<u64>,
    next_seq: u64,
}

impl TimerQueue {
    pub(crate) fn insert(&mut self, deadline: Instant, target: ConnId, kind: TimerKind) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        if matches!(kind, TimerKind::User(_)) {
            self.armed.insert(seq);
        }
        self.heap.push(Timer { deadline, seq, target, kind });
        TimerKey(seq)
    }

    pub(crate) fn cancel(&mut self, key: TimerKey) {
        self.armed.remove(&key.0);
    }

    /// The earliest deadline, if any timer is armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|t| t.deadline)
    }

    /// Removes and returns the next timer due at `now`, skipping cancelled ones.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        loop {
            if self.heap.peek()?.deadline > now {
                return None;
            }
            let t = self.heap.pop()?;
            if matches!(t.kind, TimerKind::User(_)) && !self.armed.remove(&t.seq) {
                continue; // cancelled
            }
            return Some(t);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let t0 = Instant::now();
        let id = ConnId::new(0, crate::id::ServiceId::from_index(0), 1, 1);
        let mut q = TimerQueue::default();
        q.insert(t0 + Duration::from_millis(30), id, TimerKind::User(3));
        let k = q.insert(t0 + Duration::from_millis(10), id, TimerKind::User(1));
        q.insert(t0 + Duration::from_millis(20), id, TimerKind::User(2));
        q.insert(t0 + Duration::from_millis(20), id, TimerKind::User(22));
        q.cancel(k);
        assert!(q.pop_due(t0).is_none());
        let fired: Vec<_> =
            std::iter::from_fn(|| q.pop_due(t0 + Duration::from_millis(25))).map(|t| t.kind).collect();
        assert_eq!(fired, vec![TimerKind::User(2), TimerKind::User(22)]);
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_millis(30)));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn cancelling_a_fired_or_cancelled_timer_leaves_nothing_behind() {
        let t0 = Instant::now();
        let id = ConnId::new(0, crate::id::ServiceId::from_index(0), 1, 1);
        let mut q = TimerQueue::default();
        let fired = q.insert(t0, id, TimerKind::User(1));
        assert!(q.pop_due(t0).is_some());
        q.cancel(fired);
        let cancelled = q.insert(t0, id, TimerKind::User(2));
        q.cancel(cancelled);
        q.cancel(cancelled);
        assert!(q.pop_due(t0).is_none());
        assert!(q.armed.is_empty(), "a key is kept only while its timer is armed");
        // Many set-and-cancel rounds keep the queue bounded by what is armed.
        for i in 0..1000 {
            let k = q.insert(t0 + Duration::from_millis(i), id, TimerKind::User(i));
            q.cancel(k);
        }
        assert!(q.armed.is_empty());
        while q.pop_due(t0 + Duration::from_secs(2)).is_some() {}
        assert_eq!(q.len(), 0);
    }
}
