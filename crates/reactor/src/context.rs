//! What a handler can do from inside a callback.

use crate::connection::{flag, ConnIo};
use crate::core::{LoopCore, Outgoing};
use crate::handle::{Command, ReactorHandle};
use crate::handler::CloseReason;
use crate::id::ConnId;
use crate::stats::Counters;
use crate::timer::{TimerKey, TimerKind};
use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};

/// The connection a callback is about, and the loop it runs on.
///
/// Sends to the current connection go straight into its write queue; sends
/// to any other connection (on this loop or another) are batched and leave
/// when the callback returns or at the end of the loop's turn. Output is
/// written once per turn per connection, so many replies made in one turn
/// leave in one vectored write.
pub struct Context<'a> {
    core: &'a mut LoopCore,
    io: Option<&'a mut ConnIo>,
    id: ConnId,
}

impl<'a> Context<'a> {
    pub(crate) fn new(core: &'a mut LoopCore, io: Option<&'a mut ConnIo>, id: ConnId) -> Context<'a> {
        Context { core, io, id }
    }

    /// The current connection's id: keep it to reach this connection later,
    /// from any thread.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Index of the event loop running this callback.
    pub fn loop_index(&self) -> usize {
        self.core.index
    }

    /// The time this loop turn started (read once per turn).
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// A handle to reach any connection or the reactor from other threads.
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle::from_shared(self.core.shared.clone())
    }

    /// The current connection's peer address (a `getpeername` call: for
    /// the rare callers that need it, such as a per-address login limit).
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.io.as_ref().and_then(|io| io.stream.peer_addr().ok())
    }

    /// Bytes queued for the current connection and not yet written.
    pub fn queued(&self) -> usize {
        self.io.as_ref().map_or(0, |io| io.out.len())
    }

    /// True while the current connection is open and not closing.
    pub fn is_open(&self) -> bool {
        self.io.as_ref().is_some_and(|io| !io.has(flag::CLOSING | flag::ABORT))
    }

    /// True once the reactor began a graceful shutdown.
    pub fn is_shutting_down(&self) -> bool {
        self.core.shutdown_deadline.is_some()
    }

    fn mark_dirty(core: &mut LoopCore, io: &mut ConnIo) {
        if !io.has(flag::DIRTY) {
            io.flags |= flag::DIRTY;
            core.dirty.push(io.id);
        }
    }

    /// Queues `data` for the current connection without copying it.
    /// Dropped if the connection is closing (or gone, in `on_close`).
    pub fn send(&mut self, data: Bytes) {
        if let Some(io) = self.io.as_deref_mut() {
            if !io.has(flag::ABORT | flag::LINGER) {
                io.out.push(&mut self.core.pool, &data);
                Self::mark_dirty(self.core, io);
            }
        }
    }

    /// Copies `data` into the current connection's output buffer: the
    /// cheapest way to send many small replies.
    pub fn write(&mut self, data: &[u8]) {
        self.write_with(|buf| buf.extend_from_slice(data));
    }

    /// Lets `f` encode straight into the current connection's output buffer
    /// (it must only append). Returns `None`, without calling `f`, if the
    /// connection is gone or closing.
    pub fn write_with<R>(&mut self, f: impl FnOnce(&mut BytesMut) -> R) -> Option<R> {
        let io = self.io.as_deref_mut()?;
        if io.has(flag::ABORT | flag::LINGER) {
            return None;
        }
        let r = io.out.append_with(&mut self.core.pool, f);
        Self::mark_dirty(self.core, io);
        Some(r)
    }

    /// Queues `data` for any connection, on any loop. A stale id (its
    /// connection closed) is ignored.
    pub fn send_to(&mut self, id: ConnId, data: Bytes) {
        if id == self.id {
            return self.send(data);
        }
        self.core.route(Outgoing::Send(id, data));
    }

    /// Queues one shared buffer for many connections: each gets a reference
    /// to the same bytes, never a copy. Returns how many were addressed.
    pub fn broadcast(&mut self, ids: &[ConnId], data: &Bytes) -> usize {
        self.broadcast_filtered(ids, data, None)
    }

    /// Like [`Context::broadcast`], skipping the current connection.
    pub fn broadcast_others(&mut self, ids: &[ConnId], data: &Bytes) -> usize {
        self.broadcast_filtered(ids, data, Some(self.id))
    }

    /// Like [`Context::broadcast`], skipping `skip` if it is among `ids`.
    pub fn broadcast_except(&mut self, ids: &[ConnId], data: &Bytes, skip: Option<ConnId>) -> usize {
        self.broadcast_filtered(ids, data, skip)
    }

    fn broadcast_filtered(&mut self, ids: &[ConnId], data: &Bytes, skip: Option<ConnId>) -> usize {
        let here = self.core.index;
        let loops = self.core.remote.len();
        // Ids for other loops, grouped so each loop gets one command.
        let mut remote: Vec<Vec<ConnId>> = Vec::new();
        // This loop's ids go out as one piece of work: each recipient copies
        // a small message into its queue rather than taking a reference.
        let mut local: Vec<ConnId> = Vec::new();
        let mut sent = 0;
        for &id in ids {
            if Some(id) == skip {
                continue;
            }
            sent += 1;
            let target = id.loop_index();
            if id == self.id {
                self.send(data.clone());
            } else if target == here {
                local.push(id);
            } else if target < loops {
                if remote.is_empty() {
                    remote.resize_with(loops, Vec::new);
                }
                remote[target].push(id);
            }
        }
        if !local.is_empty() {
            self.core.outbox.push(Outgoing::Broadcast(local, data.clone()));
        }
        for (target, ids) in remote.into_iter().enumerate() {
            if !ids.is_empty() {
                self.core.remote[target].push(Command::Broadcast(ids, data.clone()));
            }
        }
        sent
    }

    /// Calls `on_notify(token)` for connection `id` on its own loop.
    pub fn notify(&mut self, id: ConnId, token: u64) {
        self.core.route(Outgoing::Notify(id, token));
    }

    /// Calls `on_loop_notify(token)` on service `service`'s handler on loop
    /// `loop_index` (this loop included: then it runs after this callback
    /// returns). Notifies to another loop leave at the end of this loop's
    /// turn, in order with this loop's other sends to that loop.
    pub fn notify_loop(&mut self, loop_index: usize, service: usize, token: u64) {
        self.core.route(Outgoing::NotifyLoop(loop_index, service, token));
    }

    /// Closes the current connection once its queued output is written.
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    /// Closes the current connection once its queued output is written,
    /// recording `reason` (a `Protocol` reason is counted and logged as a
    /// protocol error).
    pub fn close_with(&mut self, reason: CloseReason) {
        if let Some(io) = self.io.as_deref_mut() {
            io.request_close(reason);
        }
    }

    /// Closes the current connection at once, dropping its queued output.
    pub fn abort(&mut self, reason: CloseReason) {
        if let Some(io) = self.io.as_deref_mut() {
            io.request_abort(reason);
        }
    }

    /// Closes another connection (after its queued output is written).
    pub fn close_conn(&mut self, id: ConnId) {
        if id == self.id {
            return self.close();
        }
        self.core.route(Outgoing::Close(id));
    }

    /// Arms a timer for the current connection: `on_timer(token)` runs after
    /// `after`, unless the connection closed or the timer was cancelled.
    pub fn set_timer(&mut self, after: Duration, token: u64) -> TimerKey {
        let deadline = self.core.now + after;
        self.core.timers.insert(deadline, self.id, TimerKind::User(token))
    }

    /// Cancels a timer armed with [`Context::set_timer`].
    pub fn cancel_timer(&mut self, key: TimerKey) {
        self.core.timers.cancel(key);
    }

    /// Adds to this service's frames-in counter (framed handlers call it).
    pub fn count_frames_in(&mut self, n: u64) {
        Counters::add(&self.core.counters(self.id.service()).frames_in, n);
    }

    /// Adds to this service's frames-out counter (framed handlers call it).
    pub fn count_frames_out(&mut self, n: u64) {
        Counters::add(&self.core.counters(self.id.service()).frames_out, n);
    }
}
