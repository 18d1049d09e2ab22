//! One service on one loop: its handler, codec and transport, its slab of
//! connections, and the thin driver that moves each connection through its
//! [`Lifecycle`](crate::lifecycle::Lifecycle): reads through the transport
//! and the codec to the handler, writes back, applies backpressure and
//! closes. The decisions are the lifecycle's; this file does what they say.

use crate::codec::{Codec, Output};
use crate::config::ServiceConfig;
use crate::connection::{ConnIo, Connection};
use crate::context::{ConnContext, Context};
use crate::core::LoopCore;
use crate::handler::{CloseReason, Handler};
use crate::id::{ConnId, ServiceId, GEN_MASK, MAX_SLOTS};
use crate::lifecycle::{Backpressure, Limits, Phase, Step};
use crate::stats::Counters;
use crate::timer::TimerKind;
use crate::transport::{Socket, Transport, Unsent};
use bytes::Bytes;
use mio::net::TcpStream;
use mio::Interest;
use slab::Slab;
use std::any::Any;
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

mod read;

/// A service as one loop drives it; the loop holds them as trait objects so
/// that services with different handler types share one loop.
pub(crate) trait Driver {
    fn adopt(&mut self, core: &mut LoopCore, stream: TcpStream, peer: SocketAddr);
    /// `read_closed`: the peer's FIN (or an error) is already known, so a
    /// short read must not be taken for an empty socket.
    fn ready(&mut self, core: &mut LoopCore, id: ConnId, readable: bool, writable: bool, read_closed: bool);
    fn resume_read(&mut self, core: &mut LoopCore, id: ConnId);
    /// Encodes `payload` for each of `ids` (connections of this service on
    /// this loop; gone ones are skipped) and queues it for writing.
    fn deliver(&mut self, core: &mut LoopCore, ids: &[ConnId], payload: &Bytes);
    fn close(&mut self, core: &mut LoopCore, id: ConnId);
    fn notify(&mut self, core: &mut LoopCore, id: ConnId, token: u64);
    fn notify_loop(&mut self, core: &mut LoopCore, token: u64);
    fn timer(&mut self, core: &mut LoopCore, id: ConnId, kind: TimerKind);
    fn flush(&mut self, core: &mut LoopCore, id: ConnId);
    fn shutdown(&mut self, core: &mut LoopCore);
    fn close_all(&mut self, core: &mut LoopCore);
    fn reconfigure(&mut self, core: &mut LoopCore, config: Arc<ServiceConfig>);
    fn len(&self) -> usize;
}

type Entry<H, T> =
    Connection<<T as Transport>::Conn, <<H as Handler>::Codec as Codec>::Conn, Option<<H as Handler>::Conn>>;

pub(crate) struct ServiceLoop<H: Handler, T: Transport> {
    id: ServiceId,
    handler: H,
    codec: H::Codec,
    transport: T,
    /// The handler's state is taken out (`None`) when the close is decided.
    conns: Slab<Entry<H, T>>,
    config: Arc<ServiceConfig>,
    limits: Limits,
    next_gen: u32,
}

/// Runs a handler callback, turning a panic into its message.
fn guarded<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p))
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

fn limits(config: &ServiceConfig) -> Limits {
    Limits {
        high: config.write_high_watermark,
        low: config.write_low_watermark,
        max: config.max_write_queue,
        policy: config.slow_consumer,
    }
}

impl<H: Handler, T: Transport> ServiceLoop<H, T> {
    pub(crate) fn new(
        id: ServiceId,
        handler: H,
        codec: H::Codec,
        transport: T,
        config: Arc<ServiceConfig>,
    ) -> ServiceLoop<H, T> {
        let limits = limits(&config);
        ServiceLoop { id, handler, codec, transport, conns: Slab::new(), config, limits, next_gen: 1 }
    }

    /// The slot of `id` if it still names a live connection of this service.
    fn slot_of(&self, id: ConnId) -> Option<usize> {
        match self.conns.get(id.slot()) {
            Some(c) if c.io.id == id => Some(id.slot()),
            _ => None,
        }
    }

    /// Bytes waiting to be written: queued by the handler, held by the transport.
    fn queued(&self, c: &Entry<H, T>) -> usize {
        c.io.out.len() + self.transport.pending(&c.transport)
    }

    /// Runs `f` as a handler callback on an open connection, then settles it.
    fn callback(
        &mut self,
        core: &mut LoopCore,
        slot: usize,
        f: impl FnOnce(&mut H, &mut ConnContext<'_, '_, H::Codec>, &mut H::Conn),
    ) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        let Some(state) = c.state.as_mut() else { return };
        let (handler, codec, id) = (&mut self.handler, &mut self.codec, c.io.id);
        let r = guarded(|| {
            let mut cx = Context::new(core, Some(&mut c.io), id);
            f(handler, &mut ConnContext::new(&mut cx, codec, &mut c.codec), state)
        });
        if let Err(msg) = r {
            c.io.request_close(CloseReason::Panic(msg), true);
        }
        self.settle(core, slot);
    }

    /// Applies what a callback asked for or caused: a close, output over the
    /// limits, a close whose output is now written.
    fn settle(&mut self, core: &mut LoopCore, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        if let Some(req) = c.io.close_request.take() {
            let step = c.io.life.close(req.abort);
            if !self.apply(core, slot, step, req.reason) {
                return;
            }
        }
        let Some(c) = self.conns.get(slot) else { return };
        let queued = self.queued(c);
        let Some(c) = self.conns.get_mut(slot) else { return };
        match c.io.life.output(queued, &self.limits) {
            Backpressure::Ok | Backpressure::Paused => {}
            Backpressure::SlowConsumer => {
                let step = c.io.life.close(true);
                self.apply(core, slot, step, CloseReason::SlowConsumer { queued });
                return;
            }
        }
        if queued == 0 && c.io.life.phase() == Phase::Closing {
            let step = c.io.life.flushed();
            self.apply(core, slot, step, CloseReason::Local);
        }
    }

    /// Does what a lifecycle step says. Returns false if the connection is
    /// gone.
    fn apply(&mut self, core: &mut LoopCore, slot: usize, step: Step, reason: CloseReason) -> bool {
        if step.decided {
            self.decided(core, slot, reason);
        }
        let Some(c) = self.conns.get(slot) else { return false };
        if step.arm_timer {
            core.set_timer(core.now() + self.config.linger, c.io.id, TimerKind::Linger);
            if self.queued(c) > 0 {
                self.mark_dirty(core, slot);
            }
        }
        if !self.conns.contains(slot) {
            return false;
        }
        if step.close_transport {
            let c = &mut self.conns[slot];
            self.transport.close(&mut c.transport);
            if self.transport.pending(&c.transport) > 0 {
                self.mark_dirty(core, slot);
            } else {
                let step = c.io.life.flushed();
                return self.apply(core, slot, step, CloseReason::Local);
            }
        }
        if step.send_fin {
            let c = &mut self.conns[slot];
            if c.io.stream.shutdown(Shutdown::Write).is_err() {
                let step = c.io.life.fin_failed();
                return self.apply(core, slot, step, CloseReason::Local);
            }
            // Input may be waiting already: edge-triggered polling will not say so again.
            self.schedule_read(core, slot);
        }
        if step.remove {
            self.remove(core, slot, !step.decided);
            return false;
        }
        true
    }

    /// The close is decided: count and log it, and let the handler drop the
    /// connection (`on_close`), whatever flushing and lingering follow.
    fn decided(&mut self, core: &mut LoopCore, slot: usize, reason: CloseReason) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        let id = c.io.id;
        let counters = core.counters(self.id);
        Counters::add(&counters.closed, 1);
        match reason {
            CloseReason::SlowConsumer { .. } => Counters::add(&counters.slow_consumers, 1),
            CloseReason::IdleTimeout => Counters::add(&counters.idle_timeouts, 1),
            CloseReason::HandshakeTimeout => Counters::add(&counters.handshake_timeouts, 1),
            CloseReason::Protocol(_) => Counters::add(&counters.protocol_errors, 1),
            CloseReason::Panic(_) => Counters::add(&counters.panics, 1),
            _ => {}
        }
        if c.io.life.phase() != Phase::Closed {
            Counters::add(&counters.closing, 1);
        }
        if reason.is_abnormal() {
            log::warn!("{}: connection {id} closed: {reason}", self.config.name);
        } else {
            log::debug!("{}: connection {id} closed: {reason}", self.config.name);
        }
        let Some(state) = c.state.take() else { return };
        let handler = &mut self.handler;
        if let Err(msg) = guarded(|| handler.on_close(&mut Context::new(core, None, id), state, &reason)) {
            Counters::add(&core.counters(self.id).panics, 1);
            log::error!("{}: on_close of {id} panicked: {msg}", self.config.name);
        }
    }

    /// Closes the socket and frees the slot. `was_closing`: the close was
    /// decided earlier (counted in the closing gauge).
    fn remove(&mut self, core: &mut LoopCore, slot: usize, was_closing: bool) {
        let Some(mut c) = self.conns.try_remove(slot) else { return };
        if let Err(e) = core.registry().deregister(&mut c.io.stream) {
            log::debug!("{}: deregister {}: {e}", self.config.name, c.io.id);
        }
        c.io.out.clear(core.pool());
        if was_closing {
            Counters::sub(&core.counters(self.id).closing, 1);
        }
        if let Some(s) = core.shared().service(self.id) {
            s.sockets.fetch_sub(1, Ordering::Relaxed);
        }
        // Dropping `c` closes the socket.
    }

    fn mark_dirty(&mut self, core: &mut LoopCore, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot) {
            if c.io.mark_dirty() {
                core.mark_dirty(c.io.id);
            }
        }
    }

    fn schedule_read(&mut self, core: &mut LoopCore, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot) {
            if c.io.list_read() {
                core.schedule_read(c.io.id);
            }
        }
    }

    fn flush_slot(&mut self, core: &mut LoopCore, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        c.io.clear_dirty();
        if matches!(c.io.life.phase(), Phase::Lingering | Phase::Closed) {
            return;
        }
        let before = c.io.out.len() + self.transport.pending(&c.transport);
        if before == 0 && c.io.life.is_open() && c.io.close_request.is_none() {
            // A writable edge with nothing to write (the usual one): nothing
            // can have changed.
            return;
        }
        if before > 0 {
            let written = self.transport.write(
                &mut c.transport,
                &mut Unsent::new(&mut c.io.out, core.pool()),
                &mut Socket::new(&c.io.stream),
            );
            match written {
                Ok(n) => Counters::add(&core.counters(self.id).bytes_out, n as u64),
                Err(e) => {
                    let step = c.io.life.reset();
                    self.apply(core, slot, step, CloseReason::Io(e));
                    return;
                }
            }
        }
        let Some(c) = self.conns.get(slot) else { return };
        let queued = self.queued(c);
        let Some(c) = self.conns.get_mut(slot) else { return };
        if let Some(resume) = c.io.life.written(queued, &self.limits) {
            if resume {
                self.schedule_read(core, slot);
            }
            self.callback(core, slot, |h, cx, s| h.on_drained(cx, s));
        }
        self.settle(core, slot);
    }
}

impl<H: Handler, T: Transport> Driver for ServiceLoop<H, T> {
    fn adopt(&mut self, core: &mut LoopCore, mut stream: TcpStream, peer: SocketAddr) {
        let slot = self.conns.vacant_key();
        let refuse = |core: &mut LoopCore| {
            if let Some(s) = core.shared().service(self.id) {
                s.sockets.fetch_sub(1, Ordering::Relaxed);
            }
        };
        if core.shutdown_deadline().is_some() || slot >= MAX_SLOTS {
            return refuse(core);
        }
        let transport = match self.transport.open(peer) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("{}: transport refused {peer}: {e}", self.config.name);
                return refuse(core);
            }
        };
        let generation = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1) & GEN_MASK;
        let id = ConnId::new(core.index(), self.id, generation, slot);
        if let Err(e) =
            core.registry().register(&mut stream, id.token(), Interest::READABLE | Interest::WRITABLE)
        {
            log::error!("{}: cannot register connection from {peer}: {e}", self.config.name);
            return refuse(core);
        }
        let mut io = ConnIo::new(stream, id, core.now_ms());
        let mut codec_state = self.codec.open();
        let (handler, codec) = (&mut self.handler, &mut self.codec);
        let opened = guarded(|| {
            let mut cx = Context::new(core, Some(&mut io), id);
            handler.on_open(&mut ConnContext::new(&mut cx, codec, &mut codec_state), peer)
        });
        match opened {
            Ok(state) => {
                self.conns.insert(Connection { io, transport, codec: codec_state, state: Some(state) });
            }
            Err(msg) => {
                let _ = core.registry().deregister(&mut io.stream);
                io.out.clear(core.pool());
                Counters::add(&core.counters(self.id).panics, 1);
                Counters::add(&core.counters(self.id).closed, 1);
                log::error!("{}: on_open for {peer} panicked: {msg}", self.config.name);
                return refuse(core);
            }
        }
        log::debug!("{}: connection {id} from {peer}", self.config.name);
        if let Some(idle) = self.config.idle_timeout {
            core.set_timer(core.now() + idle, id, TimerKind::Idle);
        }
        if let Some(limit) = self.config.handshake_timeout {
            core.set_timer(core.now() + limit, id, TimerKind::Handshake);
        }
        if self.conns.get(slot).is_some_and(|c| self.queued(c) > 0) {
            self.mark_dirty(core, slot);
        }
        self.settle(core, slot);
    }

    fn ready(&mut self, core: &mut LoopCore, id: ConnId, readable: bool, writable: bool, read_closed: bool) {
        let Some(slot) = self.slot_of(id) else { return };
        if writable {
            self.flush_slot(core, slot);
        }
        if readable {
            self.read(core, slot, read_closed);
        }
    }

    fn resume_read(&mut self, core: &mut LoopCore, id: ConnId) {
        let Some(slot) = self.slot_of(id) else { return };
        if let Some(c) = self.conns.get_mut(slot) {
            c.io.unlist_read();
        }
        self.read(core, slot, true);
    }

    fn deliver(&mut self, core: &mut LoopCore, ids: &[ConnId], payload: &Bytes) {
        // Counted once per call: a room's fan-out is one call for all its
        // members on this loop.
        let (mut sent, mut refused) = (0, 0);
        let shared = if ids.len() > 1 { self.codec.encode_shared(payload) } else { None };
        for &id in ids {
            let Some(slot) = self.slot_of(id) else { continue };
            let Some(c) = self.conns.get_mut(slot) else { continue };
            if !c.io.life.accepts_output() {
                continue;
            }
            let out = &mut Output::new(&mut c.io.out, core.pool());
            let encoded = match &shared {
                Some(frame) => {
                    out.push(frame);
                    Ok(())
                }
                None => self.codec.encode_payload(&mut c.codec, payload, out),
            };
            match encoded {
                Ok(()) => {
                    sent += 1;
                    if c.io.mark_dirty() {
                        core.mark_dirty(id);
                    }
                    // Settling does nothing for an open connection below its
                    // watermarks with no close pending: the common case of a
                    // fan-out, kept to this check.
                    let bound = self.limits.high.min(self.limits.max);
                    let queued = c.io.out.len() + self.transport.pending(&c.transport);
                    if c.io.close_request.is_some() || queued > bound {
                        self.settle(core, slot);
                    }
                }
                Err(why) => {
                    refused += 1;
                    log::debug!("{}: a message for {id} was refused: {why}", self.config.name);
                }
            }
        }
        let counters = core.counters(self.id);
        Counters::add(&counters.frames_out, sent);
        Counters::add(&counters.refused, refused);
    }

    fn close(&mut self, core: &mut LoopCore, id: ConnId) {
        let Some(slot) = self.slot_of(id) else { return };
        if let Some(c) = self.conns.get_mut(slot) {
            c.io.request_close(CloseReason::Local, false);
        }
        self.settle(core, slot);
    }

    fn notify(&mut self, core: &mut LoopCore, id: ConnId, token: u64) {
        let Some(slot) = self.slot_of(id) else { return };
        self.callback(core, slot, |h, cx, s| h.on_notify(cx, s, token));
    }

    fn notify_loop(&mut self, core: &mut LoopCore, token: u64) {
        let handler = &mut self.handler;
        let none = ConnId::none(core.index(), self.id);
        if let Err(msg) = guarded(|| handler.on_loop_notify(&mut Context::new(core, None, none), token)) {
            Counters::add(&core.counters(self.id).panics, 1);
            log::error!("{}: on_loop_notify panicked: {msg}", self.config.name);
        }
    }

    fn timer(&mut self, core: &mut LoopCore, id: ConnId, kind: TimerKind) {
        let Some(slot) = self.slot_of(id) else { return };
        match kind {
            TimerKind::User(token) => self.callback(core, slot, |h, cx, s| h.on_timer(cx, s, token)),
            TimerKind::Idle => {
                let Some(idle) = self.config.idle_timeout else { return };
                let Some(c) = self.conns.get_mut(slot) else { return };
                if !c.io.life.is_open() {
                    return;
                }
                let idle_ms = idle.as_millis() as u64;
                let silent_ms = core.now_ms().saturating_sub(c.io.last_read_ms);
                if silent_ms >= idle_ms {
                    let step = c.io.life.close(true);
                    self.apply(core, slot, step, CloseReason::IdleTimeout);
                } else {
                    let at = core.now() + std::time::Duration::from_millis(idle_ms - silent_ms);
                    core.set_timer(at, id, TimerKind::Idle);
                }
            }
            TimerKind::Handshake => {
                let Some(c) = self.conns.get_mut(slot) else { return };
                if c.io.life.is_open() && self.transport.is_handshaking(&c.transport) {
                    let step = c.io.life.close(true);
                    self.apply(core, slot, step, CloseReason::HandshakeTimeout);
                }
            }
            TimerKind::Linger => {
                if let Some(c) = self.conns.get_mut(slot) {
                    let step = c.io.life.close_timer_fired();
                    self.apply(core, slot, step, CloseReason::Local);
                }
            }
            TimerKind::AcceptRetry | TimerKind::ShutdownDeadline => {}
        }
    }

    fn flush(&mut self, core: &mut LoopCore, id: ConnId) {
        if let Some(slot) = self.slot_of(id) {
            self.flush_slot(core, slot);
        }
    }

    fn shutdown(&mut self, core: &mut LoopCore) {
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            self.callback(core, slot, |h, cx, s| {
                h.on_shutdown(cx, s);
                cx.close_with(CloseReason::Shutdown);
            });
        }
    }

    fn close_all(&mut self, core: &mut LoopCore) {
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            if let Some(c) = self.conns.get_mut(slot) {
                let step = c.io.life.close(true);
                self.apply(core, slot, step, CloseReason::Shutdown);
            }
        }
    }

    fn reconfigure(&mut self, core: &mut LoopCore, config: Arc<ServiceConfig>) {
        let newly_idle = self.config.idle_timeout.is_none();
        self.config = config;
        self.limits = limits(&self.config);
        if let (true, Some(idle)) = (newly_idle, self.config.idle_timeout) {
            for (_, c) in self.conns.iter() {
                core.set_timer(core.now() + idle, c.io.id, TimerKind::Idle);
            }
        }
    }

    fn len(&self) -> usize {
        self.conns.len()
    }
}
