//! Getting a room's stream to its members: each event loop delivers to
//! its own members (see `room.rs` for why), and is told when a room has
//! something new for it.
//!
//! A publisher (any loop, the log writer, the member-count ticker) queues
//! the room in the inbox of every other loop that has members there, and
//! wakes a loop with one `notify_loop` when its inbox goes from empty to
//! not empty. The loop then takes its inbox and delivers each room from its
//! cursor. The room's per-loop `queued` flag keeps a room from being queued
//! twice; it is cleared under the room's lock right before that loop
//! delivers, so an event published meanwhile is either delivered in this
//! pass or queues the room again.

use crate::core::{lock, RoomRef};
use crate::room::RoomState;
use bytes::Bytes;
use reactor::{ConnId, Context, ReactorHandle, ServiceId};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// What one loop has to do: rooms to deliver, and notifies for its
/// connections from other threads (acknowledgements of stored messages,
/// long polls to wake), which go through here rather than one mailbox
/// message each, so that a loop's mailbox filling up delays them but never
/// drops them.
#[derive(Default)]
struct Inbox {
    rooms: Mutex<Vec<RoomRef>>,
    notifies: Mutex<Vec<(ConnId, u64)>>,
    /// Frames for connections from other threads (a cluster's direct
    /// messages, going-away pushes), and whether to close them after.
    frames: Mutex<Vec<(ConnId, Bytes, bool)>>,
    /// A `notify_loop` is on its way (or the loop is delivering).
    scheduled: AtomicBool,
}

/// Who wakes a loop: a handler's context (on a loop) or the reactor handle
/// (on another thread).
pub enum Waker<'a, 'b> {
    /// From inside a handler.
    Context(&'a mut Context<'b>),
    /// From the log writer or the ticker.
    Handle(&'a ReactorHandle),
}

impl Waker<'_, '_> {
    /// Asks loop `loop_index` to deliver; false if the request was refused
    /// (the loop's mailbox is full: the caller tries again later).
    fn wake(&mut self, loop_index: usize, service: ServiceId) -> bool {
        match self {
            Waker::Context(cx) => {
                cx.notify_loop(loop_index, service, 0);
                true
            }
            Waker::Handle(h) => h.notify_loop(loop_index, service, 0).is_ok(),
        }
    }

    /// The loop this runs on, if any.
    fn current_loop(&self) -> Option<usize> {
        match self {
            Waker::Context(cx) => Some(cx.loop_index()),
            Waker::Handle(_) => None,
        }
    }
}

/// Every loop's inbox, and how to reach the loops.
pub struct Delivery {
    inboxes: Vec<Inbox>,
    /// The service whose `on_loop_notify` delivers (any chat or HTTP
    /// service of the reactor does).
    service: ServiceId,
    handle: OnceLock<ReactorHandle>,
}

impl Delivery {
    /// Inboxes for `loops` loops; `service` is notified.
    pub fn new(loops: usize, service: ServiceId) -> Delivery {
        Delivery {
            inboxes: (0..loops.max(1)).map(|_| Inbox::default()).collect(),
            service,
            handle: OnceLock::new(),
        }
    }

    /// Number of loops.
    pub fn loops(&self) -> usize {
        self.inboxes.len()
    }

    /// Gives the reactor's handle, once it is built.
    pub fn attach(&self, handle: ReactorHandle) {
        let _ = self.handle.set(handle);
    }

    /// The reactor's handle, waiting for [`Delivery::attach`] if the
    /// reactor is still being built (threads other than the loops only).
    pub fn handle(&self) -> &ReactorHandle {
        self.handle.wait()
    }

    /// Queues `room` for every loop with members but the caller's own
    /// (which delivers at once), waking the loops whose inbox was empty.
    pub fn schedule(&self, room: &RoomRef, st: &mut RoomState, waker: &mut Waker<'_, '_>) {
        let here = waker.current_loop();
        let loops: Vec<usize> = st.loops_with_members().filter(|&l| Some(l) != here).collect();
        for l in loops {
            let Some(inbox) = self.inboxes.get(l) else { continue };
            if !st.queue_for(l) {
                continue;
            }
            lock(&inbox.rooms).push(room.clone());
            if !inbox.scheduled.swap(true, Ordering::AcqRel) && !waker.wake(l, self.service) {
                // Refused: the next schedule for this loop (or the retry of
                // `wake_stalled`) wakes it.
                inbox.scheduled.store(false, Ordering::Release);
            }
        }
    }

    /// Calls `on_notify(token)` for connection `id` on its loop: at once
    /// from a loop, through the loop's inbox from another thread.
    pub fn notify(&self, waker: &mut Waker<'_, '_>, id: ConnId, token: u64) {
        match waker {
            Waker::Context(cx) => cx.notify(id, token),
            Waker::Handle(_) => {
                let l = id.loop_index();
                let Some(inbox) = self.inboxes.get(l) else { return };
                lock(&inbox.notifies).push((id, token));
                if !inbox.scheduled.swap(true, Ordering::AcqRel) && !waker.wake(l, self.service) {
                    inbox.scheduled.store(false, Ordering::Release);
                }
            }
        }
    }

    /// Sends `frame` to connection `id` from a thread other than the loops
    /// (through the loop's inbox), closing it after if `close`.
    pub fn send_from_thread(&self, id: ConnId, frame: Bytes, close: bool) {
        let l = id.loop_index();
        let Some(inbox) = self.inboxes.get(l) else { return };
        lock(&inbox.frames).push((id, frame, close));
        let handle = self.handle();
        if !inbox.scheduled.swap(true, Ordering::AcqRel) && handle.notify_loop(l, self.service, 0).is_err() {
            inbox.scheduled.store(false, Ordering::Release);
        }
    }

    /// Wakes the loops whose inbox holds rooms but whose wake was refused
    /// (from a thread other than the loops; called periodically).
    pub fn wake_stalled(&self, handle: &ReactorHandle) {
        for (l, inbox) in self.inboxes.iter().enumerate() {
            let waiting = !lock(&inbox.rooms).is_empty()
                || !lock(&inbox.notifies).is_empty()
                || !lock(&inbox.frames).is_empty();
            if waiting
                && !inbox.scheduled.swap(true, Ordering::AcqRel)
                && handle.notify_loop(l, self.service, 0).is_err()
            {
                inbox.scheduled.store(false, Ordering::Release);
            }
        }
    }

    /// Delivers what is new in the rooms queued for this loop (from
    /// `on_loop_notify`).
    pub fn deliver_queued(&self, cx: &mut Context<'_>) {
        let l = cx.loop_index();
        let Some(inbox) = self.inboxes.get(l) else { return };
        inbox.scheduled.store(false, Ordering::Release);
        let rooms = std::mem::take(&mut *lock(&inbox.rooms));
        let notifies = std::mem::take(&mut *lock(&inbox.notifies));
        for (id, token) in notifies {
            cx.notify(id, token);
        }
        let frames = std::mem::take(&mut *lock(&inbox.frames));
        for (id, frame, close) in frames {
            cx.send_to(id, frame);
            if close {
                cx.close_conn(id);
            }
        }
        for room in rooms {
            let mut st = lock(&room.state);
            if let Some(lm) = st.loop_members(l) {
                if lm.queued {
                    st.queue_reset(l);
                }
            }
            deliver(cx, &mut st, l);
        }
    }
}

/// Like [`deliver`], but the events for member `me` are returned instead
/// of sent by id (for a leaver, whose reply must come after them).
pub fn deliver_all_but(cx: &mut Context<'_>, st: &mut RoomState, l: usize, me: ConnId) -> Vec<bytes::Bytes> {
    let mut mine = Vec::new();
    {
        let (ids, events) = st.undelivered(l);
        let others: Vec<ConnId> = ids.iter().copied().filter(|&id| id != me).collect();
        for ev in events {
            cx.broadcast_except(&others, &ev.payload, ev.skip);
            if ev.skip != Some(me) {
                mine.push(ev.payload.clone());
            }
        }
    }
    st.delivered(l);
    mine
}

/// Sends loop `l`'s members every event from its cursor on (the caller
/// runs on loop `l`, holding the room's lock). Returns frames sent.
pub fn deliver(cx: &mut Context<'_>, st: &mut RoomState, l: usize) -> usize {
    let mut sent = 0;
    {
        let (ids, events) = st.undelivered(l);
        for ev in events {
            sent += cx.broadcast_except(ids, &ev.payload, ev.skip);
        }
    }
    st.delivered(l);
    sent
}
