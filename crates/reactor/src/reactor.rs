//! Building and starting a reactor: services, listeners, loop threads.

use crate::acceptor::Acceptor;
use crate::config::ServiceConfig;
use crate::core::{LoopCore, SCRATCH_SIZE};
use crate::event_loop::{EventLoop, WAKER_TOKEN};
use crate::handle::{Mailbox, ReactorHandle, ServiceShared, Shared};
use crate::handler::Handler;
use crate::id::{MAX_LOOPS, MAX_SERVICES};
use crate::listener::bind_listener;
use crate::service::{Driver, ServiceLoop};
use crate::stats::Counters;
use crate::timer::TimerQueue;
use crate::write_queue::{BufferPool, POOL_BUFFER_SIZE, POOL_MAX_BYTES};
use bytes::BytesMut;
use mio::Poll;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

type MakeDriver = Arc<dyn Fn(usize, usize, Arc<ServiceConfig>) -> Box<dyn Driver> + Send + Sync>;

enum ListenerSource {
    Addr(Vec<SocketAddr>),
    Bound(TcpListener),
}

struct ServiceSpec {
    config: ServiceConfig,
    listener: ListenerSource,
    make: MakeDriver,
}

/// Configures a [`Reactor`]: how many loops, and the services they serve.
pub struct ReactorBuilder {
    threads: usize,
    services: Vec<ServiceSpec>,
}

impl Default for ReactorBuilder {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        ReactorBuilder { threads, services: Vec::new() }
    }
}

impl ReactorBuilder {
    /// Number of event-loop threads (default: the number of cores).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.clamp(1, MAX_LOOPS);
        self
    }

    /// Adds a service listening on `addr`. `factory(loop_index)` makes the
    /// handler each loop runs; state shared between loops goes behind an
    /// `Arc` the factory clones.
    pub fn service<H, F>(mut self, config: ServiceConfig, addr: impl ToSocketAddrs, factory: F) -> Self
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        let addrs = addr.to_socket_addrs().map(|a| a.collect()).unwrap_or_default();
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
    pub fn service_on<H, F>(mut self, config: ServiceConfig, listener: TcpListener, factory: F) -> Self
    where
        H: Handler,
        F: Fn(usize) -> H + Send + Sync + 'static,
    {
        self.services.push(ServiceSpec {
            config,
            listener: ListenerSource::Bound(listener),
            make: driver_maker(factory),
        });
        self
    }

    /// Binds every listener and starts the loops.
    pub fn build(self) -> io::Result<Reactor> {
        if self.services.len() > MAX_SERVICES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("at most {MAX_SERVICES} services"),
            ));
        }
        let threads = self.threads;
        let mut listeners = Vec::new();
        let mut shared_services = Vec::new();
        for spec in &self.services {
            let name = &spec.config.name;
            spec.config
                .validate()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("service {name}: {e}")))?;
            let listener = match &spec.listener {
                ListenerSource::Addr(addrs) => bind_first(addrs, spec.config.backlog)
                    .map_err(|e| io::Error::new(e.kind(), format!("service {name}: {e}")))?,
                ListenerSource::Bound(l) => {
                    let l = l.try_clone()?;
                    l.set_nonblocking(true)?;
                    l
                }
            };
            let local_addr = listener.local_addr()?;
            shared_services.push(ServiceShared {
                name: name.clone(),
                open: AtomicUsize::new(0),
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
            let poll = Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
            let (tx, rx) = crossbeam_channel::unbounded();
            mailboxes.push(Mailbox { tx, waker, woken: AtomicBool::new(false) });
            receivers.push(rx);
            polls.push(poll);
        }
        let shared =
            Arc::new(Shared { mailboxes, services: shared_services, shutting_down: AtomicBool::new(false) });
        let mut loops = Vec::new();
        let epoch = Instant::now();
        for (index, (poll, rx)) in polls.into_iter().zip(receivers).enumerate() {
            let core = LoopCore {
                index,
                registry: poll.registry().try_clone()?,
                shared: shared.clone(),
                timers: TimerQueue::default(),
                now: epoch,
                epoch,
                pool: BufferPool::new(POOL_BUFFER_SIZE, POOL_MAX_BYTES),
                scratch: BytesMut::with_capacity(SCRATCH_SIZE),
                outbox: Vec::new(),
                spare_outbox: Vec::new(),
                remote: (0..threads).map(|_| Vec::new()).collect(),
                dirty: Vec::new(),
                pending_reads: Vec::new(),
                shutdown_deadline: None,
            };
            let mut acceptors = Vec::new();
            for (service, listener) in listeners.iter().enumerate() {
                // Service i's listener lives on loop i mod threads.
                if service % threads == index {
                    let l = mio::net::TcpListener::from_std(listener.try_clone()?);
                    acceptors.push(Acceptor::new(
                        &core,
                        service,
                        l,
                        self.services[service].config.name.clone(),
                    )?);
                }
            }
            loops.push((poll, core, acceptors, rx));
        }
        drop(listeners);
        let mut joins = Vec::new();
        for (index, (poll, core, acceptors, rx)) in loops.into_iter().enumerate() {
            let makers: Vec<(MakeDriver, Arc<ServiceConfig>)> =
                self.services.iter().map(|s| (s.make.clone(), Arc::new(s.config.clone()))).collect();
            let join = std::thread::Builder::new().name(format!("reactor-{index}")).spawn(move || {
                let drivers = makers
                    .iter()
                    .enumerate()
                    .map(|(i, (make, config))| make(index, i, config.clone()))
                    .collect();
                EventLoop {
                    poll,
                    core,
                    drivers,
                    acceptors,
                    rx,
                    accept_pending: Vec::new(),
                    spare_ids: Vec::new(),
                }
                .run();
            })?;
            joins.push(join);
        }
        Ok(Reactor { handle: ReactorHandle::from_shared(shared), threads: joins })
    }
}

fn driver_maker<H, F>(factory: F) -> MakeDriver
where
    H: Handler,
    F: Fn(usize) -> H + Send + Sync + 'static,
{
    Arc::new(move |loop_index, service, config| {
        Box::new(ServiceLoop::new(service, factory(loop_index), config))
    })
}

fn bind_first(addrs: &[SocketAddr], backlog: i32) -> io::Result<TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing");
    for &addr in addrs {
        match bind_listener(addr, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => last = io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")),
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
    pub fn builder() -> ReactorBuilder {
        ReactorBuilder::default()
    }

    /// A handle for other threads.
    pub fn handle(&self) -> ReactorHandle {
        self.handle.clone()
    }

    /// The address service `service` (registration order) listens on.
    pub fn local_addr(&self, service: usize) -> Option<SocketAddr> {
        self.handle.local_addr(service)
    }

    /// Waits until every loop has exited (after a shutdown).
    pub fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                log::error!("an event loop thread panicked");
            }
        }
    }

    /// Graceful shutdown: stop accepting, let handlers say goodbye, flush,
    /// close what is left after `grace`, and join every thread.
    pub fn shutdown(self, grace: Duration) {
        self.handle.shutdown(grace);
        self.join();
    }
}
