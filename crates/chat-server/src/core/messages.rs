//! A room's messages: posting (offsets, the log, publication as the
//! fsync policy says), what the log writer reports, reading them back
//! (long polls, the HTTP door), and direct messages.

use super::*;

impl ChatCore {
    /// Posts a message to a room: stamps it, hands it to the log and, as
    /// the fsync policy says, publishes it now (delivered to this loop's
    /// members at once, the other loops told) or once it is durable (then
    /// `ack` is notified). `sender`: the member that gets no echo.
    pub fn post(
        &self,
        cx: &mut Context<'_>,
        room: &RoomRef,
        from: &Arc<str>,
        text: &str,
        sender: Option<ConnId>,
        ack: Option<AckTo>,
    ) -> Result<Posted, ErrorCode> {
        let writer = self.writer.get().ok_or(ErrorCode::StoreFailed)?;
        let settings = self.settings();
        let mut st = lock(&room.state);
        if st.evicted {
            return Err(ErrorCode::UnknownRoom);
        }
        let (id, ts_us) = self.stamp();
        let offset = st.next_offset();
        let entry = Arc::new(Entry { offset, id, ts_us, from: from.clone(), text: Arc::from(text) });
        let append = Append { room: room.name.clone(), epoch: st.epoch(), entry: entry.clone() };
        let durable_first = self.policy == FsyncPolicy::Always;
        let token = AppendToken { room: room.clone(), ack: if durable_first { ack } else { None } };
        if let Err(e) = writer.append(append, token) {
            log::warn!("room {}: message {id} refused: {e:?}", room.name);
            return Err(ErrorCode::StoreFailed);
        }
        st.wrote();
        st.stored = true;
        if durable_first {
            st.hold(entry, sender);
            return Ok(Posted { id, ts_us, offset, stored: false });
        }
        self.publish_entry(room, &mut st, entry, sender, &settings, &mut Waker::Context(cx));
        deliver(cx, &mut st, cx.loop_index());
        Ok(Posted { id, ts_us, offset, stored: true })
    }

    /// Publishes a stored message: the room's tail, stream and long polls.
    pub(crate) fn publish_entry(
        &self,
        room: &RoomRef,
        st: &mut RoomState,
        entry: Arc<Entry>,
        sender: Option<ConnId>,
        settings: &Settings,
        waker: &mut Waker<'_, '_>,
    ) {
        let push = PushRef::Message {
            room: &room.name,
            id: entry.id,
            ts_us: entry.ts_us,
            offset: entry.offset,
            from: &entry.from,
            text: &entry.text,
            history: false,
        };
        let Some(frame) = self.payload(push) else { return };
        let offset = entry.offset;
        let waiters = st.publish_message(
            entry,
            frame,
            sender,
            settings.limits.history_len as usize,
            settings.tail_bytes,
        );
        st.set_trimmed(offset.saturating_sub(settings.retain_messages));
        self.delivery.schedule(room, st, waker);
        for w in waiters {
            self.delivery.notify(waker, w, offset);
        }
    }

    /// The writer finished a batch (on its thread).
    pub(super) fn committed(&self, c: Committed<AppendToken>) {
        let settings = self.settings();
        let handle = self.delivery.handle();
        let ok = c.result.is_ok();
        let mut touched: Vec<RoomRef> = Vec::new();
        for (append, token) in c.appends {
            let room = token.room;
            {
                let mut st = lock(&room.state);
                st.written();
                if self.policy == FsyncPolicy::Always {
                    if let Some((entry, sender)) = st.release(append.entry.offset) {
                        if ok {
                            let waker = &mut Waker::Handle(handle);
                            self.publish_entry(&room, &mut st, entry, sender, &settings, waker);
                        }
                    }
                }
            }
            if let Some(ack) = token.ack {
                let failed = if ok { 0 } else { ACK_FAILED };
                self.delivery.notify(&mut Waker::Handle(handle), ack.conn, ack.token | ACK | failed);
            }
            if !touched.iter().any(|r| Arc::ptr_eq(r, &room)) {
                touched.push(room);
            }
        }
        for room in touched {
            self.release(&room);
        }
    }

    /// Looks up a room for posting by name (for senders that are not
    /// members, such as HTTP clients), creating it.
    pub fn post_to(
        &self,
        cx: &mut Context<'_>,
        room: &str,
        from: &str,
        text: &str,
        ack: Option<AckTo>,
    ) -> Result<Posted, ErrorCode> {
        let from: Arc<str> = Arc::from(from);
        loop {
            let (room, _) = self.room_for(room, true)?;
            match self.post(cx, &room, &from, text, None, ack) {
                Err(ErrorCode::UnknownRoom) => continue, // it left memory meanwhile
                r => {
                    self.release(&room);
                    return r;
                }
            }
        }
    }

    /// Messages of a room after offset `after` (at most `limit`), with the
    /// room's position; `None` if there is no such room.
    pub fn messages_after(&self, room: &str, after: u64, limit: usize) -> Result<Option<Page>, ErrorCode> {
        let resident = lock(&self.rooms).get(room).cloned();
        if self.cluster().is_some() {
            // In a cluster only the tail is at hand; the log is read off
            // the loop ([`ChatCore::cluster_read`]).
            let st = resident.as_ref().map(|r| lock(&r.state));
            return match st
                .as_ref()
                .filter(|st| !st.is_loading())
                .and_then(|st| st.tail_after(after, limit).map(|m| (st.epoch(), st.last_offset(), m)))
            {
                Some((epoch, last_offset, messages)) => Ok(Some(Page { epoch, last_offset, messages })),
                None => Err(ErrorCode::StoreFailed),
            };
        }
        if let Some(r) = resident {
            let st = lock(&r.state);
            if let Some(messages) = st.tail_after(after, limit) {
                return Ok(Some(Page { epoch: st.epoch(), last_offset: st.last_offset(), messages }));
            }
            let (epoch, last_offset) = (st.epoch(), st.last_offset());
            drop(st);
            let messages = self.read_log(room, after, limit)?;
            return Ok(Some(Page { epoch, last_offset, messages }));
        }
        let Some(meta) = self.log.room(room).map_err(|_| ErrorCode::StoreFailed)? else { return Ok(None) };
        let messages = self.read_log(room, after, limit)?;
        Ok(Some(Page { epoch: meta.epoch, last_offset: meta.last_offset, messages }))
    }

    pub(super) fn read_log(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Arc<Entry>>, ErrorCode> {
        match self.log.read(room, after, limit) {
            Ok(list) => Ok(list.into_iter().map(Arc::new).collect()),
            Err(e) => {
                log::error!("room log: cannot read room {room}: {e}");
                Err(ErrorCode::StoreFailed)
            }
        }
    }

    /// Registers `id` to be notified (with the offset) at the room's next
    /// message. False if there is no such room.
    pub fn wait_for_message(&self, room: &str, id: ConnId) -> Result<bool, ErrorCode> {
        if self.cluster().is_some() {
            // A room this node holds (loading one is the cluster's
            // `cluster_watch`).
            let resident = lock(&self.rooms).get(room).cloned();
            let Some(r) = resident else { return Ok(false) };
            let mut st = lock(&r.state);
            if st.evicted || st.is_loading() {
                return Ok(false);
            }
            st.wait(id);
            return Ok(true);
        }
        let (room, _) = match self.room_for(room, false) {
            Ok(r) => r,
            Err(ErrorCode::UnknownRoom) => return Ok(false),
            Err(e) => return Err(e),
        };
        let mut st = lock(&room.state);
        if st.evicted {
            drop(st);
            return self.wait_for_message(&room.name, id);
        }
        st.wait(id);
        Ok(true)
    }

    /// Cancels [`ChatCore::wait_for_message`].
    pub fn stop_waiting(&self, room: &str, id: ConnId) {
        let resident = lock(&self.rooms).get(room).cloned();
        if let Some(room) = resident {
            lock(&room.state).stop_waiting(id);
            self.release(&room);
        }
    }

    /// Sends a direct message to a user (never stored).
    pub fn direct(
        &self,
        cx: &mut Context<'_>,
        to: &str,
        from: &str,
        text: &str,
    ) -> Result<Posted, ErrorCode> {
        let target = self.user(to).ok_or(ErrorCode::UnknownUser)?;
        let (id, ts_us) = self.stamp();
        let payload =
            self.payload(PushRef::Direct { id, ts_us, from, text }).ok_or(ErrorCode::TextTooLong)?;
        cx.send_to(target, payload);
        Ok(Posted { id, ts_us, offset: 0, stored: true })
    }
}
