//! The subscriber thread: one Redis connection in subscription mode,
//! receiving the channels of the rooms this node holds and its own node
//! channel, and handing each event to the node (which publishes it into
//! the room and wakes the loops; it never waits on a loop).
//!
//! Subscriptions change while the thread waits for messages: a change is
//! queued here, then the node publishes a wake-up on its own channel (a
//! `Wake` call), which makes the blocking read return. After a reconnection
//! every channel is subscribed again and the node told, so that its rooms
//! catch up from the log what was published meanwhile.

use super::stats::ClusterStats;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the subscriber tells the node.
pub enum SubEvent<'a> {
    /// These rooms' channels are subscribed now: their state can be read.
    Subscribed(Vec<Arc<str>>),
    /// These rooms could not be subscribed (Redis is away).
    Failed(Vec<Arc<str>>),
    /// A payload on a room's channel (`Some(room)`) or the node's own.
    Published {
        /// The room, for a room channel.
        room: Option<&'a str>,
        /// The payload.
        payload: &'a [u8],
    },
    /// The connection was lost and is back: every subscribed room may have
    /// missed messages.
    Resubscribed(Vec<Arc<str>>),
}

#[derive(Default)]
struct Changes {
    subscribe: Vec<Arc<str>>,
    unsubscribe: Vec<Arc<str>>,
}

/// The handle the node uses to change subscriptions.
#[derive(Clone)]
pub struct Subscriber {
    changes: Arc<Mutex<Changes>>,
    pending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Subscriber {
    /// Starts the thread. `channel` names a room's channel, `node_channel`
    /// is this node's; `on_event` runs on the thread.
    pub fn start(
        client: redis::Client,
        timeout: Duration,
        channel: impl Fn(&str) -> String + Send + 'static,
        room_of: impl Fn(&str) -> Option<String> + Send + 'static,
        node_channel: String,
        stats: Arc<ClusterStats>,
        on_event: impl Fn(SubEvent<'_>) + Send + 'static,
    ) -> std::io::Result<(Subscriber, JoinHandle<()>)> {
        let sub = Subscriber { changes: Arc::default(), pending: Arc::default(), stop: Arc::default() };
        let run = Run {
            client,
            timeout,
            channel: Box::new(channel),
            room_of: Box::new(room_of),
            node_channel,
            stats,
            on_event: Box::new(on_event),
            changes: sub.changes.clone(),
            pending: sub.pending.clone(),
            stop: sub.stop.clone(),
            rooms: HashSet::new(),
            was_connected: false,
        };
        let thread = std::thread::Builder::new().name("redis-sub".into()).spawn(move || run.run())?;
        Ok((sub, thread))
    }

    /// Subscribes a room's channel; the node hears `Subscribed` (or
    /// `Failed`) once it is. The caller then wakes the thread.
    pub fn subscribe(&self, room: Arc<str>) {
        crate::core::lock(&self.changes).subscribe.push(room);
        self.pending.store(true, Ordering::Release);
    }

    /// Stops the thread (within a second).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Unsubscribes a room's channel (the room left this node's memory).
    pub fn unsubscribe(&self, room: Arc<str>) {
        crate::core::lock(&self.changes).unsubscribe.push(room);
        self.pending.store(true, Ordering::Release);
    }
}

type OnEvent = Box<dyn Fn(SubEvent<'_>) + Send>;
type RoomOf = Box<dyn Fn(&str) -> Option<String> + Send>;

struct Run {
    client: redis::Client,
    timeout: Duration,
    channel: Box<dyn Fn(&str) -> String + Send>,
    room_of: RoomOf,
    node_channel: String,
    stats: Arc<ClusterStats>,
    on_event: OnEvent,
    changes: Arc<Mutex<Changes>>,
    pending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    was_connected: bool,
    /// Rooms subscribed (or to subscribe again after a reconnection).
    rooms: HashSet<Arc<str>>,
}

impl Run {
    fn run(mut self) {
        let mut backoff = Duration::from_millis(50);
        let mut connected_once = false;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            match self.session(connected_once) {
                Ok(()) => return,
                Err(e) => {
                    if connected_once {
                        log::warn!("redis subscription: {e}; reconnecting");
                    }
                }
            }
            // Subscriptions asked for meanwhile cannot be served now.
            let failed: Vec<Arc<str>> = std::mem::take(&mut crate::core::lock(&self.changes).subscribe);
            if !failed.is_empty() {
                (self.on_event)(SubEvent::Failed(failed));
            }
            connected_once |= self.was_connected;
            std::thread::sleep(
                backoff + Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 4)),
            );
            backoff = (backoff * 2).min(Duration::from_secs(2));
            if self.was_connected {
                backoff = Duration::from_millis(50);
                self.was_connected = false;
            }
        }
    }
}

impl Run {
    /// One connection's life: Err when it breaks.
    fn session(&mut self, reconnecting: bool) -> redis::RedisResult<()> {
        let mut conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_write_timeout(Some(self.timeout))?;
        let mut ps = conn.as_pubsub();
        // A silent connection is checked with a ping at this period.
        ps.set_read_timeout(Some(Duration::from_secs(1)))?;
        ps.subscribe(&self.node_channel)?;
        if !self.rooms.is_empty() {
            let channels: Vec<String> = self.rooms.iter().map(|r| (self.channel)(r)).collect();
            ps.subscribe(channels)?;
        }
        if reconnecting {
            self.stats.reconnects.inc();
            log::info!("redis subscription: back, {} rooms subscribed again", self.rooms.len());
            (self.on_event)(SubEvent::Resubscribed(self.rooms.iter().cloned().collect()));
        }
        self.was_connected = true;
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Ok(());
            }
            if self.pending.swap(false, Ordering::AcqRel) {
                let Changes { subscribe, unsubscribe } =
                    std::mem::take(&mut *crate::core::lock(&self.changes));
                let gone: Vec<String> = unsubscribe
                    .into_iter()
                    .filter(|r| !subscribe.contains(r))
                    .filter(|r| self.rooms.remove(r))
                    .map(|r| (self.channel)(&r))
                    .collect();
                if !gone.is_empty() {
                    ps.unsubscribe(gone)?;
                }
                if !subscribe.is_empty() {
                    let new: Vec<String> = subscribe.iter().map(|r| (self.channel)(r)).collect();
                    if let Err(e) = ps.subscribe(new) {
                        crate::core::lock(&self.changes).subscribe.extend(subscribe);
                        return Err(e);
                    }
                    self.rooms.extend(subscribe.iter().cloned());
                    (self.on_event)(SubEvent::Subscribed(subscribe));
                }
            }
            match ps.get_message() {
                Ok(msg) => {
                    let channel = msg.get_channel_name();
                    let room = if channel == self.node_channel { None } else { (self.room_of)(channel) };
                    if channel != self.node_channel && room.is_none() {
                        continue;
                    }
                    (self.on_event)(SubEvent::Published {
                        room: room.as_deref(),
                        payload: msg.get_payload_bytes(),
                    });
                }
                Err(e) if e.is_timeout() => {
                    // Nothing for a while: is Redis still there?
                    ps.ping::<redis::Value>()?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
