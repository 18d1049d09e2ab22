//! The chat state every event loop shares: users, rooms, history, and the
//! settings a reload swaps. Sessions (one per connection, on its loop) call
//! into it; it sends through the caller's reactor context, so the same core
//! serves any front end that runs on the reactor.

use crate::protocol::{ErrorCode, PresenceKind, Push, PushRef, RoomInfo, ServerLimits};
use bytes::Bytes;
use bytes::BytesMut;
use reactor::{ConnId, Context};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What sessions need of the configuration; replaced whole on reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Limits, as announced to clients at login.
    pub limits: ServerLimits,
    /// Shared secret required at login, if any.
    pub token: Option<String>,
    /// Most rooms the server holds.
    pub max_rooms: usize,
    /// Silence after which the server pings a client.
    pub ping_interval: Duration,
}

/// A message kept in a room's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Server-assigned id (global, increasing).
    pub id: u64,
    /// Server timestamp, unix microseconds.
    pub ts_us: u64,
    /// Sender's nickname.
    pub from: Arc<str>,
    /// Text.
    pub text: Arc<str>,
}

/// One room: members (ids and nicknames side by side, so the ids can be
/// broadcast to as one slice), recent history, and the connections waiting
/// for its next message (HTTP long polls). Rooms persist once created, so
/// that history outlives membership; the server holds at most
/// `max_rooms`.
pub struct Room {
    name: Arc<str>,
    ids: Vec<ConnId>,
    nicks: Vec<Arc<str>>,
    history: VecDeque<StoredMessage>,
    waiters: Vec<ConnId>,
}

impl Room {
    /// The room's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Members' connection ids.
    pub fn member_ids(&self) -> &[ConnId] {
        &self.ids
    }

    /// Recent messages, oldest first.
    pub fn history(&self) -> &VecDeque<StoredMessage> {
        &self.history
    }
}

/// A room handle a session keeps for each room it is in, so that posting
/// takes no global lock.
pub type RoomRef = Arc<Mutex<Room>>;

/// Locks a mutex, recovering from poisoning: a panicking handler closes its
/// own connection but must not take the chat down with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Server time, unix microseconds.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// What a successful join returns to the joiner's session.
pub struct Joined {
    /// The room, to keep.
    pub room: RoomRef,
    /// Members including the joiner.
    pub members: u32,
    /// History to replay, oldest first.
    pub history: Vec<StoredMessage>,
}

/// Users, rooms and settings shared by every loop.
pub struct ChatCore {
    settings: RwLock<Arc<Settings>>,
    generation: AtomicU64,
    max_payload: AtomicU32,
    users: Mutex<HashMap<Arc<str>, ConnId>>,
    rooms: Mutex<HashMap<Arc<str>, RoomRef>>,
    next_id: AtomicU64,
    going_away: Mutex<(String, u32)>,
}

impl ChatCore {
    /// A core with no users or rooms.
    pub fn new(settings: Settings) -> ChatCore {
        ChatCore {
            max_payload: AtomicU32::new(settings.limits.max_payload),
            settings: RwLock::new(Arc::new(settings)),
            generation: AtomicU64::new(0),
            users: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            going_away: Mutex::new(("server shutting down".to_string(), 0)),
        }
    }

    /// What clients are told when the server goes away: a reason and a
    /// reconnect hint in milliseconds (0: none).
    pub fn going_away(&self) -> (String, u32) {
        lock(&self.going_away).clone()
    }

    /// Sets what clients are told when the server goes away.
    pub fn set_going_away(&self, reason: &str, retry_after_ms: u32) {
        *lock(&self.going_away) = (reason.to_string(), retry_after_ms);
    }

    /// The current settings.
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Bumped by every reload: sessions compare it to refresh their copy.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Largest frame payload now (read on every input batch, so atomic).
    pub fn max_payload(&self) -> u32 {
        self.max_payload.load(Ordering::Relaxed)
    }

    /// Applies new settings to every session from its next frame on.
    pub fn reload(&self, settings: Settings) {
        self.max_payload.store(settings.limits.max_payload, Ordering::Relaxed);
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Claims a nickname for a connection.
    pub fn login(&self, nick: &str, id: ConnId) -> Result<Arc<str>, ErrorCode> {
        let mut users = lock(&self.users);
        if users.contains_key(nick) {
            return Err(ErrorCode::NicknameTaken);
        }
        let nick: Arc<str> = Arc::from(nick);
        users.insert(nick.clone(), id);
        Ok(nick)
    }

    /// Releases a nickname (only if `id` still holds it).
    pub fn logout(&self, nick: &str, id: ConnId) {
        let mut users = lock(&self.users);
        if users.get(nick) == Some(&id) {
            users.remove(nick);
        }
    }

    /// The connection a user is logged in on.
    pub fn user(&self, nick: &str) -> Option<ConnId> {
        lock(&self.users).get(nick).copied()
    }

    /// Number of logged-in users.
    pub fn user_count(&self) -> usize {
        lock(&self.users).len()
    }

    /// A new message id and timestamp.
    fn stamp(&self) -> (u64, u64) {
        (self.next_id.fetch_add(1, Ordering::Relaxed), now_us())
    }

    /// The room called `name`, created if the server has room for it.
    fn room_or_create(
        &self,
        rooms: &mut HashMap<Arc<str>, RoomRef>,
        name: &str,
    ) -> Result<RoomRef, ErrorCode> {
        if let Some(room) = rooms.get(name) {
            return Ok(room.clone());
        }
        if rooms.len() >= self.settings().max_rooms {
            return Err(ErrorCode::TooManyRooms);
        }
        let name: Arc<str> = Arc::from(name);
        let room = Arc::new(Mutex::new(Room {
            name: name.clone(),
            ids: Vec::new(),
            nicks: Vec::new(),
            history: VecDeque::new(),
            waiters: Vec::new(),
        }));
        rooms.insert(name, room.clone());
        Ok(room)
    }

    /// Adds a member to a room, creating it, and tells the other members.
    pub fn join(&self, cx: &mut Context<'_>, room_name: &str, nick: &Arc<str>) -> Result<Joined, ErrorCode> {
        let limits = self.settings().limits;
        // Lock order everywhere: the room map, then a room.
        let mut rooms = lock(&self.rooms);
        let room = self.room_or_create(&mut rooms, room_name)?;
        let mut r = lock(&room);
        if r.ids.contains(&cx.id()) {
            return Err(ErrorCode::AlreadyMember);
        }
        if r.ids.len() >= limits.max_members_per_room as usize {
            return Err(ErrorCode::RoomFull);
        }
        if let Some(frame) =
            self.frame(PushRef::Presence { room: room_name, nick, kind: PresenceKind::Joined })
        {
            cx.broadcast(&r.ids, &frame);
        }
        r.ids.push(cx.id());
        r.nicks.push(nick.clone());
        let members = r.ids.len() as u32;
        let skip = r.history.len().saturating_sub(limits.history_len as usize);
        let history = r.history.iter().skip(skip).cloned().collect();
        drop(r);
        drop(rooms);
        Ok(Joined { room, members, history })
    }

    /// Removes the current connection from a room and tells the others.
    pub fn leave(&self, cx: &mut Context<'_>, room_name: &str, nick: &str) -> Result<(), ErrorCode> {
        let id = cx.id();
        let room = self.room(room_name).ok_or(ErrorCode::UnknownRoom)?;
        let mut r = lock(&room);
        let i = r.ids.iter().position(|&m| m == id).ok_or(ErrorCode::NotMember)?;
        r.ids.swap_remove(i);
        r.nicks.swap_remove(i);
        if let Some(frame) = self.frame(PushRef::Presence { room: room_name, nick, kind: PresenceKind::Left })
        {
            cx.broadcast(&r.ids, &frame);
        }
        Ok(())
    }

    /// Posts a message to a room: stamps it, keeps it in history, sends it,
    /// encoded once, to every member but the sender, and wakes the room's
    /// waiters. The room stays locked meanwhile, so history order is
    /// delivery order.
    pub fn post(&self, cx: &mut Context<'_>, room: &RoomRef, from: &Arc<str>, text: &str) -> (u64, u64) {
        let history_len = self.settings().limits.history_len as usize;
        let mut r = lock(room);
        let (id, ts_us) = self.stamp();
        let name = r.name.clone();
        if let Some(frame) =
            self.frame(PushRef::Message { room: &name, id, ts_us, from, text, history: false })
        {
            cx.broadcast_others(&r.ids, &frame);
        }
        if history_len > 0 {
            while r.history.len() >= history_len {
                r.history.pop_front();
            }
            r.history.push_back(StoredMessage { id, ts_us, from: from.clone(), text: Arc::from(text) });
        } else {
            r.history.clear();
        }
        for waiter in r.waiters.drain(..) {
            cx.notify(waiter, id);
        }
        (id, ts_us)
    }

    /// Posts to a room by name, creating it (for senders that are not
    /// members, such as HTTP clients).
    pub fn post_to(
        &self,
        cx: &mut Context<'_>,
        room: &str,
        from: &str,
        text: &str,
    ) -> Result<(u64, u64), ErrorCode> {
        let room = self.room_or_create(&mut lock(&self.rooms), room)?;
        Ok(self.post(cx, &room, &Arc::from(from), text))
    }

    /// Messages of a room's history with an id above `since`, oldest first;
    /// `None` if there is no such room.
    pub fn messages_since(&self, room: &str, since: u64) -> Option<Vec<StoredMessage>> {
        let room = self.room(room)?;
        let r = lock(&room);
        let start = r.history.partition_point(|m| m.id <= since);
        Some(r.history.iter().skip(start).cloned().collect())
    }

    /// Registers `id` to be notified (with the message id) at the room's
    /// next message. False if there is no such room.
    pub fn wait_for_message(&self, room: &str, id: ConnId) -> bool {
        let Some(room) = self.room(room) else { return false };
        let mut r = lock(&room);
        if !r.waiters.contains(&id) {
            r.waiters.push(id);
        }
        true
    }

    /// Cancels [`ChatCore::wait_for_message`].
    pub fn stop_waiting(&self, room: &str, id: ConnId) {
        if let Some(room) = self.room(room) {
            lock(&room).waiters.retain(|&w| w != id);
        }
    }

    /// Sends a direct message to a user.
    pub fn direct(
        &self,
        cx: &mut Context<'_>,
        to: &str,
        from: &str,
        text: &str,
    ) -> Result<(u64, u64), ErrorCode> {
        let target = self.user(to).ok_or(ErrorCode::UnknownUser)?;
        let (id, ts_us) = self.stamp();
        let frame = self.frame(PushRef::Direct { id, ts_us, from, text }).ok_or(ErrorCode::TextTooLong)?;
        cx.send_to(target, frame);
        Ok((id, ts_us))
    }

    /// Every room with its member count, by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let rooms: Vec<RoomRef> = lock(&self.rooms).values().cloned().collect();
        let mut list: Vec<RoomInfo> = rooms
            .iter()
            .map(|r| {
                let r = lock(r);
                RoomInfo { name: r.name.to_string(), members: r.ids.len() as u32 }
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// A room's member nicknames, sorted.
    pub fn who(&self, room: &str) -> Result<Vec<String>, ErrorCode> {
        let room = lock(&self.rooms).get(room).cloned().ok_or(ErrorCode::UnknownRoom)?;
        let mut nicks: Vec<String> = lock(&room).nicks.iter().map(|n| n.to_string()).collect();
        nicks.sort();
        Ok(nicks)
    }

    /// Number of rooms held.
    pub fn room_count(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// A room by name, if it exists.
    pub fn room(&self, name: &str) -> Option<RoomRef> {
        lock(&self.rooms).get(name).cloned()
    }
}

impl ChatCore {
    /// Encodes a push once, to share among recipients: each recipient's
    /// codec frames it (the chat transport puts the 4-byte length before
    /// it). `None` if it would not fit the frame limit, which callers
    /// prevent by checking text lengths first.
    pub fn frame(&self, push: PushRef<'_>) -> Option<Bytes> {
        let len = push.encoded_len();
        if len > self.max_payload() as usize {
            log::error!("a push of {len} bytes does not fit the frame limit");
            return None;
        }
        let mut buf = BytesMut::with_capacity(len);
        push.encode(&mut buf);
        Some(buf.freeze())
    }
}

/// Appends an owned push's frame to the current connection's output.
pub(crate) fn send_push(cx: &mut reactor::FramedContext<'_, '_>, push: &Push) {
    if let Err(e) = cx.send_frame_with(|buf| push.encode(buf)) {
        log::error!("cannot send a push: {e}");
    }
}
