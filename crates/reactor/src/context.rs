//! What a handler can do from inside a callback.
//!
//! [`Context`] is what every callback gets: the loop, its clock and timers,
//! and every connection by id. [`ConnContext`] adds the current
//! connection's codec: messages to it are encoded by the codec, so a
//! handler cannot write raw bytes into its own stream and corrupt it.

use crate::codec::{Codec, Encoder, Output};
use crate::connection::ConnIo;
use crate::core::{Command, LoopCore};
use crate::handle::ReactorHandle;
use crate::handler::CloseReason;
use crate::id::{ConnId, ServiceId};
use crate::stats::Counters;
use crate::timer::{TimerKey, TimerKind};
use bytes::Bytes;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

/// The loop a callback runs on, and the connection it is about (if any).
///
/// A context exists only inside a callback, on its loop's thread: nothing
/// here is for other threads (use a [`ReactorHandle`] there).
///
/// **Ordering.** Messages sent with [`send_to`](Context::send_to) or
/// [`broadcast`](Context::broadcast) go out in the order they were sent, per
/// recipient: those for connections of this loop (the current one
/// included) are encoded into their output after the callback returns;
/// those for another loop leave in one batch at the end of this loop's
/// turn. A connection's replies made through [`ConnContext::send`] during a
/// callback come before any message sent to it by id in that callback.
/// Messages from different loops or threads to one connection interleave in
/// no promised order.
pub struct Context<'a> {
    core: &'a mut LoopCore,
    io: Option<&'a mut ConnIo>,
    id: ConnId,
    /// Messages encoded for the current connection, added to the service's
    /// counter once, when the context goes.
    sent: u64,
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        if self.sent > 0 {
            Counters::add(&self.core.counters(self.id.service()).frames_out, self.sent);
        }
    }
}

impl<'a> Context<'a> {
    pub(crate) fn new(core: &'a mut LoopCore, io: Option<&'a mut ConnIo>, id: ConnId) -> Context<'a> {
        Context { core, io, id, sent: 0 }
    }

    /// The current connection's id: keep it to reach this connection later,
    /// from any thread. In [`Handler::on_close`] it is the id of the
    /// connection being closed (to remove from registries); in
    /// [`Handler::on_loop_notify`] it names no connection.
    ///
    /// [`Handler::on_loop_notify`]: crate::Handler::on_loop_notify
    /// [`Handler::on_close`]: crate::Handler::on_close
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    #[inline]
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The service this callback belongs to.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn service(&self) -> ServiceId {
        self.id.service()
    }

    /// Index of the event loop running this callback.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn loop_index(&self) -> usize {
        self.core.index()
    }

    /// The time this loop turn started (read once per turn).
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    #[inline]
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// A handle to reach any connection or the reactor from other threads.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn handle(&self) -> ReactorHandle {
        ReactorHandle::from_shared(self.core.shared().clone())
    }

    /// The current connection's peer address (a `getpeername` call: for
    /// the rare callers that need it, such as a per-address login limit).
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        self.io.as_ref().and_then(|io| io.stream.peer_addr().ok())
    }

    /// Bytes queued for the current connection and not yet written.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn queued(&self) -> usize {
        self.io.as_ref().map_or(0, |io| io.out.len())
    }

    /// True while the current connection is open and no close was asked for.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    #[inline]
    pub fn is_open(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.life.is_open() && io.close_request.is_none())
    }

    /// True once the reactor began a graceful shutdown.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn is_shutting_down(&self) -> bool {
        self.core.shutdown_deadline().is_some()
    }

    /// Sends the message `payload` to any connection, on any loop (this one
    /// included); that connection's codec encodes it (a frame codec adds the
    /// header). A stale id (its connection closed) is ignored. See the
    /// type's docs for ordering.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn send_to(&mut self, id: ConnId, payload: Bytes) {
        self.core.route(Command::Send(id, payload));
    }

    /// Sends one message to many connections: the payload is shared, and
    /// encoded once per service where the codec allows it
    /// ([`Codec::encode_shared`](crate::Codec::encode_shared)), else by each
    /// recipient's codec, into each connection's output (small frames are
    /// copied there, which costs less than sharing them). Returns how many
    /// were addressed.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn broadcast(&mut self, ids: &[ConnId], payload: &Bytes) -> usize {
        self.broadcast_filtered(ids, payload, None)
    }

    /// Like [`Context::broadcast`], skipping the current connection.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn broadcast_others(&mut self, ids: &[ConnId], payload: &Bytes) -> usize {
        self.broadcast_filtered(ids, payload, Some(self.id))
    }

    /// Like [`Context::broadcast`], skipping `skip` if it is among `ids`
    /// (a room's event that its sender, or its subject, does not get).
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn broadcast_except(&mut self, ids: &[ConnId], payload: &Bytes, skip: Option<ConnId>) -> usize {
        self.broadcast_filtered(ids, payload, skip)
    }

    fn broadcast_filtered(&mut self, ids: &[ConnId], payload: &Bytes, skip: Option<ConnId>) -> usize {
        let loops = self.core.loops();
        // Ids grouped by loop, so that each loop gets one command.
        let mut per_loop: Vec<Vec<ConnId>> = Vec::new();
        let mut sent = 0;
        for &id in ids {
            if Some(id) == skip || id.loop_index() >= loops {
                continue;
            }
            if per_loop.is_empty() {
                per_loop.resize_with(loops, Vec::new);
            }
            per_loop[id.loop_index()].push(id);
            sent += 1;
        }
        for ids in per_loop.into_iter().filter(|ids| !ids.is_empty()) {
            self.core.route(Command::Broadcast(ids, payload.clone()));
        }
        sent
    }

    /// Calls `on_notify(token)` for connection `id` on its own loop (after
    /// this callback, if it is on this loop).
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn notify(&mut self, id: ConnId, token: u64) {
        self.core.route(Command::Notify(id, token));
    }

    /// Calls `on_loop_notify(token)` on `service`'s handler on loop
    /// `loop_index` (this loop included: then it runs after this callback
    /// returns). Notifies to another loop leave at the end of this loop's
    /// turn, in order with this loop's other messages to that loop.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn notify_loop(&mut self, loop_index: usize, service: ServiceId, token: u64) {
        self.core.route(Command::NotifyLoop(loop_index, service, token));
    }

    /// Closes the current connection once its queued output is written.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    /// Closes the current connection once its queued output is written,
    /// recording `reason` (a `Protocol` reason is counted and logged as a
    /// protocol error). The first reason given wins. `on_close` runs when
    /// this callback returns.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn close_with(&mut self, reason: CloseReason) {
        if let Some(io) = self.io.as_deref_mut() {
            io.request_close(reason, false);
        }
    }

    /// Closes the current connection at once, dropping its queued output.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn abort(&mut self, reason: CloseReason) {
        if let Some(io) = self.io.as_deref_mut() {
            io.request_close(reason, true);
        }
    }

    /// Closes another connection (after its queued output is written).
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn close_conn(&mut self, id: ConnId) {
        if id == self.id {
            return self.close();
        }
        self.core.route(Command::Close(id));
    }

    /// Arms a timer for the current connection: `on_timer(token)` runs after
    /// `after`, unless the connection closed or the timer was cancelled.
    /// Without a current connection the timer never fires.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn set_timer(&mut self, after: Duration, token: u64) -> TimerKey {
        let deadline = self.core.now() + after;
        self.core.set_timer(deadline, self.id, TimerKind::User(token))
    }

    /// Cancels a timer armed with [`Context::set_timer`]. Cancelling one that
    /// fired or was cancelled already does nothing.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    pub fn cancel_timer(&mut self, key: TimerKey) {
        self.core.cancel_timer(key);
    }
}

/// A [`Context`] with the current connection's codec: the only way to write
/// to the current connection is to [`send`](ConnContext::send) a message
/// its codec encodes. Derefs to the [`Context`] for everything else.
///
/// A handler cannot write raw bytes into its own stream:
///
/// ```compile_fail
/// use reactor::{FramedContext};
/// fn corrupt(cx: &mut FramedContext<'_, '_>) {
///     cx.write(b"not a frame"); // no such method: replies go through the codec
/// }
/// ```
///
/// ```compile_fail
/// use reactor::{FramedContext};
/// fn corrupt(cx: &mut FramedContext<'_, '_>) {
///     cx.write_with(|buf| buf.extend_from_slice(b"not a frame"));
/// }
/// ```
pub struct ConnContext<'c, 'a, C: Codec> {
    cx: &'c mut Context<'a>,
    codec: &'c mut C,
    state: &'c mut C::Conn,
}

impl<'c, 'a, C: Codec> ConnContext<'c, 'a, C> {
    pub(crate) fn new(cx: &'c mut Context<'a>, codec: &'c mut C, state: &'c mut C::Conn) -> Self {
        ConnContext { cx, codec, state }
    }

    /// Encodes `msg` with the connection's codec into its output. Dropped
    /// (with `Ok`) once the connection's close is decided. On error nothing
    /// was queued.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    #[inline]
    pub fn send<M>(&mut self, msg: M) -> Result<(), <C as Encoder<M>>::Error>
    where
        C: Encoder<M>,
    {
        let cx = &mut *self.cx;
        let Some(io) = cx.io.as_deref_mut() else { return Ok(()) };
        if !io.life.accepts_output() {
            return Ok(());
        }
        self.codec.encode(self.state, msg, &mut Output::new(&mut io.out, cx.core.pool()))?;
        if io.mark_dirty() {
            cx.core.mark_dirty(io.id);
        }
        cx.sent += 1;
        Ok(())
    }

    /// The connection's codec state (where its stream is: a frame half
    /// read, a protocol switched).
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    #[inline]
    pub fn codec_state(&mut self) -> &mut C::Conn {
        self.state
    }

    /// This loop's codec for the service.
    ///
    /// **Thread:** the loop's, inside a callback (as every context).
    #[inline]
    pub fn codec(&self) -> &C {
        self.codec
    }
}

impl<'a, C: Codec> Deref for ConnContext<'_, 'a, C> {
    type Target = Context<'a>;
    fn deref(&self) -> &Context<'a> {
        self.cx
    }
}

impl<'a, C: Codec> DerefMut for ConnContext<'_, 'a, C> {
    fn deref_mut(&mut self) -> &mut Context<'a> {
        self.cx
    }
}
