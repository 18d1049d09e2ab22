//! Rooms in memory: loading them from the log, joining and leaving (with
//! presence or member counts), and what a room list or `Who` shows.

use super::*;

impl ChatCore {
    /// The room called `name`, loaded from the log if it is not in memory.
    /// `may_create`: a room neither in memory nor in the log is created
    /// (else `UnknownRoom`). The second value says whether it was created.
    pub fn room_for(&self, name: &str, may_create: bool) -> Result<(RoomRef, bool), ErrorCode> {
        if let Some(room) = lock(&self.rooms).get(name) {
            return Ok((room.clone(), false));
        }
        // Read the log without holding the room map.
        let meta = self.log.room(name).map_err(|e| {
            log::error!("room log: cannot read room {name}: {e}");
            ErrorCode::StoreFailed
        })?;
        if meta.is_none() && !may_create {
            return Err(ErrorCode::UnknownRoom);
        }
        let settings = self.settings();
        let tail = match meta {
            Some(_) => self.log.read_last(name, settings.limits.history_len as usize).map_err(|e| {
                log::error!("room log: cannot read room {name}: {e}");
                ErrorCode::StoreFailed
            })?,
            None => Vec::new(),
        };
        let mut rooms = lock(&self.rooms);
        if let Some(room) = rooms.get(name) {
            return Ok((room.clone(), false));
        }
        if rooms.len() >= settings.max_rooms {
            return Err(ErrorCode::TooManyRooms);
        }
        let name: Arc<str> = Arc::from(name);
        let mut st = RoomState::new(name.clone(), meta, new_epoch(), tail, self.delivery.loops());
        st.stored = meta.is_some();
        let room = Arc::new(Room { name: name.clone(), state: Mutex::new(st) });
        rooms.insert(name, room.clone());
        Ok((room, meta.is_none()))
    }

    /// Drops a room from memory if nothing keeps it there.
    pub fn release(&self, room: &RoomRef) {
        let mut rooms = lock(&self.rooms);
        let mut st = lock(&room.state);
        if st.is_idle() && !st.evicted {
            st.evicted = true;
            rooms.remove(&room.name);
            drop(st);
            drop(rooms);
            self.cluster_evicted(room);
        }
    }

    /// Adds the current connection to a room (loaded or created), tells
    /// the other members, and returns what the joiner gets: exactly the
    /// messages after `resume` when they can be recovered, else the recent
    /// history.
    pub fn join(
        &self,
        cx: &mut Context<'_>,
        name: &str,
        nick: &Arc<str>,
        resume: Option<Position>,
        may_create: bool,
    ) -> Result<(Joined, bool), ErrorCode> {
        let settings = self.settings();
        let l = cx.loop_index();
        loop {
            let (room, created) = self.room_for(name, may_create)?;
            let mut st = lock(&room.state);
            if st.evicted {
                continue;
            }
            if st.is_member(cx.id()) {
                return Err(ErrorCode::AlreadyMember);
            }
            if st.member_count() >= settings.limits.max_members_per_room as usize {
                drop(st);
                self.release(&room);
                return Err(ErrorCode::RoomFull);
            }
            // This loop's members get what came before the joiner first.
            deliver(cx, &mut st, l);
            if st.member_count() < settings.presence_max_members {
                let push = PushRef::Presence { room: name, nick, kind: PresenceKind::Joined };
                if let Some(frame) = self.payload(push) {
                    st.push(Event { payload: frame, skip: None });
                    deliver(cx, &mut st, l);
                    self.delivery.schedule(&room, &mut st, &mut Waker::Context(cx));
                }
            } else {
                self.count_changed(&room, &mut st);
            }
            st.add_member(cx.id(), nick.clone());
            let history =
                match st.history(resume, settings.limits.history_len as usize, settings.recover_limit) {
                    HistoryPlan::Tail { entries, recovered } => Some((entries, recovered)),
                    HistoryPlan::FromLog { after, limit } => match self.log.read(name, after, limit) {
                        Ok(list) => Some((list.into_iter().map(Arc::new).collect(), true)),
                        Err(e) => {
                            log::error!("room log: cannot read room {name}: {e}");
                            None
                        }
                    },
                };
            let (history, recovered) = match history {
                Some(h) => h,
                None => match st.history(None, settings.limits.history_len as usize, 0) {
                    HistoryPlan::Tail { entries, .. } => (entries, false),
                    HistoryPlan::FromLog { .. } => (Vec::new(), false),
                },
            };
            let joined = Joined {
                members: st.member_count() as u32,
                epoch: st.epoch(),
                last_offset: st.last_offset(),
                recovered,
                history,
                room: room.clone(),
            };
            return Ok((joined, created));
        }
    }

    /// Removes the current connection from a room and tells the others.
    /// Returns the room's events the leaver has yet to get (published while
    /// it was a member): the caller sends them to it before its reply, since
    /// sends by id leave after a callback's own replies.
    pub fn leave(&self, cx: &mut Context<'_>, room: &RoomRef) -> Result<Vec<Bytes>, ErrorCode> {
        let settings = self.settings();
        let l = cx.loop_index();
        let me = cx.id();
        let mut st = lock(&room.state);
        if !st.is_member(me) {
            return Err(ErrorCode::NotMember);
        }
        let mine = deliver_all_but(cx, &mut st, l, me);
        let nick = st.remove_member(me).ok_or(ErrorCode::NotMember)?;
        if st.member_count() < settings.presence_max_members {
            let push = PushRef::Presence { room: &room.name, nick: &nick, kind: PresenceKind::Left };
            if let Some(frame) = self.payload(push) {
                st.push(Event { payload: frame, skip: None });
                deliver(cx, &mut st, l);
                self.delivery.schedule(room, &mut st, &mut Waker::Context(cx));
            }
        } else {
            self.count_changed(room, &mut st);
        }
        drop(st);
        self.release(room);
        Ok(mine)
    }

    /// Marks a room's member count for the next count push.
    pub(crate) fn count_changed(&self, room: &RoomRef, st: &mut RoomState) {
        if !st.count_dirty {
            st.count_dirty = true;
            lock(&self.counts).push(room.clone());
        }
    }

    /// Sends the member count of every room whose count changed (once a
    /// second, from the ticker thread).
    pub(super) fn push_counts(&self) {
        let rooms = std::mem::take(&mut *lock(&self.counts));
        let handle = self.delivery.handle();
        for room in rooms {
            let mut st = lock(&room.state);
            if !st.count_dirty {
                continue;
            }
            st.count_dirty = false;
            let members = u32::try_from(st.total_members()).unwrap_or(u32::MAX);
            let push = PushRef::MemberCount { room: &room.name, members };
            if let Some(frame) = self.payload(push) {
                st.push(Event { payload: frame, skip: None });
                self.delivery.schedule(&room, &mut st, &mut Waker::Handle(handle));
            }
        }
    }

    /// Delivers the rooms queued for this loop (from `on_loop_notify`).
    pub fn deliver_queued(&self, cx: &mut Context<'_>) {
        self.delivery.deliver_queued(cx);
    }

    /// Rooms in memory (with their member counts) and in the log, by name.
    pub fn rooms(&self) -> (u32, Vec<RoomInfo>) {
        let resident: Vec<RoomRef> = lock(&self.rooms).values().cloned().collect();
        let mut list: Vec<RoomInfo> = resident
            .iter()
            .map(|r| RoomInfo { name: r.name.to_string(), members: lock(&r.state).member_count() as u32 })
            .collect();
        let mut total = list.len();
        match self.log.room_names(MAX_LISTED) {
            Ok((stored, names)) => {
                let read = names.len();
                let mut extra = 0;
                for name in names {
                    if !list.iter().any(|r| r.name == name) {
                        list.push(RoomInfo { name, members: 0 });
                        extra += 1;
                    }
                }
                total += extra + stored.saturating_sub(read);
            }
            Err(e) => log::error!("room log: cannot list rooms: {e}"),
        }
        list.sort_by(|a, b| a.name.cmp(&b.name));
        (u32::try_from(total).unwrap_or(u32::MAX), list)
    }

    /// A room's member nicknames, sorted.
    pub fn who(&self, room: &str) -> Result<Vec<String>, ErrorCode> {
        let resident = lock(&self.rooms).get(room).cloned();
        match resident {
            Some(r) => {
                let mut nicks: Vec<String> = lock(&r.state).nicks().map(|n| n.to_string()).collect();
                nicks.sort();
                Ok(nicks)
            }
            None if self.room_exists(room) => Ok(Vec::new()),
            None => Err(ErrorCode::UnknownRoom),
        }
    }

    /// True if the room is in memory or in the log.
    pub fn room_exists(&self, room: &str) -> bool {
        lock(&self.rooms).contains_key(room) || matches!(self.log.room(room), Ok(Some(_)))
    }

    /// Number of rooms in memory.
    pub fn room_count(&self) -> usize {
        lock(&self.rooms).len()
    }
}
