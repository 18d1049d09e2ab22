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
use reactor::{Context, ReactorHandle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// The rooms one loop has to deliver.
#[derive(Default)]
struct Inbox {
    rooms: Mutex<Vec<RoomRef>>,
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
    fn wake(&mut self, loop_index: usize, service: usize) {
        match self {
            Waker::Context(cx) => cx.notify_loop(loop_index, service, 0),
            Waker::Handle(h) => {
                h.notify_loop(loop_index, service, 0);
            }
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
    /// Length prefix of the chat frames events carry.
    header_len: usize,
    /// The service whose `on_loop_notify` delivers (any chat or HTTP
    /// service of the reactor does).
    service: usize,
    handle: OnceLock<ReactorHandle>,
}

impl Delivery {
    /// Inboxes for `loops` loops; `service` is notified. Events carry chat
    /// frames with a `header_len`-byte length prefix.
    pub fn new(loops: usize, service: usize, header_len: usize) -> Delivery {
        Delivery {
            inboxes: (0..loops.max(1)).map(|_| Inbox::default()).collect(),
            header_len,
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
            if !inbox.scheduled.swap(true, Ordering::AcqRel) {
                waker.wake(l, self.service);
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
        for room in rooms {
            let mut st = lock(&room.state);
            if let Some(lm) = st.loop_members(l) {
                if lm.queued {
                    st.queue_reset(l);
                }
            }
            deliver(cx, &mut st, l, self.header_len);
        }
    }

    /// The length prefix of the chat frames events carry.
    pub fn header_len(&self) -> usize {
        self.header_len
    }
}

/// Sends loop `l`'s members every event from its cursor on (the caller
/// runs on loop `l`, holding the room's lock), each in its door's framing:
/// the chat frame as it is, or its payload (after the `header_len`-byte
/// length prefix) in a WebSocket message. Returns frames sent.
pub fn deliver(cx: &mut Context<'_>, st: &mut RoomState, l: usize, header_len: usize) -> usize {
    let mut sent = 0;
    {
        let ws = st.ws_members(l);
        let (ids, events) = st.undelivered(l);
        for ev in events {
            sent += cx.broadcast_except(ids, &ev.frame, ev.skip);
            if !ws.is_empty() {
                sent += cx.broadcast_except(ws, ev.ws_frame(header_len), ev.skip);
            }
        }
    }
    st.delivered(l);
    if sent > 0 {
        cx.count_frames_out(sent as u64);
    }
    sent
}
