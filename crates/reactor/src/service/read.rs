//! The read path of a service on a loop: the transport reads, the codec
//! decodes, the handler gets each message; EOF; a lingering connection's
//! input discarded.

use super::{guarded, ServiceLoop};
use crate::codec::Codec;
use crate::context::{ConnContext, Context};
use crate::core::LoopCore;
use crate::handler::{CloseReason, Handler};
use crate::lifecycle::ReadGate;
use crate::stats::Counters;
use crate::transport::{Socket, Transport};
use bytes::{Buf, BytesMut};
use std::io;

/// Reads into a connection's own buffer grow by at least this much.
const MIN_READ_CHUNK: usize = 16 << 10;
/// Reads made while discarding a lingering connection's input, per event.
const LINGER_READS: usize = 16;

/// The next message at the front of `buf`; `eof`: the peer closed.
#[allow(clippy::type_complexity)]
#[inline(always)]
fn next_message<'a, C: Codec>(
    codec: &mut C,
    conn: &mut C::Conn,
    buf: &'a mut BytesMut,
    eof: bool,
) -> Result<Option<(C::Item<'a>, usize)>, C::DecodeError> {
    if eof {
        codec.decode_eof(conn, buf)
    } else {
        codec.decode(conn, buf)
    }
}

impl<H: Handler, T: Transport> ServiceLoop<H, T> {
    /// Reads and hands the input, decoded, to the handler.
    pub(super) fn read(&mut self, core: &mut LoopCore, slot: usize, read_closed: bool) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        match c.io.life.read_gate() {
            ReadGate::Hold => return,
            ReadGate::Discard => return self.discard(core, slot),
            ReadGate::Read => {}
        }
        self.handler.tune_codec(&mut self.codec);
        let mut budget = self.config.read_budget;
        loop {
            let Some(c) = self.conns.get_mut(slot) else { return };
            let from_scratch = c.io.input.is_empty();
            let mut buf = if from_scratch {
                core.take_scratch()
            } else {
                let mut b = std::mem::take(&mut c.io.input);
                // Grow with what arrives, not with what a header announces.
                b.reserve(b.len().clamp(MIN_READ_CHUNK, 1 << 20));
                b
            };
            let got = self.transport.read(&mut c.transport, &mut Socket::new(&c.io.stream), &mut buf);
            let (wire, drained, eof) = match got {
                // A read that took nothing from the socket and saw no EOF
                // found it empty, whatever the transport says.
                Ok(r) => (r.wire, (r.drained && !read_closed) || (r.wire == 0 && !r.eof), r.eof),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => (0, false, false),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (0, true, false),
                // The transport found the peer's bytes invalid (a broken
                // TLS record): a protocol error, counted and logged as one.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    c.io.request_close(CloseReason::Protocol(e.to_string()), true);
                    (0, true, false)
                }
                Err(e) => {
                    c.io.request_close(CloseReason::Io(e), true);
                    (0, true, false)
                }
            };
            if wire > 0 {
                Counters::add(&core.counters(self.id).bytes_in, wire as u64);
                c.io.last_read_ms = core.now_ms();
                budget = budget.saturating_sub(wire);
            }
            if eof {
                c.io.life.peer_closed();
            }
            if self.transport.pending(&c.transport) > 0 && c.io.mark_dirty() {
                // The transport has something of its own to say (a handshake
                // message): flush it even if the handler writes nothing.
                core.mark_dirty(c.io.id);
            }
            if !buf.is_empty() || eof {
                self.decode(core, slot, &mut buf, eof);
            }
            let Some(c) = self.conns.get_mut(slot) else {
                if from_scratch {
                    core.put_scratch(buf);
                }
                return;
            };
            // Keep only what the codec left; the scratch buffer stays the loop's.
            if from_scratch {
                if !buf.is_empty() {
                    c.io.input = BytesMut::with_capacity(buf.len().max(MIN_READ_CHUNK / 4));
                    c.io.input.extend_from_slice(&buf);
                }
                core.put_scratch(buf);
            } else if !buf.is_empty() {
                c.io.input = buf;
            }
            if c.io.input.len() > self.config.max_read_buffer {
                let held = c.io.input.len();
                let why = format!(
                    "{held} bytes of undecoded input, over the {} byte limit",
                    self.config.max_read_buffer
                );
                c.io.request_close(CloseReason::Protocol(why), true);
            }
            if eof {
                self.end_of_input(core, slot);
                break;
            }
            if drained || c.io.close_request.is_some() || !c.io.life.is_open() {
                break;
            }
            self.settle(core, slot);
            let Some(c) = self.conns.get_mut(slot) else { return };
            if c.io.life.is_paused() {
                c.io.life.leave_unread();
                break;
            }
            if budget == 0 {
                c.io.life.leave_unread();
                self.schedule_read(core, slot);
                break;
            }
        }
        self.settle(core, slot);
    }

    /// Decodes `buf` and hands each message to the handler; `eof`: the peer
    /// closed, so what is left must decode whole.
    fn decode(&mut self, core: &mut LoopCore, slot: usize, buf: &mut BytesMut, eof: bool) {
        let Some(c) = self.conns.get_mut(slot) else { return };
        let Some(state) = c.state.as_mut() else { return };
        let (handler, codec, id) = (&mut self.handler, &mut self.codec, c.io.id);
        let mut messages = 0u64;
        let r = guarded(|| {
            let mut cx = Context::new(core, Some(&mut c.io), id);
            loop {
                // Matched as a temporary, so that nothing borrowing `buf` is
                // left to drop when it is advanced.
                let (msg, used) = match next_message(codec, &mut c.codec, buf, eof) {
                    Ok(Some(decoded)) => decoded,
                    Ok(None) => break,
                    Err(e) => {
                        handler.on_decode_error(
                            &mut ConnContext::new(&mut cx, codec, &mut c.codec),
                            state,
                            &e,
                        );
                        cx.close_with(CloseReason::Protocol(e.to_string()));
                        break;
                    }
                };
                messages += 1;
                handler.on_message(&mut ConnContext::new(&mut cx, codec, &mut c.codec), state, msg);
                buf.advance(used);
                if !cx.is_open() {
                    break;
                }
            }
            handler.on_read(&mut ConnContext::new(&mut cx, codec, &mut c.codec), state);
        });
        if let Err(msg) = r {
            c.io.request_close(CloseReason::Panic(msg), true);
        }
        Counters::add(&core.counters(self.id).frames_in, messages);
    }

    /// The peer sent EOF and its input is decoded: ask the handler.
    fn end_of_input(&mut self, core: &mut LoopCore, slot: usize) {
        let mut close = true;
        self.callback(core, slot, |h, cx, s| close = h.on_eof(cx, s));
        if let (true, Some(c)) = (close, self.conns.get_mut(slot)) {
            c.io.request_close(CloseReason::PeerClosed, false);
        }
    }

    /// Reads and drops input of a connection that already sent its FIN.
    pub(super) fn discard(&mut self, core: &mut LoopCore, slot: usize) {
        let mut scratch = core.take_scratch();
        for _ in 0..LINGER_READS {
            let Some(c) = self.conns.get_mut(slot) else { break };
            scratch.clear();
            match Socket::new(&c.io.stream).read_into(&mut scratch) {
                Ok(0) => {
                    let step = c.io.life.linger_done();
                    self.apply(core, slot, step, CloseReason::PeerClosed);
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    core.put_scratch(scratch);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let step = c.io.life.linger_done();
                    self.apply(core, slot, step, CloseReason::Io(e));
                    break;
                }
            }
        }
        core.put_scratch(scratch);
        if self.conns.contains(slot) {
            self.schedule_read(core, slot);
        }
    }
}
