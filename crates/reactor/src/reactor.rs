//! Building and starting a reactor: services, listeners, loop threads.

use crate::acceptor::Acceptor;
use crate::config::ServiceConfig;
use crate::core::LoopCore;
use crate::error::BuildError;
use crate::event_loop::{EventLoop, WAKER_TOKEN};
use crate::handle::{Mailbox, ReactorHandle, ServiceShared, Shared};
use crate::id::{ServiceId, MAX_LOOPS, MAX_SERVICES};
use crate::listener::bind_listener;
use crate::service::{Driver, ServiceLoop};
use crate::stack::IntoService;
use crate::stats::Counters;
use mio::Poll;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type MakeDriver = Arc<dyn Fn(usize, ServiceId, Arc<ServiceConfig>) -> Box<dyn Driver> + Send + Sync>;

/// Default capacity of each loop's mailbox for other threads.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 64 << 10;

enum ListenerSource {
    /// The resolved addresses, or why they could not be.
    Addr(io::Result<Vec<SocketAddr>>),
    Bound(TcpListener),
}

struct ServiceSpec {
    config: ServiceConfig,
    listener: ListenerSource,
    make: MakeDriver,
}

/// Configures a [`Reactor`]: how many loops, and the services they serve.
/// Nothing is checked, bound or started before [`ReactorBuilder::build`],
/// which reports every problem as a [`BuildError`].
pub struct ReactorBuilder {
    threads: usize,
    mailbox_capacity: usize,
    services: Vec<ServiceSpec>,
}

impl Default for ReactorBuilder {
    fn default() -> Self {
        // One loop per core, up to what a reactor runs (a default, not a
        // caller's number: `threads(n)` is checked, never clamped).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_LOOPS);
        ReactorBuilder { threads, mailbox_capacity: DEFAULT_MAILBOX_CAPACITY, services: Vec::new() }
    }
}

impl ReactorBuilder {
    /// Number of event-loop threads (default: the number of cores). 0 or more
    /// than 256 is a [`BuildError::Threads`].
    ///
    /// **Thread:** any; nothing starts before `build`.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// How many messages from other threads ([`ReactorHandle::send`] and the
    /// like) each loop's mailbox holds before refusing more with
    /// [`SendError::Full`](crate::SendError::Full) (default 65,536). 0 is a
    /// [`BuildError::MailboxCapacity`].
    ///
    /// **Thread:** any; nothing starts before `build`.
    pub fn mailbox_capacity(mut self, n: usize) -> Self {
        self.mailbox_capacity = n;
        self
    }

    /// Adds a service listening on `addr` (resolved here; a resolver error
    /// is reported by `build`). `factory(loop_index)` makes the service's
    /// parts for each loop (a [`Service`](crate::Service): handler, codec,
    /// transport); state shared between loops goes behind an `Arc` the
    /// factory clones. Services are numbered in the order added
    /// ([`ServiceId::from_index`]).
    ///
    /// **Thread:** any; nothing is bound before `build`.
    pub fn service<S, F>(mut self, config: ServiceConfig, addr: impl ToSocketAddrs, factory: F) -> Self
    where
        S: IntoService,
        F: Fn(usize) -> S + Send + Sync + 'static,
    {
        let addrs = addr.to_socket_addrs().map(|a| a.collect());
        self.services.push(ServiceSpec {
            config,
            listener: ListenerSource::Addr(addrs),
            make: driver_maker(factory),
        });
        self
    }

    /// Adds a service on a listener bound elsewhere: inherited from a
    /// previous process, or passed by systemd socket activation. It is set
    /// non-blocking here.
    ///
    /// **Thread:** any; nothing is used before `build`.
    pub fn service_on<S, F>(mut self, config: ServiceConfig, listener: TcpListener, factory: F) -> Self
    where
        S: IntoService,
        F: Fn(usize) -> S + Send + Sync + 'static,
    {
        self.services.push(ServiceSpec {
            config,
            listener: ListenerSource::Bound(listener),
            make: driver_maker(factory),
        });
        self
    }

    /// Checks every config, binds every listener and starts the loops.
    ///
    /// **Thread:** any; it starts the loop threads and returns.
    pub fn build(self) -> Result<Reactor, BuildError> {
        if self.threads == 0 || self.threads > MAX_LOOPS {
            return Err(BuildError::Threads { requested: self.threads, max: MAX_LOOPS });
        }
        if self.mailbox_capacity == 0 {
            return Err(BuildError::MailboxCapacity);
        }
        if self.services.len() > MAX_SERVICES {
            return Err(BuildError::TooManyServices { max: MAX_SERVICES });
        }
        let threads = self.threads;
        let mut listeners = Vec::new();
        let mut shared_services = Vec::new();
        for spec in &self.services {
            let service = spec.config.name.clone();
            spec.config.validate().map_err(|error| BuildError::Config { service: service.clone(), error })?;
            let listener = match &spec.listener {
                ListenerSource::Addr(Err(e)) => {
                    let error = io::Error::new(e.kind(), e.to_string());
                    return Err(BuildError::Resolve { service, error });
                }
                ListenerSource::Addr(Ok(addrs)) => bind_first(&service, addrs, spec.config.backlog)?,
                ListenerSource::Bound(l) => {
                    let prepared = l.try_clone().and_then(|l| l.set_nonblocking(true).map(|()| l));
                    prepared.map_err(|error| BuildError::Listen {
                        service: service.clone(),
                        addr: None,
                        error,
                    })?
                }
            };
            let local_addr =
                listener.local_addr().map_err(|error| BuildError::Listen { service, addr: None, error })?;
            shared_services.push(ServiceShared {
                name: spec.config.name.clone(),
                sockets: AtomicUsize::new(0),
                max_connections: AtomicUsize::new(spec.config.max_connections),
                config: Mutex::new(Arc::new(spec.config.clone())),
                counters: (0..threads).map(|_| Counters::default()).collect(),
                local_addr,
            });
            listeners.push(listener);
        }
        let mut polls = Vec::new();
        let mut mailboxes = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..threads {
            let poll = Poll::new().map_err(BuildError::Io)?;
            let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN).map_err(BuildError::Io)?;
            let (internal, internal_rx) = crossbeam_channel::unbounded();
            let (external, external_rx) = crossbeam_channel::bounded(self.mailbox_capacity);
            mailboxes.push(Mailbox {
                internal,
                external,
                waker,
                woken: AtomicBool::new(false),
                refused: AtomicU64::new(0),
            });
            receivers.push((internal_rx, external_rx));
            polls.push(poll);
        }
        let shared =
            Arc::new(Shared { mailboxes, services: shared_services, shutting_down: AtomicBool::new(false) });
        let mut loops = Vec::new();
        let epoch = Instant::now();
        for (index, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            let registry = poll.registry().try_clone().map_err(BuildError::Io)?;
            let core = LoopCore::new(index, registry, shared.clone(), epoch);
            let mut acceptors = Vec::new();
            for (service, listener) in listeners.iter().enumerate() {
                // Service i's listener lives on loop i mod threads.
                if service % threads == index {
                    let name = self.services[service].config.name.clone();
                    let l = listener.try_clone().map_err(|error| BuildError::Listen {
                        service: name.clone(),
                        addr: None,
                        error,
                    })?;
                    let l = mio::net::TcpListener::from_std(l);
                    let id = ServiceId::from_index(service);
                    acceptors.push(Acceptor::new(&core, id, l, name).map_err(BuildError::Io)?);
                }
            }
            loops.push((poll, core, acceptors, rx));
        }
        drop(listeners);
        let mut joins = Vec::new();
        for (index, (poll, core, acceptors, (internal, external))) in loops.into_iter().enumerate() {
            let makers: Vec<(MakeDriver, Arc<ServiceConfig>)> =
                self.services.iter().map(|s| (s.make.clone(), Arc::new(s.config.clone()))).collect();
            let spawned = std::thread::Builder::new().name(format!("reactor-{index}")).spawn(move || {
                let drivers = makers
                    .iter()
                    .enumerate()
                    .map(|(i, (make, config))| make(index, ServiceId::from_index(i), config.clone()))
                    .collect();
                EventLoop {
                    poll,
                    core,
                    drivers,
                    acceptors,
                    internal,
                    external,
                    accept_pending: Vec::new(),
                    spare_ids: Vec::new(),
                }
                .run();
            });
            joins.push(spawned.map_err(BuildError::Io)?);
        }
        Ok(Reactor { handle: ReactorHandle::from_shared(shared), threads: joins })
    }
}

fn driver_maker<S, F>(factory: F) -> MakeDriver
where
    S: IntoService,
    F: Fn(usize) -> S + Send + Sync + 'static,
{
    Arc::new(move |loop_index, service, config| {
        let parts = factory(loop_index).into_service();
        Box::new(ServiceLoop::new(service, parts.handler, parts.codec, parts.transport, config))
    })
}

fn bind_first(service: &str, addrs: &[SocketAddr], backlog: i32) -> Result<TcpListener, BuildError> {
    let mut last = BuildError::Resolve {
        service: service.to_string(),
        error: io::Error::new(io::ErrorKind::InvalidInput, "the address resolved to nothing"),
    };
    for &addr in addrs {
        match bind_listener(addr, backlog) {
            Ok(l) => return Ok(l),
            Err(error) => last = BuildError::Listen { service: service.to_string(), addr: Some(addr), error },
        }
    }
    Err(last)
}

/// A running reactor: its loop threads and a handle to them.
///
/// Dropping it does not stop the loops; call [`Reactor::shutdown`], or
/// [`ReactorHandle::shutdown`] and then [`Reactor::join`].
pub struct Reactor {
    handle: ReactorHandle,
    threads: Vec<JoinHandle<()>>,
}

impl Reactor {
    /// Starts configuring a reactor.
    ///
    /// **Thread:** any.
    pub fn builder() -> ReactorBuilder {
        ReactorBuilder::default()
    }

    /// A handle for other threads.
    ///
    /// **Thread:** any; the handle itself is `Send + Sync` and cloneable.
    pub fn handle(&self) -> ReactorHandle {
        self.handle.clone()
    }

    /// The address `service` listens on.
    ///
    /// **Thread:** any.
    pub fn local_addr(&self, service: ServiceId) -> Option<SocketAddr> {
        self.handle.local_addr(service)
    }

    /// Waits until every loop has exited (after a shutdown).
    ///
    /// **Thread:** any but a loop thread (a loop joining itself would wait forever); blocks until every loop has exited.
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                log::error!("an event loop thread panicked");
            }
        }
    }

    /// Graceful shutdown: stop accepting, let handlers say goodbye, flush,
    /// close what is left after `grace`, and join every thread.
    ///
    /// **Thread:** any but a loop thread; blocks until every loop has exited (within `grace` plus the last turn).
    pub fn shutdown(self, grace: Duration) {
        self.handle.shutdown(grace);
        self.join();
    }
}
