//! What one event loop keeps besides its services: clock, timers, buffers,
//! the work queued for later in the turn, and the one command type that
//! carries work between loops and threads. Services and contexts reach it
//! only through these methods.

use crate::config::ServiceConfig;
use crate::handle::Shared;
use crate::id::{ConnId, ServiceId};
use crate::stats::Counters;
use crate::timer::{Timer, TimerKey, TimerKind, TimerQueue};
use crate::write_queue::{BufferPool, POOL_BUFFER_SIZE, POOL_MAX_BYTES};
use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Per-loop scratch read buffer: input is read here first and a connection
/// keeps (a copy of) only what its codec left undecoded.
pub(crate) const SCRATCH_SIZE: usize = 64 << 10;

/// Work for a loop: from a handler on the same loop (run after the
/// callback returns), from another loop (batched, one wake-up per turn) or
/// from another thread (through a [`ReactorHandle`](crate::ReactorHandle)).
pub(crate) enum Command {
    /// A message for one connection, encoded by its codec.
    Send(ConnId, Bytes),
    /// One message for many connections, all on the receiving loop.
    Broadcast(Vec<ConnId>, Bytes),
    Close(ConnId),
    Notify(ConnId, u64),
    /// `on_loop_notify(token)` of a service on loop `.0`.
    NotifyLoop(usize, ServiceId, u64),
    /// A connection accepted by another loop, handed over to this one.
    Adopt {
        service: ServiceId,
        stream: TcpStream,
        peer: SocketAddr,
    },
    Reconfigure(ServiceId, Arc<ServiceConfig>),
    StopAccepting,
    Shutdown(Instant),
    /// Several commands sent with one wake-up.
    Batch(Vec<Command>),
}

impl Command {
    /// The loop the command is for; `None` for control commands, which are
    /// never routed from a handler.
    fn target_loop(&self) -> Option<usize> {
        match self {
            Command::Send(id, _) | Command::Close(id) | Command::Notify(id, _) => Some(id.loop_index()),
            Command::Broadcast(ids, _) => ids.first().map(|id| id.loop_index()),
            Command::NotifyLoop(target, _, _) => Some(*target),
            _ => None,
        }
    }
}

pub(crate) struct LoopCore {
    index: usize,
    registry: mio::Registry,
    shared: Arc<Shared>,
    timers: TimerQueue,
    /// Time at the start of this turn (one clock read per turn).
    now: Instant,
    /// `now` in milliseconds since `epoch`, worked out once per turn.
    now_ms: u64,
    epoch: Instant,
    pool: BufferPool,
    scratch: BytesMut,
    /// Work for connections of this loop, run after the current callback.
    local: VecDeque<Command>,
    /// Commands for other loops, sent once per turn with one wake-up each.
    remote: Vec<Vec<Command>>,
    /// Connections with output to flush.
    dirty: Vec<ConnId>,
    /// Connections with input left unread (read budget spent, or resumed).
    pending_reads: Vec<ConnId>,
    /// Set once graceful shutdown began: its deadline.
    shutdown_deadline: Option<Instant>,
}

impl LoopCore {
    pub(crate) fn new(
        index: usize,
        registry: mio::Registry,
        shared: Arc<Shared>,
        epoch: Instant,
    ) -> LoopCore {
        let loops = shared.loops();
        LoopCore {
            index,
            registry,
            shared,
            timers: TimerQueue::default(),
            now: epoch,
            now_ms: 0,
            epoch,
            pool: BufferPool::new(POOL_BUFFER_SIZE, POOL_MAX_BYTES),
            scratch: BytesMut::with_capacity(SCRATCH_SIZE),
            local: VecDeque::new(),
            remote: (0..loops).map(|_| Vec::new()).collect(),
            dirty: Vec::new(),
            pending_reads: Vec::new(),
            shutdown_deadline: None,
        }
    }

    pub(crate) fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn loops(&self) -> usize {
        self.remote.len()
    }

    pub(crate) fn registry(&self) -> &mio::Registry {
        &self.registry
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Reads the clock: once per turn.
    pub(crate) fn tick(&mut self) {
        self.now = Instant::now();
        self.now_ms = self.now.saturating_duration_since(self.epoch).as_millis() as u64;
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub(crate) fn counters(&self, service: ServiceId) -> &Counters {
        &self.shared.services[service.index()].counters[self.index]
    }

    pub(crate) fn pool(&mut self) -> &mut BufferPool {
        &mut self.pool
    }

    /// The loop's read buffer, emptied, with room for a read. Give it back
    /// with [`LoopCore::put_scratch`].
    pub(crate) fn take_scratch(&mut self) -> BytesMut {
        let mut s = std::mem::take(&mut self.scratch);
        s.clear();
        s.reserve(SCRATCH_SIZE);
        s
    }

    pub(crate) fn put_scratch(&mut self, mut scratch: BytesMut) {
        scratch.clear();
        self.scratch = scratch;
    }

    pub(crate) fn set_timer(&mut self, deadline: Instant, target: ConnId, kind: TimerKind) -> TimerKey {
        self.timers.insert(deadline, target, kind)
    }

    pub(crate) fn cancel_timer(&mut self, key: TimerKey) {
        self.timers.cancel(key);
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    pub(crate) fn pop_due_timer(&mut self) -> Option<Timer> {
        self.timers.pop_due(self.now)
    }

    pub(crate) fn shutdown_deadline(&self) -> Option<Instant> {
        self.shutdown_deadline
    }

    /// Begins graceful shutdown; false if it had begun already.
    pub(crate) fn begin_shutdown(&mut self, deadline: Instant) -> bool {
        if self.shutdown_deadline.is_some() {
            return false;
        }
        self.shutdown_deadline = Some(deadline);
        true
    }

    /// Lists a connection to flush (the caller keeps a flag so that it is
    /// listed once).
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        self.dirty.push(id);
    }

    pub(crate) fn dirty_count(&self) -> usize {
        self.dirty.len()
    }

    /// Takes the connections to flush, leaving `spare` (an empty list kept
    /// by the caller, so that no turn allocates one).
    pub(crate) fn swap_dirty(&mut self, spare: Vec<ConnId>) -> Vec<ConnId> {
        std::mem::replace(&mut self.dirty, spare)
    }

    /// Lists a connection whose input is to be read later in this turn.
    pub(crate) fn schedule_read(&mut self, id: ConnId) {
        self.pending_reads.push(id);
    }

    pub(crate) fn has_pending_reads(&self) -> bool {
        !self.pending_reads.is_empty()
    }

    pub(crate) fn swap_pending_reads(&mut self, spare: Vec<ConnId>) -> Vec<ConnId> {
        std::mem::replace(&mut self.pending_reads, spare)
    }

    /// Routes work to the loop it is for: work for this loop runs after the
    /// current callback returns; work for another loop leaves at the end of
    /// the turn, in order with this loop's other work for that loop.
    pub(crate) fn route(&mut self, cmd: Command) {
        match cmd.target_loop() {
            Some(target) if target == self.index => self.local.push_back(cmd),
            Some(target) => {
                if let Some(batch) = self.remote.get_mut(target) {
                    batch.push(cmd);
                }
            }
            None => self.local.push_back(cmd),
        }
    }

    /// Queues work for another loop as is (a broadcast's ids for it).
    pub(crate) fn push_remote(&mut self, target: usize, cmd: Command) {
        if let Some(batch) = self.remote.get_mut(target) {
            batch.push(cmd);
        }
    }

    /// The next piece of work queued for this loop.
    pub(crate) fn pop_local(&mut self) -> Option<Command> {
        self.local.pop_front()
    }

    /// Sends each other loop its batch, with at most one wake-up each.
    /// Loop-to-loop traffic never waits and is never refused: it goes
    /// through each loop's internal mailbox, which is not bounded (a loop
    /// blocking on another could deadlock); it is bounded by the work the
    /// loops themselves do in a turn.
    pub(crate) fn send_remote(&mut self) {
        for (target, batch) in self.remote.iter_mut().enumerate() {
            let cmd = match batch.len() {
                0 => continue,
                1 => match batch.pop() {
                    Some(cmd) => cmd,
                    None => continue,
                },
                _ => Command::Batch(std::mem::take(batch)),
            };
            self.shared.mailbox(target).post(cmd);
        }
    }
}
