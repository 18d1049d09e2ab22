//! The chat core as a node of a cluster: what a session's request does
//! when Redis holds the order, the log, the nicknames and the presence.
//!
//! Every request that needs Redis hands a call to the bridge and returns;
//! its answer comes back as a [`Completion`] in the connection's mailbox.
//! Room events come back on the subscription (`arrivals.rs`) and are
//! published into the room's state in offset order, then delivered by each
//! loop to its own members, exactly as on a single node.

use super::bridge::CallError;
use super::Cluster;
use crate::completion::{Completion, ReplyTo};
use crate::core::{lock, now_us, ChatCore, Joined, Posted, Room, RoomRef};
use crate::delivery::{deliver, deliver_all_but, Waker};
use crate::protocol::{ErrorCode, OkBody, PresenceKind, RoomInfo};
use crate::room::{HistoryPlan, RoomState};
use crate::store::Entry;
use reactor::{ConnId, Context};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

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
            let result = claim_outcome(&claimed, r);
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
            let result = claim_outcome(&claimed, r);
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
                let rooms = lock(&self.rooms);
                if let Some(r) = rooms.get(name) {
                    (r.clone(), false)
                } else {
                    if rooms.len() >= settings.max_rooms {
                        return Err(ErrorCode::TooManyRooms);
                    }
                    self.start_loading(cluster, rooms, name, LoadWaiter { reply, may_create });
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
                let rooms = lock(&self.rooms);
                if rooms.contains_key(room) {
                    continue;
                }
                if rooms.len() >= self.settings().max_rooms {
                    return Err(ErrorCode::TooManyRooms);
                }
                self.start_loading(cluster, rooms, room, LoadWaiter { reply, may_create: false });
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

    /// Puts a room this node does not hold into memory as loading, with
    /// `waiter` to be answered once Redis has given its position, and
    /// starts listening to it. Takes the held room table lock (checked:
    /// `name` is not in it, and there is room for one more) and releases
    /// it before registering the waiter under the room's own lock, so
    /// that the load's answer cannot pass the waiter.
    fn start_loading(
        &self,
        cluster: &Cluster,
        mut rooms: MutexGuard<'_, HashMap<Arc<str>, RoomRef>>,
        name: &str,
        waiter: LoadWaiter,
    ) {
        let name: Arc<str> = Arc::from(name);
        let mut st = RoomState::loading(name.clone(), self.delivery.loops());
        st.joins_waiting = 1;
        let room = Arc::new(Room { name: name.clone(), state: Mutex::new(st) });
        rooms.insert(name.clone(), room.clone());
        drop(rooms);
        {
            let _st = lock(&room.state);
            lock(&self.load_waiters).entry(name.clone()).or_default().push(waiter);
        }
        cluster.subscribe(name);
    }

    /// The room called `name`, if this node holds it.
    pub(crate) fn resident(&self, name: &str) -> Option<RoomRef> {
        lock(&self.rooms).get(name).cloned()
    }

    /// A room left memory: stop listening to it.
    pub(crate) fn cluster_evicted(&self, room: &RoomRef) {
        if let Some(c) = self.cluster() {
            c.unsubscribe(room.name.clone());
        }
    }
}

/// What a login gets from the cluster's answer to its nickname claim.
fn claim_outcome(claimed: &Arc<str>, answer: Result<bool, CallError>) -> Result<Arc<str>, ErrorCode> {
    match answer {
        Ok(true) => Ok(claimed.clone()),
        Ok(false) => Err(ErrorCode::NicknameTaken),
        Err(e) => {
            log::warn!("cluster: cannot claim {claimed}: {e}");
            Err(ErrorCode::StoreFailed)
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
