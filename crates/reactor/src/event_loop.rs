//! One event loop: a thread owning a `mio::Poll`, the services' connection
//! slabs, its listeners, timers and mailbox.
//!
//! A turn: poll; handle readiness (reads call handlers, which queue output);
//! run commands from other loops and threads; resume reads left over by the
//! read budget; fire timers; flush every connection that got output, once;
//! send other loops their batches with one wake-up each. Work a handler
//! queues for connections of this loop runs right after that handler
//! returns (`run_local`). Output is flushed at the end of the turn, and
//! also mid-turn once `FLUSH_BATCH` connections have some waiting.

use crate::acceptor::Acceptor;
use crate::core::{Command, LoopCore};
use crate::id::{ConnId, ServiceId};
use crate::service::Driver;
use crate::timer::TimerKind;
use crossbeam_channel::Receiver;
use mio::{Events, Poll, Token};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);
/// Commands taken from the mailboxes per turn before the loop serves sockets.
const COMMAND_BUDGET: usize = 1024;
const EVENT_CAPACITY: usize = 1024;

/// Connections with output that make the loop flush before reading more.
/// Flushing only at the end of the turn holds one tail buffer per
/// connection read (a thousand readable echo clients: 4 MB of buffers going
/// cold in cache, 15-20 % of echo throughput at 1,000 connections); flushing
/// after every read spreads the sends out between reads instead of
/// batching them. Batches of this many keep both costs small.
const FLUSH_BATCH: usize = 64;

pub(crate) struct EventLoop {
    pub poll: Poll,
    pub core: LoopCore,
    pub drivers: Vec<Box<dyn Driver>>,
    pub acceptors: Vec<Acceptor>,
    /// From other loops, and control: unbounded.
    pub internal: Receiver<Command>,
    /// From other threads: bounded.
    pub external: Receiver<Command>,
    /// Services whose accept budget ran out with connections possibly
    /// still queued: edge-triggered polling will not report them again, so
    /// the loop comes back to them next turn.
    pub accept_pending: Vec<ServiceId>,
    /// An empty list kept to swap with the dirty and pending-read lists.
    pub spare_ids: Vec<ConnId>,
}

impl EventLoop {
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        let mut commands_pending = false;
        log::debug!("event loop {} started", self.core.index());
        loop {
            let busy = commands_pending || !self.accept_pending.is_empty() || self.core.has_pending_reads();
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.core.next_deadline().map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("event loop {}: poll failed: {e}", self.core.index());
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            self.core.tick();
            let mut woken = commands_pending;
            for event in events.iter() {
                let token = event.token();
                if token == WAKER_TOKEN {
                    woken = true;
                    continue;
                }
                let id = ConnId::from_token(token);
                if id.is_listener() {
                    self.accept(id.service());
                } else if let Some(d) = self.drivers.get_mut(id.service().index()) {
                    let read_closed = event.is_read_closed() || event.is_error();
                    let readable = event.is_readable() || read_closed;
                    let writable = event.is_writable() || event.is_error();
                    d.ready(&mut self.core, id, readable, writable, read_closed);
                }
                self.run_local();
                if self.core.dirty_count() >= FLUSH_BATCH {
                    self.flush_dirty();
                }
            }
            if woken {
                commands_pending = self.run_mailbox();
            }
            for service in std::mem::take(&mut self.accept_pending) {
                self.accept(service);
            }
            if self.core.has_pending_reads() {
                let mut pending = self.core.swap_pending_reads(std::mem::take(&mut self.spare_ids));
                for id in pending.drain(..) {
                    if let Some(d) = self.drivers.get_mut(id.service().index()) {
                        d.resume_read(&mut self.core, id);
                    }
                    self.run_local();
                }
                self.spare_ids = pending;
            }
            self.fire_timers();
            self.flush_dirty();
            self.core.send_remote();
            if self.core.shutdown_deadline().is_some() && self.drivers.iter().all(|d| d.len() == 0) {
                break;
            }
        }
        log::debug!("event loop {} stopped", self.core.index());
    }

    fn accept(&mut self, service: ServiceId) {
        if let Some(a) = self.acceptors.iter_mut().find(|a| a.service == service) {
            if a.accept(&mut self.core, &mut self.drivers) && !self.accept_pending.contains(&service) {
                self.accept_pending.push(service);
            }
        }
        self.run_local();
    }

    /// Runs the work handlers queued for this loop, in order, until none is
    /// left (work may queue more).
    fn run_local(&mut self) {
        while let Some(cmd) = self.core.pop_local() {
            self.execute(cmd);
        }
    }

    /// Flushes each connection that got output, once. Flushing can close
    /// connections, whose handlers may queue more output.
    fn flush_dirty(&mut self) {
        while self.core.dirty_count() > 0 {
            // Swap with a kept spare rather than take: no allocation per turn.
            let mut dirty = self.core.swap_dirty(std::mem::take(&mut self.spare_ids));
            for id in dirty.drain(..) {
                if let Some(d) = self.drivers.get_mut(id.service().index()) {
                    d.flush(&mut self.core, id);
                }
            }
            self.spare_ids = dirty;
            self.run_local();
        }
    }

    fn fire_timers(&mut self) {
        while let Some(t) = self.core.pop_due_timer() {
            match t.kind {
                TimerKind::AcceptRetry => {
                    if let Some(a) = self.acceptors.iter_mut().find(|a| a.token() == t.target.token()) {
                        a.resume();
                        let service = a.service;
                        self.accept(service);
                    }
                }
                TimerKind::ShutdownDeadline => {
                    for d in &mut self.drivers {
                        d.close_all(&mut self.core);
                    }
                }
                kind => {
                    if let Some(d) = self.drivers.get_mut(t.target.service().index()) {
                        d.timer(&mut self.core, t.target, kind);
                    }
                }
            }
            self.run_local();
        }
    }

    /// Runs commands from the mailboxes: from other loops and control first,
    /// then from other threads. Returns true if some were left for the next
    /// turn.
    fn run_mailbox(&mut self) -> bool {
        self.core.shared().mailbox(self.core.index()).woken.store(false, Ordering::SeqCst);
        let mut budget = COMMAND_BUDGET;
        while budget > 0 {
            let cmd = match self.internal.try_recv() {
                Ok(cmd) => cmd,
                Err(_) => match self.external.try_recv() {
                    Ok(cmd) => cmd,
                    Err(_) => return false,
                },
            };
            self.execute(cmd);
            self.run_local();
            budget -= 1;
        }
        // Budget spent: come back next turn without waiting for a wake-up.
        !self.internal.is_empty() || !self.external.is_empty()
    }

    /// Does one piece of work: the single dispatch for every command,
    /// whether a handler on this loop, another loop or another thread sent it.
    fn execute(&mut self, cmd: Command) {
        let core = &mut self.core;
        match cmd {
            Command::Send(id, payload) => {
                if let Some(d) = self.drivers.get_mut(id.service().index()) {
                    d.deliver(core, &[id], &payload);
                }
            }
            Command::Broadcast(ids, payload) => {
                // Each run of one service's ids is one call to its driver.
                for run in ids.chunk_by(|a, b| a.service() == b.service()) {
                    if let Some(d) = self.drivers.get_mut(run[0].service().index()) {
                        d.deliver(core, run, &payload);
                    }
                }
            }
            Command::Close(id) => {
                if let Some(d) = self.drivers.get_mut(id.service().index()) {
                    d.close(core, id);
                }
            }
            Command::Notify(id, token) => {
                if let Some(d) = self.drivers.get_mut(id.service().index()) {
                    d.notify(core, id, token);
                }
            }
            Command::NotifyLoop(_, service, token) => {
                if let Some(d) = self.drivers.get_mut(service.index()) {
                    d.notify_loop(core, token);
                }
            }
            Command::Adopt { service, stream, peer } => match self.drivers.get_mut(service.index()) {
                Some(d) => d.adopt(core, stream, peer),
                None => {
                    if let Some(s) = core.shared().service(service) {
                        s.sockets.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            },
            Command::Reconfigure(service, config) => {
                if let Some(d) = self.drivers.get_mut(service.index()) {
                    d.reconfigure(core, config);
                }
            }
            Command::StopAccepting => self.stop_accepting(),
            Command::Shutdown(deadline) => {
                if self.core.begin_shutdown(deadline) {
                    self.stop_accepting();
                    for d in &mut self.drivers {
                        d.shutdown(&mut self.core);
                    }
                    let any = ConnId::from_u64(0);
                    self.core.set_timer(deadline, any, TimerKind::ShutdownDeadline);
                }
            }
            Command::Batch(cmds) => {
                for c in cmds {
                    self.execute(c);
                }
            }
        }
    }

    fn stop_accepting(&mut self) {
        for mut a in self.acceptors.drain(..) {
            a.deregister(&self.core);
        }
    }
}
