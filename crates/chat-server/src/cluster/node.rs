//! The chat core as a node of a cluster: what a session's request does
//! when Redis holds the order, the log, the nicknames and the presence.
//!
//! Every request that needs Redis hands a call to the bridge and returns;
//! its answer comes back as a [`Completion`] in the connection's mailbox.
//! Room events come back on the subscription ([`Events`]) and are
//! published into the room's state in offset order, then delivered by each
//! loop to its own members, exactly as on a single node.

use super::subscriber::SubEvent;
use super::wire::Published;
use super::{Cluster, Events, Page};
use crate::completion::{Completion, ReplyTo};
use crate::core::{lock, now_us, ChatCore, Joined, Posted, Room, RoomRef};
use crate::delivery::{deliver, deliver_all_but, Waker};
use crate::protocol::{ErrorCode, OkBody, PresenceKind, PushRef, RoomInfo};
use crate::room::relay::{Incoming, LogRead, Step};
use crate::room::{Event, HistoryPlan, RoomState};
use crate::store::Entry;
use reactor::{ConnId, Context};
use std::sync::{Arc, Mutex};

/// Messages a catch-up reads at once.
const CATCH_UP: usize = 1000;
/// Room names a room list reads at most.
const MAX_LISTED: usize = 10_000;

/// A join waiting for its room to be loaded.
pub struct LoadWaiter {
    /// Where its answer goes.
    pub reply: ReplyTo,
    /// It may create the room.
    pub may_create: bool,
}

/// What a join in a cluster did.
pub enum ClusterJoin {
    /// Joined now.
    Done(Joined),
    /// Its answer comes as a completion (the room is loading, or its
    /// history is being read).
    Wait,
}

impl ChatCore {
    /// The cluster this core is a node of, if any.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// Hands a completion to a connection (from any thread).
    pub fn complete(&self, to: &ReplyTo, completion: Completion) {
        to.put(completion);
        self.delivery.notify(&mut Waker::Handle(self.delivery.handle()), to.conn, to.token());
    }

    /// Claims `nick` across the cluster for connection `id`; the answer is
    /// a [`Completion::Login`]. Refused at once if a connection of this
    /// node holds it.
    pub fn cluster_login(
        self: &Arc<Self>,
        cluster: &Cluster,
        nick: &str,
        reply: ReplyTo,
    ) -> Result<(), ErrorCode> {
        let nick = self.login(nick, reply.conn)?;
        let core = Arc::downgrade(self);
        let claimed = nick.clone();
        cluster.claim(&nick, move |r| {
            let Some(core) = core.upgrade() else { return };
            let result = match r {
                Ok(true) => Ok(claimed.clone()),
                Ok(false) => Err(ErrorCode::NicknameTaken),
                Err(e) => {
                    log::warn!("cluster: cannot claim {claimed}: {e}");
                    Err(ErrorCode::StoreFailed)
                }
            };
            match &result {
                Ok(_) if core.user(&claimed) != Some(reply.conn) => {
                    // The connection left meanwhile: give the claim back.
                    if let Some(c) = core.cluster() {
                        c.release(&claimed);
                    }
                }
                Ok(_) => {}
                Err(_) => core.logout_local(&claimed, reply.conn),
            }
            core.complete(&reply, Completion::Login(result));
        });
        Ok(())
    }

    /// Claims across the cluster the nickname of a session opened on this
    /// node (`POST /session`): a [`Completion::Login`].
    pub fn cluster_claim_session(&self, cluster: &Cluster, nick: &Arc<str>, reply: ReplyTo) {
        let core = self.me();
        let claimed = nick.clone();
        cluster.claim(nick, move |r| {
            let Some(core) = core.upgrade() else { return };
            let result = match r {
                Ok(true) => Ok(claimed.clone()),
                Ok(false) => Err(ErrorCode::NicknameTaken),
                Err(e) => {
                    log::warn!("cluster: cannot claim {claimed}: {e}");
                    Err(ErrorCode::StoreFailed)
                }
            };
            core.complete(&reply, Completion::Login(result));
        });
    }

    /// Joins a room of the cluster: at once if this node holds it (and the
    /// history is at hand), else after loading it or reading the history
    /// (then the session runs the join again with `prefetched`).
    #[allow(clippy::too_many_arguments)]
    pub fn cluster_join(
        &self,
        cluster: &Cluster,
        cx: &mut Context<'_>,
        name: &str,
        nick: &Arc<str>,
        resume: Option<crate::protocol::Position>,
        may_create: bool,
        prefetched: Option<Vec<Arc<Entry>>>,
        reply: ReplyTo,
    ) -> Result<(ClusterJoin, bool), ErrorCode> {
        let settings = self.settings();
        let l = cx.loop_index();
        let (room, created) = match self.resident(name) {
            Some(r) => (r, false),
            None => {
                let mut rooms = lock(&self.rooms);
                if let Some(r) = rooms.get(name) {
                    (r.clone(), false)
                } else {
                    if rooms.len() >= settings.max_rooms {
                        return Err(ErrorCode::TooManyRooms);
                    }
                    let name: Arc<str> = Arc::from(name);
                    let mut st = RoomState::loading(name.clone(), self.delivery.loops());
                    st.joins_waiting = 1;
                    let room = Arc::new(Room { name: name.clone(), state: Mutex::new(st) });
                    rooms.insert(name.clone(), room.clone());
                    drop(rooms);
                    {
                        let _st = lock(&room.state);
                        lock(&self.load_waiters)
                            .entry(name.clone())
                            .or_default()
                            .push(LoadWaiter { reply, may_create });
                    }
                    cluster.subscribe(name);
                    return Ok((ClusterJoin::Wait, may_create));
                }
            }
        };
        let mut st = lock(&room.state);
        if st.evicted {
            drop(st);
            return self.cluster_join(cluster, cx, name, nick, resume, may_create, prefetched, reply);
        }
        if st.is_loading() {
            st.joins_waiting += 1;
            lock(&self.load_waiters)
                .entry(room.name.clone())
                .or_default()
                .push(LoadWaiter { reply, may_create });
            return Ok((ClusterJoin::Wait, false));
        }
        if st.is_member(cx.id()) {
            return Err(ErrorCode::AlreadyMember);
        }
        if st.total_members() >= settings.limits.max_members_per_room as usize {
            drop(st);
            self.release(&room);
            return Err(ErrorCode::RoomFull);
        }
        let history_len = settings.limits.history_len as usize;
        let (history, recovered) = match st.history(resume, history_len, settings.recover_limit) {
            HistoryPlan::Tail { entries, recovered } => (entries, recovered),
            HistoryPlan::FromLog { after, limit } => match prefetched {
                // Read from the log; the rest (published since) from the tail.
                Some(mut read) => {
                    let upto = read.last().map_or(after, |e| e.offset);
                    match st.tail_after(upto, limit) {
                        Some(rest) if read.first().is_none_or(|e| e.offset == after + 1) => {
                            read.extend(rest);
                            (read, true)
                        }
                        _ => match st.history(None, history_len, 0) {
                            HistoryPlan::Tail { entries, .. } => (entries, false),
                            HistoryPlan::FromLog { .. } => (Vec::new(), false),
                        },
                    }
                }
                None => {
                    // Read it off the loop; the member is added once it is here.
                    st.joins_waiting += 1;
                    drop(st);
                    let (core, room2) = (self.me(), room.clone());
                    cluster.read(name, after, limit, move |r| {
                        let Some(core) = core.upgrade() else { return };
                        lock(&room2.state).joins_waiting -= 1;
                        let entries = match r {
                            Ok(Some(page)) => {
                                Some(page.entries.into_iter().map(|(e, _)| Arc::new(e)).collect())
                            }
                            _ => Some(Vec::new()),
                        };
                        core.complete(&reply, Completion::Retry(entries));
                        core.release(&room2);
                    });
                    return Ok((ClusterJoin::Wait, false));
                }
            },
        };
        // This loop's members get what came before the joiner first.
        deliver(cx, &mut st, l);
        let members = st.total_members() + 1;
        st.add_member(cx.id(), nick.clone());
        let joined = Joined {
            members: u32::try_from(members).unwrap_or(u32::MAX),
            epoch: st.epoch(),
            last_offset: st.last_offset(),
            recovered,
            history,
            room: room.clone(),
        };
        drop(st);
        cluster.presence(PresenceKind::Joined, name, nick, cx.id().as_u64());
        Ok((ClusterJoin::Done(joined), created))
    }

    /// Leaves a room of the cluster. Returns the room's events the leaver
    /// has yet to get, to send before its reply (as [`ChatCore::leave`]).
    pub fn cluster_leave(
        &self,
        cluster: &Cluster,
        cx: &mut Context<'_>,
        room: &RoomRef,
    ) -> Result<Vec<bytes::Bytes>, ErrorCode> {
        let (l, me) = (cx.loop_index(), cx.id());
        let mut st = lock(&room.state);
        if !st.is_member(me) {
            return Err(ErrorCode::NotMember);
        }
        let mine = deliver_all_but(cx, &mut st, l, me);
        let nick = st.remove_member(me).ok_or(ErrorCode::NotMember)?;
        drop(st);
        cluster.presence(PresenceKind::Left, &room.name, &nick, me.as_u64());
        self.release(room);
        Ok(mine)
    }

    /// Posts a message through Redis: the answer is a
    /// [`Completion::Sent`]; the members (this node's too) get it when it
    /// arrives on the room's channel. `room`: the sender's room in memory
    /// (`None` for senders that are not members, as HTTP clients).
    #[allow(clippy::too_many_arguments)]
    pub fn cluster_post(
        &self,
        cluster: &Cluster,
        room: Option<&RoomRef>,
        name: &str,
        from: &str,
        text: &str,
        sender: Option<ConnId>,
        reply: ReplyTo,
    ) -> Result<(), ErrorCode> {
        let token = cluster.token();
        if let Some(room) = room {
            let mut st = lock(&room.state);
            if st.evicted {
                return Err(ErrorCode::UnknownRoom);
            }
            if let Some(s) = sender {
                st.expect(token, s);
            }
            st.wrote();
        }
        let ts_us = now_us();
        let (core, room, room_name) = (self.me(), room.cloned(), name.to_string());
        cluster.append(name, from, text, ts_us, token, move |r| {
            let Some(core) = core.upgrade() else { return };
            if let Some(room) = &room {
                let mut st = lock(&room.state);
                st.written();
                if r.is_err() {
                    st.forget_sender(token);
                }
            }
            let result = match r {
                Ok(s) => Ok(Posted { id: s.id, ts_us, offset: s.offset, stored: true }),
                Err(e) => {
                    log::warn!("cluster: a message to {room_name} was not stored: {e}");
                    Err(ErrorCode::StoreFailed)
                }
            };
            core.complete(&reply, Completion::Sent(result));
            if let Some(room) = &room {
                core.release(room);
            }
        });
        Ok(())
    }

    /// Sends a direct message to a user on any node: a
    /// [`Completion::Reply`] with `Sent` or `UnknownUser`.
    pub fn cluster_direct(&self, cluster: &Cluster, to: &str, from: &str, text: &str, reply: ReplyTo) {
        let ts_us = now_us();
        let core = self.me();
        let target = to.to_string();
        cluster.direct(to, from, text, ts_us, move |r| {
            let Some(core) = core.upgrade() else { return };
            let result = match r {
                Ok(Some(id)) => Ok(OkBody::Sent { id, ts_us, offset: 0 }),
                Ok(None) => Err((ErrorCode::UnknownUser, format!("no user {target}"))),
                Err(e) => Err((ErrorCode::StoreFailed, format!("cannot reach {target}: {e}"))),
            };
            core.complete(&reply, Completion::Reply(result));
        });
    }

    /// A room's members on every live node: a [`Completion::Reply`].
    pub fn cluster_who(&self, cluster: &Cluster, room: &str, reply: ReplyTo) {
        let core = self.me();
        let name = room.to_string();
        cluster.who(room, move |r| {
            let Some(core) = core.upgrade() else { return };
            let result = match r {
                Ok(Some(mut nicks)) => {
                    nicks.sort();
                    Ok(nicks)
                }
                Ok(None) => Err((ErrorCode::UnknownRoom, format!("no room {name}"))),
                Err(e) => Err((ErrorCode::StoreFailed, format!("cannot list {name}: {e}"))),
            };
            core.complete(&reply, Completion::Reply(result.map(|nicks| members_body(&core, nicks))));
        });
    }

    /// Every room of the cluster with its members: a [`Completion::Reply`].
    pub fn cluster_rooms(&self, cluster: &Cluster, reply: ReplyTo) {
        let core = self.me();
        cluster.rooms(MAX_LISTED, move |r| {
            let Some(core) = core.upgrade() else { return };
            let result = match r {
                Ok((total, rooms)) => {
                    let all: Vec<RoomInfo> =
                        rooms.into_iter().map(|(name, members)| RoomInfo { name, members }).collect();
                    Ok(rooms_body(&core, u32::try_from(total).unwrap_or(u32::MAX), all))
                }
                Err(e) => Err((ErrorCode::StoreFailed, format!("cannot list rooms: {e}"))),
            };
            core.complete(&reply, Completion::Reply(result));
        });
    }

    /// Reads a room's messages after `after` from Redis: a
    /// [`Completion::Page`].
    pub fn cluster_read(&self, cluster: &Cluster, room: &str, after: u64, limit: usize, reply: ReplyTo) {
        let core = self.me();
        cluster.read(room, after, limit, move |r| {
            let Some(core) = core.upgrade() else { return };
            let page = match r {
                Ok(Some(p)) => Ok(Some(crate::core::Page {
                    epoch: p.meta.epoch,
                    last_offset: p.meta.last_offset,
                    messages: p.entries.into_iter().map(|(e, _)| Arc::new(e)).collect(),
                })),
                Ok(None) => Ok(None),
                Err(e) => {
                    log::warn!("cluster: a read failed: {e}");
                    Err(ErrorCode::StoreFailed)
                }
            };
            core.complete(&reply, Completion::Page(page));
        });
    }

    /// Registers connection `id` (a long poll) to be notified at a room's
    /// next message: `Ok(true)` done; `Ok(false)`: the room is being
    /// loaded, a [`Completion::Retry`] comes when it is (then call again).
    pub fn cluster_watch(
        &self,
        cluster: &Cluster,
        room: &str,
        id: ConnId,
        reply: ReplyTo,
    ) -> Result<bool, ErrorCode> {
        loop {
            let resident = self.resident(room);
            let Some(r) = resident else {
                let mut rooms = lock(&self.rooms);
                if rooms.contains_key(room) {
                    continue;
                }
                if rooms.len() >= self.settings().max_rooms {
                    return Err(ErrorCode::TooManyRooms);
                }
                let name: Arc<str> = Arc::from(room);
                let mut st = RoomState::loading(name.clone(), self.delivery.loops());
                st.joins_waiting = 1;
                let r = Arc::new(Room { name: name.clone(), state: Mutex::new(st) });
                rooms.insert(name.clone(), r.clone());
                drop(rooms);
                {
                    let _st = lock(&r.state);
                    lock(&self.load_waiters)
                        .entry(name.clone())
                        .or_default()
                        .push(LoadWaiter { reply, may_create: false });
                }
                cluster.subscribe(name);
                return Ok(false);
            };
            let mut st = lock(&r.state);
            if st.evicted {
                continue;
            }
            if st.is_loading() {
                st.joins_waiting += 1;
                lock(&self.load_waiters)
                    .entry(r.name.clone())
                    .or_default()
                    .push(LoadWaiter { reply, may_create: false });
                return Ok(false);
            }
            st.wait(id);
            return Ok(true);
        }
    }

    fn resident(&self, name: &str) -> Option<RoomRef> {
        lock(&self.rooms).get(name).cloned()
    }

    /// A room left memory: stop listening to it.
    pub(crate) fn cluster_evicted(&self, room: &RoomRef) {
        if let Some(c) = self.cluster() {
            c.unsubscribe(room.name.clone());
        }
    }

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

/// A `Members` body cut to the frame limit.
fn members_body(core: &ChatCore, all: Vec<String>) -> OkBody {
    let total = u32::try_from(all.len()).unwrap_or(u32::MAX);
    let nicks = fitting(core, all, |n| 1 + n.len());
    OkBody::Members { total, nicks }
}

/// A `Rooms` body cut to the frame limit.
fn rooms_body(core: &ChatCore, total: u32, all: Vec<RoomInfo>) -> OkBody {
    let rooms = fitting(core, all, |r| 1 + r.name.len() + 4);
    OkBody::Rooms { total, rooms }
}

fn fitting<T>(core: &ChatCore, all: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<T> {
    let budget = core.settings().limits.max_payload as usize;
    let mut used = 1 + 4 + 1 + 4 + 4;
    all.into_iter()
        .take_while(|item| {
            used += size(item);
            used <= budget
        })
        .collect()
}
