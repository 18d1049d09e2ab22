//! One service on one loop: its handler and its slab of connections, and
//! the read, write, backpressure and close logic for them.

use crate::config::{ServiceConfig, SlowConsumerPolicy};
use crate::connection::{flag, ConnIo, Connection};
use crate::context::Context;
use crate::core::{LoopCore, SCRATCH_SIZE};
use crate::handler::{CloseReason, Handler};
use crate::id::{ConnId, GEN_MASK, MAX_SLOTS};
use crate::stats::Counters;
use crate::timer::TimerKind;
use bytes::{Bytes, BytesMut};
use mio::net::TcpStream;
use mio::Interest;
use slab::Slab;
use std::any::Any;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Reads into a connection's own buffer grow by at least this much.
const MIN_READ_CHUNK: usize = 16 << 10;
/// Reads made while discarding a lingering connection's input, per event.
const LINGER_READS: usize = 16;

/// A service as one loop drives it; the loop holds them as trait objects so
/// that services with different handler types share one loop.
pub(crate) trait Driver {
    fn adopt(&mut self, core: &mut LoopCore, stream: TcpStream, peer: SocketAddr);
    /// `read_closed`: the peer's FIN (or an error) is already known, so a
    /// short read must not be taken for an empty socket.
    fn ready(&mut self, core: &mut LoopCore, id: ConnId, readable: bool, writable: bool, read_closed: bool);
    fn resume_read(&mut self, core: &mut LoopCore, id: ConnId);
    fn deliver(&mut self, core: &mut LoopCore, id: ConnId, data: &Bytes);
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

pub(crate) struct ServiceLoop<H: Handler> {
    index: usize,
    handler: H,
    conns: Slab<Connection<H::Conn>>,
    config: Arc<ServiceConfig>,
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

/// What one read from a connection gave.
enum Read {
    /// `n` bytes, and the socket may hold more.
    More(usize),
    /// `n` bytes (maybe 0), and the socket is empty for now.
    Drained(usize),
    /// The peer closed its side.
    Eof,
}

/// Reads once into the spare capacity of `buf`, without zeroing it first.
fn recv_into(stream: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let n = socket2::SockRef::from(stream).recv(buf.spare_capacity_mut())?;
    // SAFETY: recv initialised the first n bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

impl<H: Handler> ServiceLoop<H> {
    pub(crate) fn new(index: usize, handler: H, config: Arc<ServiceConfig>) -> ServiceLoop<H> {
        ServiceLoop { index, handler, conns: Slab::new(), config, next_gen: 1 }
    }

    /// The slot of `id` if it still names a live connection of this service.
    fn slot_of(&self, id: ConnId) -> Option<usize> {
        match self.conns.get(id.slot()) {
            Some(c) if c.io.id == id => Some(id.slot()),
            _ => None,
        }
    }

    fn counters<'c>(&self, core: &'c LoopCore) -> &'c Counters {
        core.counters(self.index)
    }

    /// Applies whatever a callback asked for or caused: an abort, output
    /// over the limits, a close once flushed.
    fn settle(&mut self, core: &mut LoopCore, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.io.has(flag::ABORT) {
            let reason = c.io.take_reason();
            return self.close_now(core, slot, reason);
        }
        let queued = c.io.out.len();
        if queued > self.config.max_write_queue {
            return self.close_now(core, slot, CloseReason::SlowConsumer { queued });
        }
        if queued > self.config.write_high_watermark && !c.io.has(flag::HIGH) {
            c.io.flags |= flag::HIGH;
            match self.config.slow_consumer {
                SlowConsumerPolicy::PauseReading => c.io.flags |= flag::PAUSED,
                SlowConsumerPolicy::Disconnect => {
                    return self.close_now(core, slot, CloseReason::SlowConsumer { queued })
                }
            }
        }
        if c.io.has(flag::CLOSING) && !c.io.has(flag::LINGER) {
            if !c.io.has(flag::CLOSE_TIMER) {
                // Bounds the whole close: a peer that never reads cannot hold it open.
                c.io.flags |= flag::CLOSE_TIMER;
                core.timers.insert(core.now + self.config.linger, c.io.id, TimerKind::Linger);
            }
            if c.io.out.is_empty() {
                self.start_linger(core, slot);
            }
        }
    }

    /// Output is flushed: send FIN and wait for the peer's, discarding input.
    fn start_linger(&mut self, core: &mut LoopCore, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        c.io.flags |= flag::LINGER;
        if c.io.has(flag::EOF) || c.io.stream.shutdown(Shutdown::Write).is_err() {
            let reason = c.io.take_reason();
            return self.close_now(core, slot, reason);
        }
        // Input may already be waiting: edge-triggered polling will not say so again.
        self.schedule_read(core, slot);
    }

    fn schedule_read(&mut self, core: &mut LoopCore, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot) {
            if !c.io.has(flag::READ_LISTED) {
                c.io.flags |= flag::READ_LISTED;
                core.pending_reads.push(c.io.id);
            }
        }
    }

    fn close_now(&mut self, core: &mut LoopCore, slot: usize, reason: CloseReason) {
        let Some(mut c) = self.conns.try_remove(slot) else { return };
        let id = c.io.id;
        if let Err(e) = core.registry.deregister(&mut c.io.stream) {
            log::debug!("{}: deregister {id}: {e}", self.config.name);
        }
        c.io.out.clear(&mut core.pool);
        drop(c.io); // closes the socket
        let counters = self.counters(core);
        Counters::add(&counters.closed, 1);
        match reason {
            CloseReason::SlowConsumer { .. } => Counters::add(&counters.slow_consumers, 1),
            CloseReason::IdleTimeout => Counters::add(&counters.idle_timeouts, 1),
            CloseReason::Protocol(_) => Counters::add(&counters.protocol_errors, 1),
            CloseReason::Panic(_) => Counters::add(&counters.panics, 1),
            _ => {}
        }
        core.shared.services[self.index].open.fetch_sub(1, Ordering::Relaxed);
        if reason.is_abnormal() {
            log::warn!("{}: connection {id} closed: {reason}", self.config.name);
        } else {
            log::debug!("{}: connection {id} closed: {reason}", self.config.name);
        }
        let handler = &mut self.handler;
        let state = c.state;
        if let Err(msg) = guarded(|| handler.on_close(&mut Context::new(core, None, id), state, &reason)) {
            Counters::add(&self.counters(core).panics, 1);
            log::error!("{}: on_close of {id} panicked: {msg}", self.config.name);
        }
    }

    /// Runs `f` as a handler callback on a live connection, then settles it.
    fn callback(
        &mut self,
        core: &mut LoopCore,
        slot: usize,
        f: impl FnOnce(&mut H, &mut Context<'_>, &mut H::Conn),
    ) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        let handler = &mut self.handler;
        let id = c.io.id;
        let r = guarded(|| f(handler, &mut Context::new(core, Some(&mut c.io), id), &mut c.state));
        if let Err(msg) = r {
            c.io.request_abort(CloseReason::Panic(msg));
        }
        self.settle(core, slot);
    }

    /// Reads and hands input to the handler. `short_is_drained`: a read that
    /// does not fill the buffer means the socket is empty (see `Read`).
    fn read(&mut self, core: &mut LoopCore, slot: usize, short_is_drained: bool) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.io.has(flag::LINGER) {
            return self.discard(core, slot);
        }
        if c.io.has(flag::PAUSED | flag::CLOSING | flag::ABORT | flag::EOF) {
            c.io.flags |= flag::READ_READY;
            return;
        }
        c.io.flags &= !flag::READ_READY;
        let id = c.io.id;
        let mut budget = self.config.read_budget;
        let mut eof = false;
        loop {
            let Some(c) = self.conns.get_mut(slot) else { return };
            let from_scratch = c.io.input.is_empty();
            let mut buf = if from_scratch {
                let mut s = std::mem::take(&mut core.scratch);
                s.reserve(SCRATCH_SIZE);
                s
            } else {
                let mut b = std::mem::take(&mut c.io.input);
                // Grow with what arrives, not with what a header announces.
                b.reserve(b.len().clamp(MIN_READ_CHUNK, 1 << 20));
                b
            };
            let room = buf.capacity() - buf.len();
            let outcome = match recv_into(&c.io.stream, &mut buf) {
                Ok(0) => Read::Eof,
                // A read that did not fill the buffer emptied the socket:
                // edge-triggered polling reports whatever arrives next, so
                // the usual extra read that would only say EAGAIN is saved.
                Ok(n) if n < room && short_is_drained => Read::Drained(n),
                Ok(n) => Read::More(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Read::More(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Read::Drained(0),
                Err(e) => {
                    c.io.request_abort(CloseReason::Io(e));
                    Read::Drained(0)
                }
            };
            let n = match outcome {
                Read::More(n) | Read::Drained(n) => n,
                Read::Eof => 0,
            };
            if n > 0 {
                Counters::add(&core.counters(self.index).bytes_in, n as u64);
                c.io.last_read_ms = core.now_ms();
                budget = budget.saturating_sub(n);
                let handler = &mut self.handler;
                let r = guarded(|| {
                    handler.on_data(&mut Context::new(core, Some(&mut c.io), id), &mut c.state, &mut buf)
                });
                if let Err(msg) = r {
                    c.io.request_abort(CloseReason::Panic(msg));
                }
            }
            // Keep only what the handler left; the scratch buffer stays the loop's.
            if from_scratch {
                if !buf.is_empty() {
                    c.io.input = BytesMut::with_capacity(buf.len().max(MIN_READ_CHUNK / 4));
                    c.io.input.extend_from_slice(&buf);
                }
                buf.clear();
                core.scratch = buf;
            } else if !buf.is_empty() {
                c.io.input = buf;
            }
            if c.io.input.len() > self.config.max_read_buffer {
                let held = c.io.input.len();
                c.io.request_abort(CloseReason::Protocol(format!(
                    "{held} bytes of unconsumed input, over the {} byte limit",
                    self.config.max_read_buffer
                )));
            }
            if matches!(outcome, Read::Eof) {
                eof = true;
                break;
            }
            if matches!(outcome, Read::Drained(_)) || c.io.has(flag::CLOSING | flag::ABORT) {
                break;
            }
            self.settle(core, slot);
            let Some(c) = self.conns.get_mut(slot) else { return };
            if c.io.has(flag::PAUSED) {
                c.io.flags |= flag::READ_READY;
                break;
            }
            if budget == 0 {
                c.io.flags |= flag::READ_READY;
                self.schedule_read(core, slot);
                break;
            }
        }
        if eof {
            if let Some(c) = self.conns.get_mut(slot) {
                c.io.flags |= flag::EOF;
                let mut input = std::mem::take(&mut c.io.input);
                let mut close = true;
                self.callback(core, slot, |h, cx, s| close = h.on_eof(cx, s, &mut input));
                if let (true, Some(c)) = (close, self.conns.get_mut(slot)) {
                    c.io.request_close(CloseReason::PeerClosed);
                }
            }
        }
        self.settle(core, slot);
    }

    /// Reads and drops input of a connection that already sent its FIN.
    fn discard(&mut self, core: &mut LoopCore, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        for _ in 0..LINGER_READS {
            core.scratch.clear();
            core.scratch.reserve(SCRATCH_SIZE);
            match recv_into(&c.io.stream, &mut core.scratch) {
                Ok(0) => {
                    let reason = c.io.take_reason();
                    return self.close_now(core, slot, reason);
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    let reason = c.io.take_reason();
                    return self.close_now(core, slot, reason);
                }
            }
        }
        core.scratch.clear();
        self.schedule_read(core, slot);
    }

    fn flush_slot(&mut self, core: &mut LoopCore, slot: usize) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        c.io.flags &= !flag::DIRTY;
        if c.io.has(flag::LINGER) || c.io.out.is_empty() {
            return self.settle(core, slot);
        }
        match c.io.out.write_to(&mut c.io.stream, &mut core.pool) {
            Ok(n) => Counters::add(&self.counters(core).bytes_out, n as u64),
            Err(e) => return self.close_now(core, slot, CloseReason::Io(e)),
        }
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.io.has(flag::HIGH) && c.io.out.len() <= self.config.write_low_watermark {
            c.io.flags &= !flag::HIGH;
            let resume = c.io.has(flag::PAUSED);
            c.io.flags &= !flag::PAUSED;
            if resume && c.io.has(flag::READ_READY) {
                self.schedule_read(core, slot);
            }
            self.callback(core, slot, |h, cx, s| h.on_drained(cx, s));
        }
        self.settle(core, slot);
    }
}

impl<H: Handler> Driver for ServiceLoop<H> {
    fn adopt(&mut self, core: &mut LoopCore, mut stream: TcpStream, peer: SocketAddr) {
        let open = &core.shared.services[self.index].open;
        let slot = self.conns.vacant_key();
        if core.shutdown_deadline.is_some() || slot >= MAX_SLOTS {
            open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let generation = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1) & GEN_MASK;
        let id = ConnId::new(core.index, self.index, generation, slot);
        if let Err(e) =
            core.registry.register(&mut stream, id.token(), Interest::READABLE | Interest::WRITABLE)
        {
            log::error!("{}: cannot register connection from {peer}: {e}", self.config.name);
            open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let mut io = ConnIo::new(stream, id, core.now_ms());
        let handler = &mut self.handler;
        match guarded(|| handler.on_open(&mut Context::new(core, Some(&mut io), id), peer)) {
            Ok(state) => {
                self.conns.insert(Connection { io, state });
            }
            Err(msg) => {
                let _ = core.registry.deregister(&mut io.stream);
                io.out.clear(&mut core.pool);
                core.shared.services[self.index].open.fetch_sub(1, Ordering::Relaxed);
                Counters::add(&self.counters(core).panics, 1);
                Counters::add(&self.counters(core).closed, 1);
                log::error!("{}: on_open for {peer} panicked: {msg}", self.config.name);
                return;
            }
        }
        log::debug!("{}: connection {id} from {peer}", self.config.name);
        if let Some(idle) = self.config.idle_timeout {
            core.timers.insert(core.now + idle, id, TimerKind::Idle);
        }
        self.settle(core, slot);
    }

    fn ready(&mut self, core: &mut LoopCore, id: ConnId, readable: bool, writable: bool, read_closed: bool) {
        let Some(slot) = self.slot_of(id) else { return };
        if writable {
            self.flush_slot(core, slot);
        }
        if readable {
            self.read(core, slot, !read_closed);
        }
    }

    fn resume_read(&mut self, core: &mut LoopCore, id: ConnId) {
        let Some(slot) = self.slot_of(id) else { return };
        if let Some(c) = self.conns.get_mut(slot) {
            c.io.flags &= !flag::READ_LISTED;
        }
        self.read(core, slot, false);
    }

    fn deliver(&mut self, core: &mut LoopCore, id: ConnId, data: &Bytes) {
        let Some(slot) = self.slot_of(id) else { return };
        let Some(c) = self.conns.get_mut(slot) else { return };
        if c.io.has(flag::ABORT | flag::LINGER) {
            return;
        }
        c.io.out.push(&mut core.pool, data);
        if !c.io.has(flag::DIRTY) {
            c.io.flags |= flag::DIRTY;
            core.dirty.push(id);
        }
        self.settle(core, slot);
    }

    fn close(&mut self, core: &mut LoopCore, id: ConnId) {
        let Some(slot) = self.slot_of(id) else { return };
        if let Some(c) = self.conns.get_mut(slot) {
            c.io.request_close(CloseReason::Local);
        }
        self.settle(core, slot);
    }

    fn notify(&mut self, core: &mut LoopCore, id: ConnId, token: u64) {
        let Some(slot) = self.slot_of(id) else { return };
        self.callback(core, slot, |h, cx, s| h.on_notify(cx, s, token));
    }

    fn notify_loop(&mut self, core: &mut LoopCore, token: u64) {
        let handler = &mut self.handler;
        let none = ConnId::none(core.index, self.index);
        if let Err(msg) = guarded(|| handler.on_loop_notify(&mut Context::new(core, None, none), token)) {
            Counters::add(&self.counters(core).panics, 1);
            log::error!("{}: on_loop_notify panicked: {msg}", self.config.name);
        }
    }

    fn timer(&mut self, core: &mut LoopCore, id: ConnId, kind: TimerKind) {
        let Some(slot) = self.slot_of(id) else { return };
        match kind {
            TimerKind::User(token) => self.callback(core, slot, |h, cx, s| h.on_timer(cx, s, token)),
            TimerKind::Idle => {
                let Some(idle) = self.config.idle_timeout else { return };
                let Some(c) = self.conns.get(slot) else { return };
                let idle_ms = idle.as_millis() as u64;
                let silent_ms = core.now_ms().saturating_sub(c.io.last_read_ms);
                if silent_ms >= idle_ms {
                    self.close_now(core, slot, CloseReason::IdleTimeout);
                } else {
                    let at = core.now + std::time::Duration::from_millis(idle_ms - silent_ms);
                    core.timers.insert(at, id, TimerKind::Idle);
                }
            }
            TimerKind::Linger => {
                if let Some(c) = self.conns.get_mut(slot) {
                    let reason = c.io.take_reason();
                    self.close_now(core, slot, reason);
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
            self.close_now(core, slot, CloseReason::Shutdown);
        }
    }

    fn reconfigure(&mut self, core: &mut LoopCore, config: Arc<ServiceConfig>) {
        let newly_idle = self.config.idle_timeout.is_none();
        self.config = config;
        if let (true, Some(idle)) = (newly_idle, self.config.idle_timeout) {
            for (_, c) in self.conns.iter() {
                core.timers.insert(core.now + idle, c.io.id, TimerKind::Idle);
            }
        }
    }

    fn len(&self) -> usize {
        self.conns.len()
    }
}
