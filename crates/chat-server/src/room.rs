//! One room's state, without I/O: who is in it on which event loop, the
//! stream of events every member must see in one order, the recent
//! messages, and how a join or a resume is answered.
//!
//! # One order per room
//!
//! Every event of a room (a message once it is stored as the fsync policy
//! says, a presence change, a member count) is appended to the room's
//! stream under the room's lock, and gets the next sequence number there:
//! that is the room order. Each event loop delivers the stream to *its own*
//! members, from its own cursor, on its own thread: the loop that published
//! an event delivers it at once, the others are asked to (a
//! `notify_loop`). Since only a loop's thread writes to its members and it
//! walks the one stream front to back, every member on every loop sees the
//! same sequence. (Broadcasting to other loops' members directly, as the
//! first design did, let a later message from one loop overtake an earlier
//! one from another.) A member is added or removed only after its loop has
//! delivered everything before it, so it sees exactly the events published
//! while it was in the room.
//!
//! The driver (`core/`) encodes frames, calls the reactor and the log;
//! everything here is plain data, unit-tested below.
//!
//! # In a cluster
//!
//! Redis gives the offsets and every node, the posting one included,
//! publishes a message into its own room state when it arrives on the
//! room's channel; [`relay`] puts arrivals back in offset order (loading,
//! repeats, gaps). The stream and the per-loop delivery are the same.

pub mod relay;

use crate::protocol::Position;
use crate::store::{Entry, RoomMeta};
use bytes::Bytes;
use reactor::ConnId;
use relay::Relay;
use std::collections::VecDeque;
use std::sync::Arc;

/// An event in a room's stream: a payload (each member's codec frames it)
/// for every member of the room but one (the sender of a message gets a `Sent` reply instead; a user never
/// hears of its own presence).
#[derive(Clone, Debug)]
pub struct Event {
    /// The encoded push, shared by every recipient.
    pub payload: Bytes,
    /// The member that does not receive it.
    pub skip: Option<ConnId>,
}

/// The members of a room on one event loop, and how far that loop has
/// delivered the room's stream.
#[derive(Default, Debug)]
pub struct LoopMembers {
    ids: Vec<ConnId>,
    nicks: Vec<Arc<str>>,
    /// Sequence number of the next event this loop delivers.
    cursor: u64,
    /// The room is queued for this loop's next delivery pass.
    pub queued: bool,
}

impl LoopMembers {
    /// Member connection ids on this loop.
    pub fn ids(&self) -> &[ConnId] {
        &self.ids
    }

    /// Their nicknames, in the order of [`LoopMembers::ids`].
    pub fn nicks(&self) -> &[Arc<str>] {
        &self.nicks
    }
}

/// How to answer a join: the history to send and what the reply says.
#[derive(Debug, PartialEq, Eq)]
pub enum HistoryPlan {
    /// These messages (from the in-memory tail), oldest first.
    Tail {
        /// Messages to replay.
        entries: Vec<Arc<Entry>>,
        /// They are exactly the messages after the client's position.
        recovered: bool,
    },
    /// Exactly the messages after `after`, some older than the tail: read
    /// them from the log (up to `limit`).
    FromLog {
        /// The client's offset.
        after: u64,
        /// Messages to read at most (the room's published count after it).
        limit: usize,
    },
}

/// Where a position stands against a room's log.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Resume {
    /// The messages after it are all kept: they can be replayed exactly.
    Exact,
    /// Another epoch, older than what is kept, ahead of the room, or more
    /// messages behind than `recover_limit`.
    Lost,
}

/// One room. Locked by its driver; every method is plain computation.
#[derive(Debug)]
pub struct RoomState {
    name: Arc<str>,
    epoch: u64,
    /// Next offset to hand out.
    next_offset: u64,
    /// Latest offset published (delivered or being delivered).
    last_published: u64,
    /// Offsets up to this one are gone from the log (retention).
    trimmed: u64,
    /// Recent published messages, oldest first.
    tail: VecDeque<Arc<Entry>>,
    tail_bytes: usize,
    /// Events not yet delivered by every loop with members; `events[0]`
    /// has sequence number `base`.
    events: VecDeque<Event>,
    base: u64,
    loops: Vec<LoopMembers>,
    members: usize,
    /// HTTP long polls waiting for the next message.
    waiters: Vec<ConnId>,
    /// Appends handed to the log writer and not yet reported back.
    unwritten: usize,
    /// Messages appended but not yet durable (fsync "always"), in offset
    /// order: published when the writer reports them stored.
    pending: VecDeque<(Arc<Entry>, Option<ConnId>)>,
    /// The member count changed since the last count push.
    pub count_dirty: bool,
    /// Set once the room left the server's room map: its holders must look
    /// it up again.
    pub evicted: bool,
    /// The log has this room (it had a message once).
    pub stored: bool,
    /// In a cluster: the order of arrivals from Redis.
    pub relay: Option<Relay>,
    /// In a cluster: posts of this node in flight (their token and
    /// sender), so that a sender gets no echo of its own message.
    senders: Vec<(u64, ConnId)>,
    /// In a cluster: members on every node, as Redis last said.
    cluster_members: Option<u32>,
    /// Joins waiting for the room to be loaded (they keep it in memory).
    pub joins_waiting: usize,
}

impl RoomState {
    /// A room as the log knows it (`meta`), with its latest messages
    /// (`tail`, oldest first), for `loops` event loops. `None` meta: a new
    /// room with a fresh `epoch`.
    pub fn new(
        name: Arc<str>,
        meta: Option<RoomMeta>,
        epoch: u64,
        tail: Vec<Entry>,
        loops: usize,
    ) -> RoomState {
        let meta = meta.unwrap_or(RoomMeta { epoch, last_offset: 0, trimmed: 0 });
        let tail: VecDeque<Arc<Entry>> = tail.into_iter().map(Arc::new).collect();
        RoomState {
            name,
            epoch: meta.epoch,
            next_offset: meta.last_offset + 1,
            last_published: meta.last_offset,
            trimmed: meta.trimmed,
            tail_bytes: tail.iter().map(|e| e.heap_size()).sum(),
            tail,
            events: VecDeque::new(),
            base: 0,
            loops: (0..loops).map(|_| LoopMembers::default()).collect(),
            members: 0,
            waiters: Vec::new(),
            unwritten: 0,
            pending: VecDeque::new(),
            count_dirty: false,
            evicted: false,
            stored: false,
            relay: None,
            senders: Vec::new(),
            cluster_members: None,
            joins_waiting: 0,
        }
    }

    /// A room of a cluster, before its state is read from Redis: arrivals
    /// are held until [`RoomState::load`].
    pub fn loading(name: Arc<str>, loops: usize) -> RoomState {
        let mut st = RoomState::new(name, None, 0, Vec::new(), loops);
        st.relay = Some(Relay::loading());
        st
    }

    /// The room's state as read from the log (in a cluster, once loaded):
    /// its position, what retention dropped, its latest messages (oldest
    /// first) and its members on every node.
    pub fn load(&mut self, meta: RoomMeta, tail: Vec<Entry>, members: u32) {
        self.epoch = meta.epoch;
        self.next_offset = meta.last_offset + 1;
        self.last_published = meta.last_offset;
        self.trimmed = meta.trimmed;
        self.tail = tail.into_iter().map(Arc::new).collect();
        self.tail_bytes = self.tail.iter().map(|e| e.heap_size()).sum();
        self.cluster_members = Some(members);
        self.stored = meta.last_offset > 0;
        if let Some(relay) = &mut self.relay {
            relay.loaded();
        }
    }

    /// True while a cluster room waits for its state from Redis.
    pub fn is_loading(&self) -> bool {
        self.relay.as_ref().is_some_and(|r| r.phase() == relay::Phase::Loading)
    }

    /// Remembers the sender of a post in flight (cluster).
    pub fn expect(&mut self, token: u64, sender: ConnId) {
        self.senders.push((token, sender));
    }

    /// The sender of the post with `token`, once (cluster).
    pub fn take_sender(&mut self, token: u64) -> Option<ConnId> {
        let i = self.senders.iter().position(|(t, _)| *t == token)?;
        Some(self.senders.swap_remove(i).1)
    }

    /// Forgets a post that will not arrive (it was refused).
    pub fn forget_sender(&mut self, token: u64) {
        self.senders.retain(|(t, _)| *t != token);
    }

    /// Members on every node as Redis last said (cluster).
    pub fn set_cluster_members(&mut self, members: u32) {
        self.cluster_members = Some(members);
    }

    /// Members of the room: on every node in a cluster (as last known, and
    /// at least those here), else here.
    pub fn total_members(&self) -> usize {
        self.cluster_members.map_or(self.members, |n| (n as usize).max(self.members))
    }

    /// The room's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The room log's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Offset of the latest published message (0: none).
    pub fn last_offset(&self) -> u64 {
        self.last_published
    }

    /// Members on every loop.
    pub fn member_count(&self) -> usize {
        self.members
    }

    /// Members on loop `l`.
    pub fn loop_members(&self, l: usize) -> Option<&LoopMembers> {
        self.loops.get(l)
    }

    /// Loops that have members, with whether the room is already queued
    /// for them.
    pub fn loops_with_members(&self) -> impl Iterator<Item = usize> + '_ {
        self.loops.iter().enumerate().filter(|(_, l)| !l.ids.is_empty()).map(|(i, _)| i)
    }

    /// Marks the room queued for loop `l`; false if it already was.
    pub fn queue_for(&mut self, l: usize) -> bool {
        match self.loops.get_mut(l) {
            Some(lm) if !lm.queued => {
                lm.queued = true;
                true
            }
            _ => false,
        }
    }

    /// Clears the queued mark of loop `l` (it is about to deliver).
    pub fn queue_reset(&mut self, l: usize) {
        if let Some(lm) = self.loops.get_mut(l) {
            lm.queued = false;
        }
    }

    /// Every member's nickname.
    pub fn nicks(&self) -> impl Iterator<Item = &Arc<str>> {
        self.loops.iter().flat_map(|l| l.nicks.iter())
    }

    /// True if connection `id` is a member.
    pub fn is_member(&self, id: ConnId) -> bool {
        self.loops.get(id.loop_index()).is_some_and(|l| l.ids.contains(&id))
    }

    /// Nothing keeps the room in memory: no member, no waiter, nothing
    /// on its way to the log.
    pub fn is_idle(&self) -> bool {
        self.members == 0
            && self.waiters.is_empty()
            && self.unwritten == 0
            && self.pending.is_empty()
            && self.joins_waiting == 0
    }

    /// Hands out the next offset for a message.
    pub fn next_offset(&mut self) -> u64 {
        let o = self.next_offset;
        self.next_offset += 1;
        o
    }

    /// An append was handed to the log writer.
    pub fn wrote(&mut self) {
        self.unwritten += 1;
    }

    /// The writer reported an append (stored or not).
    pub fn written(&mut self) {
        self.unwritten = self.unwritten.saturating_sub(1);
    }

    /// Keeps a message that is waiting to be durable (fsync "always").
    pub fn hold(&mut self, entry: Arc<Entry>, sender: Option<ConnId>) {
        self.pending.push_back((entry, sender));
    }

    /// Takes the held message with `offset` (the writer reported it), with
    /// its sender.
    pub fn release(&mut self, offset: u64) -> Option<(Arc<Entry>, Option<ConnId>)> {
        let i = self.pending.iter().position(|(e, _)| e.offset == offset)?;
        self.pending.remove(i)
    }

    /// Publishes a message: it joins the tail (bounded by `tail_len`
    /// messages and `tail_max_bytes`) and the stream, and the long polls
    /// are released (returned, to be woken).
    pub fn publish_message(
        &mut self,
        entry: Arc<Entry>,
        payload: Bytes,
        sender: Option<ConnId>,
        tail_len: usize,
        tail_max_bytes: usize,
    ) -> Vec<ConnId> {
        self.last_published = self.last_published.max(entry.offset);
        self.tail_bytes += entry.heap_size();
        self.tail.push_back(entry);
        while self.tail.len() > tail_len.max(1) || (self.tail_bytes > tail_max_bytes && self.tail.len() > 1) {
            if let Some(old) = self.tail.pop_front() {
                self.tail_bytes -= old.heap_size();
            }
        }
        self.push(Event { payload, skip: sender });
        std::mem::take(&mut self.waiters)
    }

    /// Publishes a non-message event (presence, member count).
    pub fn push(&mut self, event: Event) {
        if self.members > 0 {
            self.events.push_back(event);
        } else {
            // Nobody to deliver to: the stream stays empty.
            self.base += 1;
            self.sync_cursors();
        }
    }

    fn head(&self) -> u64 {
        self.base + self.events.len() as u64
    }

    fn sync_cursors(&mut self) {
        let head = self.head();
        for l in &mut self.loops {
            if l.ids.is_empty() {
                l.cursor = head;
            }
        }
    }

    /// What loop `l` has to deliver: its members and the events from its
    /// cursor on. Call [`RoomState::delivered`] after sending them.
    pub fn undelivered(&self, l: usize) -> (&[ConnId], impl Iterator<Item = &Event>) {
        let Some(lm) = self.loops.get(l) else { return (&[][..], self.events.range(0..0)) };
        let from = (lm.cursor.saturating_sub(self.base) as usize).min(self.events.len());
        (&lm.ids[..], self.events.range(from..))
    }

    /// Loop `l` delivered everything up to the head; events every loop has
    /// delivered are dropped.
    pub fn delivered(&mut self, l: usize) {
        let head = self.head();
        if let Some(lm) = self.loops.get_mut(l) {
            lm.cursor = head;
        }
        let min = self.loops.iter().filter(|l| !l.ids.is_empty()).map(|l| l.cursor).min().unwrap_or(head);
        while self.base < min {
            self.events.pop_front();
            self.base += 1;
        }
    }

    /// Adds a member on its loop. The loop must have delivered everything
    /// first ([`RoomState::undelivered`] empty), so that the member gets
    /// exactly the events published from now on.
    pub fn add_member(&mut self, id: ConnId, nick: Arc<str>) {
        let head = self.head();
        let l = id.loop_index();
        if self.loops.len() <= l {
            self.loops.resize_with(l + 1, LoopMembers::default);
        }
        let lm = &mut self.loops[l];
        if lm.ids.is_empty() {
            lm.cursor = head;
        }
        lm.ids.push(id);
        lm.nicks.push(nick);
        self.members += 1;
    }

    /// Removes a member (after its loop delivered everything before it).
    /// Returns its nickname, or `None` if it was not a member.
    pub fn remove_member(&mut self, id: ConnId) -> Option<Arc<str>> {
        let lm = self.loops.get_mut(id.loop_index())?;
        let i = lm.ids.iter().position(|&m| m == id)?;
        lm.ids.swap_remove(i);
        let nick = lm.nicks.swap_remove(i);
        self.members -= 1;
        if self.members == 0 {
            // Nobody left to deliver to: drop the stream.
            self.base = self.head();
            self.events.clear();
        }
        Some(nick)
    }

    /// Registers a long poll (once).
    pub fn wait(&mut self, id: ConnId) {
        if !self.waiters.contains(&id) {
            self.waiters.push(id);
        }
    }

    /// Cancels a long poll.
    pub fn stop_waiting(&mut self, id: ConnId) {
        self.waiters.retain(|&w| w != id);
    }

    /// Where `position` stands, given at most `recover_limit` messages may
    /// be replayed.
    pub fn resume(&self, position: Position, recover_limit: usize) -> Resume {
        let same_log = position.epoch == self.epoch || (position.offset == 0 && self.trimmed == 0);
        let kept = position.offset >= self.trimmed;
        let exists = position.offset <= self.last_published;
        let behind = self.last_published - position.offset.min(self.last_published);
        if same_log && kept && exists && behind <= recover_limit as u64 {
            Resume::Exact
        } else {
            Resume::Lost
        }
    }

    /// The history a join gets: exactly what follows `resume` when it can
    /// be recovered, else the latest `history_len` messages.
    pub fn history(&self, resume: Option<Position>, history_len: usize, recover_limit: usize) -> HistoryPlan {
        if let Some(p) = resume {
            if self.resume(p, recover_limit) == Resume::Exact {
                if self.tail_covers(p.offset) {
                    let from = self.tail.partition_point(|e| e.offset <= p.offset);
                    return HistoryPlan::Tail {
                        entries: self.tail.range(from..).cloned().collect(),
                        recovered: true,
                    };
                }
                let limit = (self.last_published - p.offset) as usize;
                return HistoryPlan::FromLog { after: p.offset, limit };
            }
        }
        let from = self.tail.len().saturating_sub(history_len);
        HistoryPlan::Tail { entries: self.tail.range(from..).cloned().collect(), recovered: false }
    }

    /// Published messages after `after`, from the tail, if the tail holds
    /// all of them (`None`: read the log).
    pub fn tail_after(&self, after: u64, limit: usize) -> Option<Vec<Arc<Entry>>> {
        if !self.tail_covers(after) {
            return None;
        }
        let from = self.tail.partition_point(|e| e.offset <= after);
        Some(self.tail.range(from..).take(limit).cloned().collect())
    }

    /// The tail holds every published message after `after`.
    fn tail_covers(&self, after: u64) -> bool {
        after >= self.last_published || self.tail.front().is_some_and(|e| e.offset <= after + 1)
    }

    /// Offsets up to this one are no longer kept.
    pub fn trimmed(&self) -> u64 {
        self.trimmed
    }

    /// The log dropped offsets up to `trimmed` (retention).
    pub fn set_trimmed(&mut self, trimmed: u64) {
        self.trimmed = self.trimmed.max(trimmed);
    }

    /// Bytes the room holds for its tail and stream (for bounds, metrics).
    pub fn memory(&self) -> usize {
        self.tail_bytes + self.events.iter().map(|e| e.payload.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
