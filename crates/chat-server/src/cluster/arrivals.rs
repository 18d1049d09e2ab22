//! What reaches a node from Redis: room events on the room channels it
//! subscribed (published into the room in offset order through
//! `room::relay`; gaps caught up from the room's Stream; a room whose log
//! was lost sends its members to resume), direct messages on its own
//! channel, rooms loaded once subscribed, and the node's records claimed
//! again when Redis took it for dead. All of it runs on the subscriber and
//! command threads; the loops are woken through their inboxes.

use super::subscriber::SubEvent;
use super::wire::Published;
use super::{Cluster, Events, Page};
use crate::completion::Completion;
use crate::core::{lock, ChatCore, RoomRef};
use crate::delivery::Waker;
use crate::protocol::{ErrorCode, PresenceKind, PushRef};
use crate::room::relay::{Incoming, LogRead, Step};
use crate::room::{Event, RoomState};
use reactor::ConnId;
use std::sync::Arc;

/// Messages a catch-up reads at once.
const CATCH_UP: usize = 1000;

impl ChatCore {
    /// Runs the relay of a room: publishes what can be, asks for a
    /// catch-up or gives the room up. Called with the room locked; true if
    /// the room is lost (the caller calls [`ChatCore::forget`] once it has
    /// let go of the lock).
    #[must_use]
    fn drive(&self, cluster: &Cluster, room: &RoomRef, st: &mut RoomState) -> bool {
        let settings = self.settings();
        let handle = self.delivery.handle();
        loop {
            let (epoch, last) = (st.epoch(), st.last_offset());
            let Some(step) = st.relay.as_mut().and_then(|r| r.next(epoch, last)) else { return false };
            match step {
                Step::Publish(Incoming::Message { entry, origin, .. }) => {
                    let sender = origin.and_then(|t| st.take_sender(t));
                    cluster.saw_id(entry.id);
                    cluster.stats().relayed.inc();
                    self.publish_entry(room, st, entry, sender, &settings, &mut Waker::Handle(handle));
                }
                Step::Publish(Incoming::Presence { kind, nick, members, skip }) => {
                    st.set_cluster_members(members);
                    if (members as usize) < settings.presence_max_members {
                        let push = PushRef::Presence { room: &room.name, nick: &nick, kind };
                        if let Some(frame) = self.payload(push) {
                            st.push(Event { payload: frame, skip });
                            self.delivery.schedule(room, st, &mut Waker::Handle(handle));
                        }
                    } else {
                        self.count_changed(room, st);
                    }
                }
                Step::CatchUp { after } => {
                    cluster.stats().catch_ups.inc();
                    self.catch_up(cluster, room, after);
                    return false;
                }
                Step::Lost => {
                    self.lose(cluster, room, st);
                    return true;
                }
            }
        }
    }

    /// Reads a room's log after `after` and feeds it to the relay.
    fn catch_up(&self, cluster: &Cluster, room: &RoomRef, after: u64) {
        let (core, room) = (self.me(), room.clone());
        let node = cluster.node().to_string();
        cluster.read(&room.name.clone(), after, CATCH_UP, move |r| {
            let Some(core) = core.upgrade() else { return };
            let Some(cluster) = core.cluster().cloned() else { return };
            let mut st = lock(&room.state);
            if st.evicted {
                return;
            }
            let read = match r {
                Ok(Some(Page { meta, entries, members })) => {
                    // Presence events missed in a gap: the count at least is right again.
                    st.set_cluster_members(members);
                    LogRead {
                        epoch: meta.epoch,
                        last: meta.last_offset,
                        messages: entries
                            .into_iter()
                            .map(|(e, origin)| Incoming::Message {
                                epoch: meta.epoch,
                                entry: Arc::new(e),
                                origin: origin.filter(|(n, _)| *n == node).map(|(_, t)| t),
                            })
                            .collect(),
                    }
                }
                // The room is gone from Redis: its log was lost.
                Ok(None) => LogRead { epoch: 0, last: 0, messages: Vec::new() },
                Err(e) => {
                    log::warn!("cluster: catch-up of {} failed: {e}; trying again", room.name);
                    drop(st);
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    let last = lock(&room.state).last_offset();
                    core.catch_up(&cluster, &room, last);
                    return;
                }
            };
            let (epoch, last) = (st.epoch(), st.last_offset());
            let caught = st.relay.as_mut().map(|r| r.caught_up(epoch, last, read));
            let lost = match caught {
                Some(Ok(())) => core.drive(&cluster, &room, &mut st),
                Some(Err(_)) => {
                    core.lose(&cluster, &room, &mut st);
                    true
                }
                None => false,
            };
            drop(st);
            if lost {
                core.forget(&cluster, &room);
            }
        });
    }

    /// The log cannot give a room's members what they missed (Redis lost
    /// the room, or trimmed it past the gap): they are told to come back
    /// (a going-away push, then the connection closes); resuming, they
    /// learn from the epoch and `recovered` what is gone. The room leaves
    /// memory (the caller calls [`ChatCore::forget`] once it has let go of
    /// the room's lock).
    fn lose(&self, cluster: &Cluster, room: &RoomRef, st: &mut RoomState) {
        cluster.stats().rooms_lost.inc();
        log::warn!("cluster: room {} lost messages its members cannot get; they must resume", room.name);
        let push = PushRef::GoingAway { retry_after_ms: 100, reason: "room history lost; resume" };
        let frame = self.payload(push);
        for l in 0..self.delivery.loops() {
            let ids: Vec<ConnId> = st.loop_members(l).map(|m| m.ids().to_vec()).unwrap_or_default();
            for id in ids {
                if let Some(f) = &frame {
                    self.delivery.send_from_thread(id, f.clone(), true);
                }
            }
        }
        st.evicted = true;
    }

    /// A room's channel is subscribed: read its state.
    fn load(self: &Arc<Self>, cluster: &Cluster, name: Arc<str>) {
        let Some(room) = self.resident(&name) else { return };
        let create = lock(&self.load_waiters).get(&name).is_some_and(|w| w.iter().any(|w| w.may_create));
        let core = Arc::downgrade(self);
        let history_len = self.settings().limits.history_len as usize;
        cluster.load(&name, create, history_len, move |r| {
            let Some(core) = core.upgrade() else { return };
            let Some(cluster) = core.cluster().cloned() else { return };
            let mut st = lock(&room.state);
            let waiters = lock(&core.load_waiters).remove(&room.name).unwrap_or_default();
            st.joins_waiting = st.joins_waiting.saturating_sub(waiters.len());
            let outcome = match r {
                Ok(Some(loaded)) => {
                    for e in &loaded.tail {
                        cluster.saw_id(e.id);
                    }
                    st.load(loaded.meta, loaded.tail, loaded.members);
                    if core.drive(&cluster, &room, &mut st) {
                        Err(ErrorCode::StoreFailed)
                    } else {
                        Ok(())
                    }
                }
                Ok(None) => Err(ErrorCode::UnknownRoom),
                Err(e) => {
                    log::warn!("cluster: cannot load room {}: {e}", room.name);
                    Err(ErrorCode::StoreFailed)
                }
            };
            if outcome.is_err() {
                st.evicted = true;
            }
            drop(st);
            if outcome.is_err() {
                core.forget(&cluster, &room);
            }
            for w in waiters {
                let c = match outcome {
                    Ok(()) => Completion::Retry(None),
                    Err(ErrorCode::UnknownRoom) if w.may_create => Completion::Retry(None),
                    Err(code) => Completion::Reply(Err((code, format!("cannot join {}", room.name)))),
                };
                core.complete(&w.reply, c);
            }
        });
    }

    /// Drops a room that could not be loaded.
    fn forget(&self, cluster: &Cluster, room: &RoomRef) {
        let mut rooms = lock(&self.rooms);
        if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.name);
        }
        drop(rooms);
        cluster.unsubscribe(room.name.clone());
    }

    /// An event on a room's channel.
    fn arrived(&self, cluster: &Cluster, room_name: &str, event: Published) {
        cluster.stats().received.inc();
        let Some(room) = self.resident(room_name) else { return };
        let incoming = match event {
            Published::Message { epoch, entry, origin, .. } => Incoming::Message {
                epoch,
                entry: Arc::new(entry),
                origin: origin.filter(|(n, _)| n == cluster.node()).map(|(_, t)| t),
            },
            Published::Presence { kind, members, node, conn, nick, .. } => Incoming::Presence {
                kind,
                nick: nick.into(),
                members,
                skip: (node == cluster.node() && conn != 0).then(|| ConnId::from_u64(conn)),
            },
            _ => return,
        };
        let mut st = lock(&room.state);
        if st.evicted {
            return;
        }
        let Some(relay) = st.relay.as_mut() else { return };
        let lost = if relay.push(incoming) {
            self.drive(cluster, &room, &mut st)
        } else {
            self.lose(cluster, &room, &mut st);
            true
        };
        drop(st);
        if lost {
            self.forget(cluster, &room);
        }
    }

    /// A direct message for a user of this node.
    fn direct_arrived(&self, cluster: &Cluster, to: &str, id: u64, ts_us: u64, from: &str, text: &str) {
        let Some(target) = self.user(to) else { return };
        cluster.saw_id(id);
        if let Some(frame) = self.payload(PushRef::Direct { id, ts_us, from, text }) {
            cluster.stats().directs.inc();
            self.delivery.send_from_thread(target, frame, false);
        }
    }
}

impl Events for ChatCore {
    fn subscription(&self, event: SubEvent<'_>) {
        let (Some(cluster), Some(me)) = (self.cluster().cloned(), self.me().upgrade()) else { return };
        match event {
            SubEvent::Published { room: Some(room), payload } => match Published::decode(payload) {
                Ok(p) => self.arrived(&cluster, room, p),
                Err(e) => log::warn!("cluster: a bad payload on room {room}'s channel: {e:?}"),
            },
            SubEvent::Published { room: None, payload } => match Published::decode(payload) {
                Ok(Published::Direct { to, id, ts_us, from, text }) => {
                    self.direct_arrived(&cluster, &to, id, ts_us, &from, &text)
                }
                Ok(_) => {}
                Err(e) => log::warn!("cluster: a bad payload on this node's channel: {e:?}"),
            },
            SubEvent::Subscribed(rooms) => {
                for name in rooms {
                    me.load(&cluster, name);
                }
            }
            SubEvent::Failed(rooms) => {
                for name in rooms {
                    let Some(room) = self.resident(&name) else { continue };
                    let waiters = {
                        let mut st = lock(&room.state);
                        if !st.is_loading() {
                            continue;
                        }
                        st.evicted = true;
                        lock(&self.load_waiters).remove(&name).unwrap_or_default()
                    };
                    self.forget(&cluster, &room);
                    for w in waiters {
                        let err = (ErrorCode::StoreFailed, "the cluster's Redis is unavailable".to_string());
                        self.complete(&w.reply, Completion::Reply(Err(err)));
                    }
                }
            }
            SubEvent::Resubscribed(rooms) => {
                for name in rooms {
                    let Some(room) = self.resident(&name) else { continue };
                    let mut st = lock(&room.state);
                    if st.relay.as_mut().is_some_and(|r| r.resync()) {
                        let last = st.last_offset();
                        drop(st);
                        cluster.stats().catch_ups.inc();
                        self.catch_up(&cluster, &room, last);
                    }
                }
            }
        }
    }

    fn restore(&self) {
        let Some(cluster) = self.cluster().cloned() else { return };
        let users = self.local_users();
        if users.is_empty() && self.room_count() == 0 {
            return;
        }
        log::warn!("cluster: this node was taken for dead; claiming its {} nicknames again", users.len());
        for (nick, conn) in users {
            let core = self.me();
            let n = nick.clone();
            cluster.claim(&nick, move |r| {
                if let (Ok(false), Some(core)) = (r, core.upgrade()) {
                    // Taken by another node meanwhile: this session ends.
                    log::warn!("cluster: {n} was taken by another node while this one was away");
                    if let Some(conn) = conn {
                        core.kick(&mut Waker::Handle(core.delivery.handle()), conn, ErrorCode::NicknameTaken);
                    }
                }
            });
        }
        let rooms: Vec<RoomRef> = lock(&self.rooms).values().cloned().collect();
        for room in rooms {
            let st = lock(&room.state);
            for l in 0..self.delivery.loops() {
                let Some(m) = st.loop_members(l) else { continue };
                for (id, nick) in m.ids().iter().zip(m.nicks()) {
                    cluster.presence(PresenceKind::Joined, &room.name, nick, id.as_u64());
                }
            }
        }
    }
}
