//! Accepting connections: one loop owns each listener and hands accepted
//! sockets round-robin to every loop (muduo's acceptor model). One listening
//! fd per service keeps socket hand-over to a new process and systemd socket
//! activation simple, and round-robin spreads connections evenly.

use crate::config::ServiceConfig;
use crate::core::{Command, LoopCore};
use crate::id::{ConnId, ServiceId};
use crate::service::Driver;
use crate::stats::Counters;
use crate::timer::TimerKind;
use mio::net::TcpListener;
use mio::Interest;
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Connections accepted per readiness event before the loop serves others.
const ACCEPT_BUDGET: usize = 256;
const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

pub(crate) struct Acceptor {
    pub service: ServiceId,
    listener: TcpListener,
    token: mio::Token,
    next_loop: usize,
    backoff: Duration,
    /// Waiting for an AcceptRetry timer after an accept error.
    paused: bool,
    /// A spare descriptor, closed on EMFILE to accept-and-close the
    /// connection at the head of the backlog instead of leaving it hanging.
    spare: Option<File>,
    last_warning: Option<Instant>,
    suppressed: u64,
    name: String,
}

/// Errors that concern one incoming connection, not the listener: accept
/// the next one at once (swindon-rs/tk-http#25).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::PermissionDenied
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EPROTO | libc::ENOPROTOOPT | libc::EHOSTDOWN | libc::ENONET | libc::EHOSTUNREACH)
            | Some(libc::EOPNOTSUPP | libc::ENETUNREACH | libc::ENETDOWN)
    )
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

fn apply_socket_options(stream: &mio::net::TcpStream, config: &ServiceConfig) -> io::Result<()> {
    let sock = socket2::SockRef::from(stream);
    if config.nodelay {
        sock.set_nodelay(true)?;
    }
    if let Some(n) = config.send_buffer_size {
        sock.set_send_buffer_size(n)?;
    }
    if let Some(n) = config.recv_buffer_size {
        sock.set_recv_buffer_size(n)?;
    }
    Ok(())
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

impl Acceptor {
    pub(crate) fn new(
        core: &LoopCore,
        service: ServiceId,
        mut listener: TcpListener,
        name: String,
    ) -> io::Result<Acceptor> {
        let token = ConnId::listener_token(core.index(), service);
        core.registry().register(&mut listener, token, Interest::READABLE)?;
        Ok(Acceptor {
            service,
            listener,
            token,
            next_loop: core.index(),
            backoff: MIN_BACKOFF,
            paused: false,
            spare: open_spare(),
            last_warning: None,
            suppressed: 0,
            name,
        })
    }

    pub(crate) fn token(&self) -> mio::Token {
        self.token
    }

    pub(crate) fn deregister(&mut self, core: &LoopCore) {
        let _ = core.registry().deregister(&mut self.listener);
    }

    /// Called when an AcceptRetry timer fires.
    pub(crate) fn resume(&mut self) {
        self.paused = false;
        if self.spare.is_none() {
            // Lost when another thread took the freed descriptor first.
            self.spare = open_spare();
        }
    }

    /// Accepts up to the budget. Returns true if the budget ran out with
    /// connections possibly still waiting (the loop must come back soon:
    /// edge-triggered polling will not report them again).
    pub(crate) fn accept(&mut self, core: &mut LoopCore, drivers: &mut [Box<dyn Driver>]) -> bool {
        if self.paused {
            return false;
        }
        let Some(config) = core.shared().service(self.service).map(|s| s.config()) else {
            return false;
        };
        for _ in 0..ACCEPT_BUDGET {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    self.backoff = MIN_BACKOFF;
                    let Some(svc) = core.shared().service(self.service) else { return false };
                    let max = svc.max_connections.load(Ordering::Relaxed);
                    if svc.sockets.fetch_add(1, Ordering::Relaxed) >= max {
                        svc.sockets.fetch_sub(1, Ordering::Relaxed);
                        Counters::add(&core.counters(self.service).rejected, 1);
                        log::debug!("{}: refusing {peer}: at max_connections ({max})", self.name);
                        if let Some(msg) = &config.reject_with {
                            // Best effort: a fresh socket's buffer takes a short message whole.
                            let _ = (&stream).write(msg);
                        }
                        drop(stream);
                        continue;
                    }
                    Counters::add(&core.counters(self.service).accepted, 1);
                    if let Err(e) = apply_socket_options(&stream, &config) {
                        log::debug!("{}: socket options on {peer}: {e}", self.name);
                    }
                    let target = self.next_loop % core.loops().max(1);
                    self.next_loop = target + 1;
                    if target == core.index() {
                        if let Some(d) = drivers.get_mut(self.service.index()) {
                            d.adopt(core, stream, peer);
                        }
                    } else {
                        core.push_remote(target, Command::Adopt { service: self.service, stream, peer });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    self.on_error(core, e);
                    return false;
                }
            }
        }
        true
    }

    /// A listener-level accept error: count it, warn at most once a second,
    /// and back off (10 ms doubling to 1 s) rather than spin, keeping the
    /// listener (pitfalls: tokio#3529, bun#32705, rust-payjoin#1608).
    fn on_error(&mut self, core: &mut LoopCore, e: io::Error) {
        Counters::add(&core.counters(self.service).accept_errors, 1);
        if is_out_of_descriptors(&e) {
            if let Some(spare) = self.spare.take() {
                drop(spare);
                if let Ok((stream, _)) = self.listener.accept() {
                    drop(stream); // the peer sees a close, not a hang
                }
                self.spare = open_spare();
            }
        }
        let now = core.now();
        if self.last_warning.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            let extra = if self.suppressed > 0 {
                format!(" ({} more since last report)", self.suppressed)
            } else {
                String::new()
            };
            log::warn!("{}: accept failed: {e}{extra}; pausing accepts for {:?}", self.name, self.backoff);
            self.last_warning = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        self.paused = true;
        core.set_timer(now + self.backoff, ConnId::from_token(self.token), TimerKind::AcceptRetry);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}
