//! Reaching the loops from any thread: per-loop mailboxes woken at most once
//! per batch, and the public [`ReactorHandle`].

use crate::config::ServiceConfig;
use crate::core::Command;
use crate::error::{ReconfigureError, SendError};
use crate::id::{ConnId, ServiceId};
use crate::stats::{Counters, ServiceStats};
use bytes::Bytes;
use crossbeam_channel::{Sender, TrySendError};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A loop's inbox, in two parts:
///
/// - `internal`, unbounded: batches from other loops, accepted sockets, and
///   control commands (reconfigure, shutdown) that must never be refused;
///   what loops send each other is bounded by their own turns.
/// - `external`, bounded: messages other threads send through a
///   [`ReactorHandle`]. When it is full they are refused at once
///   ([`SendError::Full`]), never queued without bound and never blocking.
///
/// `woken` makes senders call the (syscall-costly) waker only when the loop
/// has not been woken since it last drained.
pub(crate) struct Mailbox {
    pub internal: Sender<Command>,
    pub external: Sender<Command>,
    pub waker: mio::Waker,
    pub woken: AtomicBool,
    /// Messages refused because `external` was full.
    pub refused: AtomicU64,
}

impl Mailbox {
    /// Posts to the internal queue; false if the loop has exited.
    pub(crate) fn post(&self, cmd: Command) -> bool {
        if self.internal.send(cmd).is_err() {
            return false;
        }
        self.wake();
        true
    }

    /// Posts to the bounded queue for other threads.
    pub(crate) fn try_post(&self, cmd: Command) -> Result<(), SendError> {
        match self.external.try_send(cmd) {
            Ok(()) => {
                self.wake();
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(SendError::Full)
            }
            Err(TrySendError::Disconnected(_)) => Err(SendError::Closed),
        }
    }

    fn wake(&self) {
        // SeqCst pairs with the loop's store(false) before it drains: either
        // this swap sees false and wakes it, or the loop drains after our send.
        if !self.woken.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake event loop: {e}");
            }
        }
    }
}

/// What every loop and handle share about one service.
pub(crate) struct ServiceShared {
    pub name: String,
    /// Sockets open, closing ones included: what `max_connections` bounds.
    pub sockets: AtomicUsize,
    pub max_connections: AtomicUsize,
    pub config: Mutex<Arc<ServiceConfig>>,
    /// One entry per loop.
    pub counters: Vec<Counters>,
    pub local_addr: SocketAddr,
}

impl ServiceShared {
    pub(crate) fn config(&self) -> Arc<ServiceConfig> {
        self.config.lock().map_or_else(|e| e.into_inner().clone(), |c| c.clone())
    }
}

pub(crate) struct Shared {
    pub mailboxes: Vec<Mailbox>,
    pub services: Vec<ServiceShared>,
    pub shutting_down: AtomicBool,
}

impl Shared {
    pub(crate) fn loops(&self) -> usize {
        self.mailboxes.len()
    }

    pub(crate) fn mailbox(&self, index: usize) -> &Mailbox {
        &self.mailboxes[index]
    }

    pub(crate) fn service(&self, id: ServiceId) -> Option<&ServiceShared> {
        self.services.get(id.index())
    }
}

/// A cloneable handle to a running reactor: send to any connection,
/// broadcast, close, notify, read counters, reconfigure, shut down.
///
/// **Thread safety:** every method may be called from any thread, loop
/// threads included, at any time; none blocks. Messages sent through one
/// handle from one thread to one connection arrive in the order sent;
/// messages from different threads or loops to one connection interleave in
/// no promised order (see the crate docs, "Ordering").
///
/// **When a loop is behind:** the messages of [`send`](Self::send),
/// [`broadcast`](Self::broadcast), [`close`](Self::close),
/// [`notify`](Self::notify) and [`notify_loop`](Self::notify_loop) go into a
/// bounded mailbox per loop
/// ([`ReactorBuilder::mailbox_capacity`](crate::ReactorBuilder::mailbox_capacity));
/// when it is full they are refused with [`SendError::Full`], nothing is
/// queued, and the refusal is counted ([`ReactorHandle::mailbox_refusals`]).
/// Control ([`reconfigure`](Self::reconfigure),
/// [`stop_accepting`](Self::stop_accepting), [`shutdown`](Self::shutdown))
/// is never refused.
#[derive(Clone)]
pub struct ReactorHandle {
    shared: Arc<Shared>,
}

impl ReactorHandle {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> ReactorHandle {
        ReactorHandle { shared }
    }

    fn try_post(&self, loop_index: usize, cmd: Command) -> Result<(), SendError> {
        self.shared.mailboxes.get(loop_index).ok_or(SendError::Closed)?.try_post(cmd)
    }

    fn post_control(&self, cmd: impl Fn() -> Command) {
        for m in &self.shared.mailboxes {
            m.post(cmd());
        }
    }

    /// Number of event loops. Safe from any thread.
    pub fn loops(&self) -> usize {
        self.shared.loops()
    }

    /// Queues the message `payload` for connection `id`; its service's codec
    /// encodes it (a frame codec adds the header). A stale id (its
    /// connection closed) is dropped by the loop. Safe from any thread; see
    /// the type's docs for a full mailbox.
    pub fn send(&self, id: ConnId, payload: Bytes) -> Result<(), SendError> {
        self.try_post(id.loop_index(), Command::Send(id, payload))
    }

    /// Queues one message for many connections, with one mailbox entry (and
    /// at most one wake-up) per loop involved; the payload is shared, and
    /// encoded once per service on each loop where the codec allows it
    /// ([`Codec::encode_shared`](crate::Codec::encode_shared)), else by
    /// each recipient's codec into that connection's output.
    /// All or nothing per loop: if a loop refuses (its mailbox is full),
    /// its recipients get nothing, the other loops' still do, and the error
    /// is returned. Safe from any thread.
    pub fn broadcast(&self, ids: &[ConnId], payload: &Bytes) -> Result<(), SendError> {
        let mut per_loop: Vec<Vec<ConnId>> = vec![Vec::new(); self.loops()];
        for &id in ids {
            if let Some(v) = per_loop.get_mut(id.loop_index()) {
                v.push(id);
            }
        }
        let mut result = Ok(());
        for (i, ids) in per_loop.into_iter().enumerate() {
            if !ids.is_empty() {
                if let Err(e) = self.try_post(i, Command::Broadcast(ids, payload.clone())) {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Closes connection `id` after its queued output is written. Safe from
    /// any thread.
    pub fn close(&self, id: ConnId) -> Result<(), SendError> {
        self.try_post(id.loop_index(), Command::Close(id))
    }

    /// Calls the handler's `on_notify(token)` for connection `id`, on its
    /// loop. Safe from any thread.
    pub fn notify(&self, id: ConnId, token: u64) -> Result<(), SendError> {
        self.try_post(id.loop_index(), Command::Notify(id, token))
    }

    /// Calls `on_loop_notify(token)` on `service`'s handler on loop
    /// `loop_index`: work for a loop rather than for one connection (say,
    /// "deliver what is new in this room to your members"). Each call runs
    /// once; callers that post often may coalesce themselves. Safe from any
    /// thread.
    pub fn notify_loop(&self, loop_index: usize, service: ServiceId, token: u64) -> Result<(), SendError> {
        self.try_post(loop_index, Command::NotifyLoop(loop_index, service, token))
    }

    /// Messages refused so far because a loop's mailbox was full, over all
    /// loops. Safe from any thread.
    pub fn mailbox_refusals(&self) -> u64 {
        self.shared.mailboxes.iter().map(|m| m.refused.load(Ordering::Relaxed)).sum()
    }

    /// The services, in registration order. Safe from any thread.
    pub fn services(&self) -> Vec<ServiceId> {
        (0..self.shared.services.len()).map(ServiceId::from_index).collect()
    }

    /// The service called `name`. Safe from any thread.
    pub fn service_id(&self, name: &str) -> Option<ServiceId> {
        self.shared.services.iter().position(|s| s.name == name).map(ServiceId::from_index)
    }

    /// The address `service` listens on. Safe from any thread.
    pub fn local_addr(&self, service: ServiceId) -> Option<SocketAddr> {
        self.shared.service(service).map(|s| s.local_addr)
    }

    /// Counters of one service, summed over all loops (each loop's are
    /// read as they are: a snapshot, not a transaction). Safe from any
    /// thread.
    pub fn stats(&self, service: ServiceId) -> Option<ServiceStats> {
        let s = self.shared.service(service)?;
        Some(ServiceStats::sum(&s.name, s.sockets.load(Ordering::Relaxed) as u64, s.counters.iter()))
    }

    /// Counters of every service, in registration order. Safe from any
    /// thread.
    pub fn all_stats(&self) -> Vec<ServiceStats> {
        self.services().into_iter().filter_map(|i| self.stats(i)).collect()
    }

    /// The config a service runs with now. Safe from any thread.
    pub fn config(&self, service: ServiceId) -> Option<Arc<ServiceConfig>> {
        Some(self.shared.service(service)?.config())
    }

    /// Applies new limits to a running service without dropping any
    /// connection. The name and backlog cannot change (they belong to the
    /// listener); other fields apply on each loop from its next turn.
    /// Safe from any thread; never refused for a full mailbox.
    pub fn reconfigure(&self, service: ServiceId, mut config: ServiceConfig) -> Result<(), ReconfigureError> {
        let s = self.shared.service(service).ok_or(ReconfigureError::UnknownService(service))?;
        config.validate().map_err(ReconfigureError::Invalid)?;
        config.name = s.name.clone();
        let config = Arc::new(config);
        s.max_connections.store(config.max_connections, Ordering::Relaxed);
        match s.config.lock() {
            Ok(mut c) => *c = config.clone(),
            Err(e) => *e.into_inner() = config.clone(),
        }
        self.post_control(|| Command::Reconfigure(service, config.clone()));
        Ok(())
    }

    /// Stops accepting new connections on every service; open ones go on.
    /// Safe from any thread.
    pub fn stop_accepting(&self) {
        self.post_control(|| Command::StopAccepting);
    }

    /// Begins a graceful shutdown: stop accepting, call every handler's
    /// `on_shutdown`, then close each connection the usual way (flush, FIN,
    /// linger); connections still there after `grace` are closed at once.
    /// Returns at once; [`Reactor::join`] waits. Safe from any thread (a
    /// signal-handling thread, say).
    ///
    /// [`Reactor::join`]: crate::Reactor::join
    pub fn shutdown(&self, grace: Duration) {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + grace;
        self.post_control(|| Command::Shutdown(deadline));
    }

    /// True once [`ReactorHandle::shutdown`] was called. Safe from any
    /// thread.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutting_down.load(Ordering::SeqCst)
    }
}
