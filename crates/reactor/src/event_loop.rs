//! One event loop: a thread owning a `mio::Poll`, the services' connection
//! slabs, its listeners, timers and mailbox.
//!
//! A turn: poll; handle readiness (reads call handlers, which queue output);
//! run commands from other threads; resume reads left over by the read
//! budget; fire timers; flush every connection that got output, once; send
//! other loops their batches with one wake-up each.

use crate::acceptor::Acceptor;
use crate::core::{LoopCore, Outgoing};
use crate::handle::Command;
use crate::id::ConnId;
use crate::service::Driver;
use crate::timer::TimerKind;
use crossbeam_channel::Receiver;
use mio::{Events, Poll, Token};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);
/// Commands taken from the mailbox per turn before the loop serves sockets.
const COMMAND_BUDGET: usize = 1024;
const EVENT_CAPACITY: usize = 1024;

pub(crate) struct EventLoop {
    pub poll: Poll,
    pub core: LoopCore,
    pub drivers: Vec<Box<dyn Driver>>,
    pub acceptors: Vec<Acceptor>,
    pub rx: Receiver<Command>,
    /// Services whose accept budget ran out with connections possibly
    /// still queued: edge-triggered polling will not report them again, so
    /// the loop comes back to them next turn, whoever called accept.
    pub accept_pending: Vec<usize>,
    /// An empty list kept to swap with the dirty and pending-read lists.
    pub spare_ids: Vec<ConnId>,
}

/// Connections with output that make the loop flush before reading more.
/// Flushing only at the end of the turn holds one tail buffer per
/// connection read (a thousand readable echo clients: 4 MB of buffers going
/// cold in cache, 15-20 % of echo throughput at 1,000 connections); flushing
/// after every read spreads the sends out between reads instead of
/// batching them. Batches of this many keep both costs small.
const FLUSH_BATCH: usize = 64;

/// Runs the work handlers queued for connections of this loop.
fn drain_outbox(core: &mut LoopCore, drivers: &mut [Box<dyn Driver>]) {
    while !core.outbox.is_empty() {
        let mut work = std::mem::replace(&mut core.outbox, std::mem::take(&mut core.spare_outbox));
        for w in work.drain(..) {
            match w {
                Outgoing::Send(id, data) => {
                    if let Some(d) = drivers.get_mut(id.service()) {
                        d.deliver(core, id, &data);
                    }
                }
                Outgoing::Broadcast(ids, data) => {
                    for id in ids {
                        if let Some(d) = drivers.get_mut(id.service()) {
                            d.deliver(core, id, &data);
                        }
                    }
                }
                Outgoing::Close(id) => {
                    if let Some(d) = drivers.get_mut(id.service()) {
                        d.close(core, id);
                    }
                }
                Outgoing::Notify(id, token) => {
                    if let Some(d) = drivers.get_mut(id.service()) {
                        d.notify(core, id, token);
                    }
                }
                Outgoing::NotifyLoop(_, service, token) => {
                    if let Some(d) = drivers.get_mut(service) {
                        d.notify_loop(core, token);
                    }
                }
            }
        }
        core.spare_outbox = work;
    }
}

impl EventLoop {
    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        let mut commands_pending = false;
        log::debug!("event loop {} started", self.core.index);
        loop {
            let busy =
                commands_pending || !self.accept_pending.is_empty() || !self.core.pending_reads.is_empty();
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.core.timers.next_deadline().map(|d| d.saturating_duration_since(Instant::now()))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    log::error!("event loop {}: poll failed: {e}", self.core.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            self.core.now = Instant::now();
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
                } else if let Some(d) = self.drivers.get_mut(id.service()) {
                    let read_closed = event.is_read_closed() || event.is_error();
                    let readable = event.is_readable() || read_closed;
                    let writable = event.is_writable() || event.is_error();
                    d.ready(&mut self.core, id, readable, writable, read_closed);
                }
                drain_outbox(&mut self.core, &mut self.drivers);
                if self.core.dirty.len() >= FLUSH_BATCH {
                    self.flush_dirty();
                }
            }
            if woken {
                commands_pending = self.run_commands();
            }
            for service in std::mem::take(&mut self.accept_pending) {
                self.accept(service);
            }
            if !self.core.pending_reads.is_empty() {
                let mut pending =
                    std::mem::replace(&mut self.core.pending_reads, std::mem::take(&mut self.spare_ids));
                for id in pending.drain(..) {
                    if let Some(d) = self.drivers.get_mut(id.service()) {
                        d.resume_read(&mut self.core, id);
                    }
                    drain_outbox(&mut self.core, &mut self.drivers);
                }
                self.spare_ids = pending;
            }
            self.fire_timers();
            drain_outbox(&mut self.core, &mut self.drivers);
            self.flush_dirty();
            self.core.send_remote();
            if self.core.shutdown_deadline.is_some() && self.drivers.iter().all(|d| d.len() == 0) {
                break;
            }
        }
        log::debug!("event loop {} stopped", self.core.index);
    }

    fn accept(&mut self, service: usize) {
        if let Some(a) = self.acceptors.iter_mut().find(|a| a.service == service) {
            if a.accept(&mut self.core, &mut self.drivers) && !self.accept_pending.contains(&service) {
                self.accept_pending.push(service);
            }
        }
        drain_outbox(&mut self.core, &mut self.drivers);
    }

    /// Flushes each connection that got output this turn, once. Flushing
    /// can close connections, whose handlers may queue more output.
    fn flush_dirty(&mut self) {
        while !self.core.dirty.is_empty() {
            // Swap with a kept spare rather than take: no allocation per turn.
            let mut dirty = std::mem::replace(&mut self.core.dirty, std::mem::take(&mut self.spare_ids));
            for id in dirty.drain(..) {
                if let Some(d) = self.drivers.get_mut(id.service()) {
                    d.flush(&mut self.core, id);
                }
            }
            self.spare_ids = dirty;
            drain_outbox(&mut self.core, &mut self.drivers);
        }
    }

    fn fire_timers(&mut self) {
        while let Some(t) = self.core.timers.pop_due(self.core.now) {
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
                    if let Some(d) = self.drivers.get_mut(t.target.service()) {
                        d.timer(&mut self.core, t.target, kind);
                    }
                }
            }
            drain_outbox(&mut self.core, &mut self.drivers);
        }
    }

    /// Runs commands from the mailbox. Returns true if some were left for
    /// the next turn.
    fn run_commands(&mut self) -> bool {
        let mailbox = &self.core.shared.mailboxes[self.core.index];
        mailbox.woken.store(false, Ordering::SeqCst);
        for _ in 0..COMMAND_BUDGET {
            match self.rx.try_recv() {
                Ok(cmd) => self.run_command(cmd),
                Err(_) => return false,
            }
        }
        // Budget spent: come back next turn without waiting for a wake-up.
        !self.rx.is_empty()
    }

    fn run_command(&mut self, cmd: Command) {
        let core = &mut self.core;
        match cmd {
            Command::Send(id, data) => {
                if let Some(d) = self.drivers.get_mut(id.service()) {
                    d.deliver(core, id, &data);
                }
            }
            Command::Broadcast(ids, data) => {
                for id in ids {
                    if let Some(d) = self.drivers.get_mut(id.service()) {
                        d.deliver(core, id, &data);
                    }
                }
            }
            Command::Close(id) => {
                if let Some(d) = self.drivers.get_mut(id.service()) {
                    d.close(core, id);
                }
            }
            Command::Notify(id, token) => {
                if let Some(d) = self.drivers.get_mut(id.service()) {
                    d.notify(core, id, token);
                }
            }
            Command::NotifyLoop(service, token) => {
                if let Some(d) = self.drivers.get_mut(service) {
                    d.notify_loop(core, token);
                }
            }
            Command::Adopt { service, stream, peer } => match self.drivers.get_mut(service) {
                Some(d) => d.adopt(core, stream, peer),
                None => {
                    if let Some(s) = core.shared.services.get(service) {
                        s.open.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            },
            Command::Reconfigure(service, config) => {
                if let Some(d) = self.drivers.get_mut(service) {
                    d.reconfigure(core, config);
                }
            }
            Command::StopAccepting => self.stop_accepting(),
            Command::Shutdown(deadline) => {
                if self.core.shutdown_deadline.is_none() {
                    self.stop_accepting();
                    self.core.shutdown_deadline = Some(deadline);
                    for d in &mut self.drivers {
                        d.shutdown(&mut self.core);
                    }
                    let any = ConnId::from_u64(0);
                    self.core.timers.insert(deadline, any, TimerKind::ShutdownDeadline);
                }
            }
            Command::Batch(cmds) => {
                for c in cmds {
                    self.run_command(c);
                }
            }
        }
        drain_outbox(&mut self.core, &mut self.drivers);
    }

    fn stop_accepting(&mut self) {
        for mut a in self.acceptors.drain(..) {
            a.deregister(&self.core);
        }
    }
}
