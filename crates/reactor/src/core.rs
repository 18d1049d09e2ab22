//! State one event loop shares with every service it drives and with the
//! [`Context`](crate::Context) handed to handlers.

use crate::handle::{Command, Shared};
use crate::id::ConnId;
use crate::stats::Counters;
use crate::timer::TimerQueue;
use crate::write_queue::BufferPool;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Instant;

/// Per-loop scratch read buffer: input is read here first and a connection
/// keeps (a copy of) only what its handler left unconsumed.
pub(crate) const SCRATCH_SIZE: usize = 64 << 10;

/// Work a handler asked for on another connection of the same loop, done
/// after the handler returns (the target may belong to another service).
pub(crate) enum Outgoing {
    Send(ConnId, Bytes),
    /// Every id is on this loop.
    Broadcast(Vec<ConnId>, Bytes),
    Close(ConnId),
    Notify(ConnId, u64),
    /// `on_loop_notify` of a service on a loop: (loop, service, token).
    NotifyLoop(usize, usize, u64),
}

impl Outgoing {
    /// The loop the work is for (a broadcast's ids all share one).
    fn target_loop(&self) -> Option<usize> {
        match self {
            Outgoing::Send(id, _) | Outgoing::Close(id) | Outgoing::Notify(id, _) => Some(id.loop_index()),
            Outgoing::Broadcast(ids, _) => ids.first().map(|id| id.loop_index()),
            Outgoing::NotifyLoop(target, _, _) => Some(*target),
        }
    }
}

impl From<Outgoing> for Command {
    fn from(work: Outgoing) -> Command {
        match work {
            Outgoing::Send(id, data) => Command::Send(id, data),
            Outgoing::Broadcast(ids, data) => Command::Broadcast(ids, data),
            Outgoing::Close(id) => Command::Close(id),
            Outgoing::Notify(id, token) => Command::Notify(id, token),
            Outgoing::NotifyLoop(_, service, token) => Command::NotifyLoop(service, token),
        }
    }
}

pub(crate) struct LoopCore {
    pub index: usize,
    pub registry: mio::Registry,
    pub shared: Arc<Shared>,
    pub timers: TimerQueue,
    /// Time at the start of this turn (one clock read per turn).
    pub now: Instant,
    pub epoch: Instant,
    pub pool: BufferPool,
    pub scratch: BytesMut,
    pub outbox: Vec<Outgoing>,
    /// An empty outbox kept to swap with the full one (no allocation per turn).
    pub spare_outbox: Vec<Outgoing>,
    /// Commands for other loops, sent once per turn with one wake-up each.
    pub remote: Vec<Vec<Command>>,
    /// Connections with output to flush at the end of the turn.
    pub dirty: Vec<ConnId>,
    /// Connections with input left unread (read budget spent, or resumed).
    pub pending_reads: Vec<ConnId>,
    /// Set once graceful shutdown began: its deadline.
    pub shutdown_deadline: Option<Instant>,
}

impl LoopCore {
    pub(crate) fn now_ms(&self) -> u64 {
        self.now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub(crate) fn counters(&self, service: usize) -> &Counters {
        &self.shared.services[service].counters[self.index]
    }

    /// Routes a command to the loop that owns `id`'s connection: local work
    /// goes to the outbox, remote work is batched until the end of the turn.
    pub(crate) fn route(&mut self, work: Outgoing) {
        let Some(target) = work.target_loop() else { return };
        if target == self.index {
            self.outbox.push(work);
        } else if let Some(batch) = self.remote.get_mut(target) {
            batch.push(work.into());
        }
    }

    /// Sends each other loop its batch, with at most one wake-up each.
    pub(crate) fn send_remote(&mut self) {
        for (target, batch) in self.remote.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let cmd = match batch.len() {
                1 => match batch.pop() {
                    Some(cmd) => cmd,
                    None => continue,
                },
                _ => Command::Batch(std::mem::take(batch)),
            };
            self.shared.mailboxes[target].post(cmd);
        }
    }
}
