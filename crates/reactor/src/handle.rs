//! Reaching the loops from any thread: per-loop mailboxes woken at most once
//! per batch, and the public [`ReactorHandle`].

use crate::config::ServiceConfig;
use crate::id::ConnId;
use crate::stats::{Counters, ServiceStats};
use bytes::Bytes;
use crossbeam_channel::Sender;
use mio::net::TcpStream;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Work for a loop, from another loop or thread.
pub(crate) enum Command {
    Send(ConnId, Bytes),
    /// Every id is on the receiving loop; they share the one buffer.
    Broadcast(Vec<ConnId>, Bytes),
    Close(ConnId),
    Notify(ConnId, u64),
    /// `on_loop_notify(token)` for a service's handler on the receiving loop.
    NotifyLoop(usize, u64),
    /// A connection accepted by another loop, handed over to this one.
    Adopt {
        service: usize,
        stream: TcpStream,
        peer: SocketAddr,
    },
    Reconfigure(usize, Arc<ServiceConfig>),
    StopAccepting,
    Shutdown(Instant),
    /// Several commands sent with one wake-up.
    Batch(Vec<Command>),
}

/// A loop's inbox. `woken` makes senders call the (syscall-costly) waker
/// only when the loop has not yet been woken since it last drained.
pub(crate) struct Mailbox {
    pub tx: Sender<Command>,
    pub waker: mio::Waker,
    pub woken: AtomicBool,
}

impl Mailbox {
    /// Posts a command; false if the loop has exited.
    pub(crate) fn post(&self, cmd: Command) -> bool {
        if self.tx.send(cmd).is_err() {
            return false;
        }
        // SeqCst pairs with the loop's store(false) before it drains: either
        // this swap sees false and wakes it, or the loop drains after our send.
        if !self.woken.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake event loop: {e}");
            }
        }
        true
    }
}

/// What every loop and handle share about one service.
pub(crate) struct ServiceShared {
    pub name: String,
    pub open: AtomicUsize,
    pub max_connections: AtomicUsize,
    pub config: Mutex<Arc<ServiceConfig>>,
    /// One entry per loop.
    pub counters: Vec<Counters>,
    pub local_addr: SocketAddr,
}

pub(crate) struct Shared {
    pub mailboxes: Vec<Mailbox>,
    pub services: Vec<ServiceShared>,
    pub shutting_down: AtomicBool,
}

/// A cloneable, thread-safe handle to a running reactor: send to any
/// connection, broadcast, close, read counters, reconfigure, shut down.
#[derive(Clone)]
pub struct ReactorHandle {
    shared: Arc<Shared>,
}

impl ReactorHandle {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> ReactorHandle {
        ReactorHandle { shared }
    }

    fn post(&self, loop_index: usize, cmd: Command) -> bool {
        self.shared.mailboxes.get(loop_index).is_some_and(|m| m.post(cmd))
    }

    /// Number of event loops.
    pub fn loops(&self) -> usize {
        self.shared.mailboxes.len()
    }

    /// Queues `data` for connection `id`. Returns false if its loop has
    /// exited; a stale id is dropped silently by the loop.
    pub fn send(&self, id: ConnId, data: Bytes) -> bool {
        self.post(id.loop_index(), Command::Send(id, data))
    }

    /// Queues one shared buffer for many connections, with one message (and
    /// at most one wake-up) per loop involved; no copy per recipient.
    pub fn broadcast(&self, ids: &[ConnId], data: &Bytes) {
        let mut per_loop: Vec<Vec<ConnId>> = vec![Vec::new(); self.loops()];
        for &id in ids {
            if let Some(v) = per_loop.get_mut(id.loop_index()) {
                v.push(id);
            }
        }
        for (i, ids) in per_loop.into_iter().enumerate() {
            if !ids.is_empty() {
                self.post(i, Command::Broadcast(ids, data.clone()));
            }
        }
    }

    /// Closes connection `id` after its queued output is written.
    pub fn close(&self, id: ConnId) -> bool {
        self.post(id.loop_index(), Command::Close(id))
    }

    /// Calls the handler's `on_notify(token)` for connection `id`.
    pub fn notify(&self, id: ConnId, token: u64) -> bool {
        self.post(id.loop_index(), Command::Notify(id, token))
    }

    /// Calls `on_loop_notify(token)` on service `service`'s handler on loop
    /// `loop_index`: work for a loop rather than for one connection (say,
    /// "deliver what is new in this room to your members"). Returns false if
    /// there is no such loop or it has exited. Safe from any thread.
    pub fn notify_loop(&self, loop_index: usize, service: usize, token: u64) -> bool {
        self.post(loop_index, Command::NotifyLoop(service, token))
    }

    /// Index of the service called `name`.
    pub fn service_index(&self, name: &str) -> Option<usize> {
        self.shared.services.iter().position(|s| s.name == name)
    }

    /// The address service `service` listens on.
    pub fn local_addr(&self, service: usize) -> Option<SocketAddr> {
        self.shared.services.get(service).map(|s| s.local_addr)
    }

    /// Counters of one service, summed over all loops.
    pub fn stats(&self, service: usize) -> Option<ServiceStats> {
        let s = self.shared.services.get(service)?;
        Some(ServiceStats::sum(&s.name, s.open.load(Ordering::Relaxed) as u64, s.counters.iter()))
    }

    /// Counters of every service, in registration order.
    pub fn all_stats(&self) -> Vec<ServiceStats> {
        (0..self.shared.services.len()).filter_map(|i| self.stats(i)).collect()
    }

    /// The config a service runs with now.
    pub fn config(&self, service: usize) -> Option<Arc<ServiceConfig>> {
        let s = self.shared.services.get(service)?;
        Some(s.config.lock().map_or_else(|e| e.into_inner().clone(), |c| c.clone()))
    }

    /// Applies new limits to a running service without dropping any
    /// connection. The name and backlog cannot change (they belong to the
    /// listener); other fields apply from the next event on.
    pub fn reconfigure(&self, service: usize, mut config: ServiceConfig) -> Result<(), String> {
        let s = self.shared.services.get(service).ok_or_else(|| format!("no service {service}"))?;
        config.validate()?;
        config.name = s.name.clone();
        let config = Arc::new(config);
        s.max_connections.store(config.max_connections, Ordering::Relaxed);
        match s.config.lock() {
            Ok(mut c) => *c = config.clone(),
            Err(e) => *e.into_inner() = config.clone(),
        }
        for i in 0..self.loops() {
            self.post(i, Command::Reconfigure(service, config.clone()));
        }
        Ok(())
    }

    /// Stops accepting new connections on every service; open ones go on.
    pub fn stop_accepting(&self) {
        for i in 0..self.loops() {
            self.post(i, Command::StopAccepting);
        }
    }

    /// Begins a graceful shutdown: stop accepting, call every handler's
    /// `on_shutdown`, flush queued output and close; connections still open
    /// after `grace` are closed. Returns at once; [`Reactor::join`] waits.
    ///
    /// [`Reactor::join`]: crate::Reactor::join
    pub fn shutdown(&self, grace: Duration) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        for i in 0..self.loops() {
            self.post(i, Command::Shutdown(deadline));
        }
    }

    /// True once [`ReactorHandle::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::SeqCst)
    }
}
