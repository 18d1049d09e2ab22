//! What each request does: log in, join (with resume), leave, say, direct,
//! the lists. Replies go through `replies.rs`, in request order.

use super::*;

impl ChatService {
    /// The leading items of a list reply that fit one frame, given each
    /// item's encoded size; the reply's total tells the client of the rest.
    pub(super) fn fitting<T>(&self, all: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<T> {
        let budget = self.settings.limits.max_payload as usize;
        let mut used = LIST_REPLY_OVERHEAD;
        all.into_iter()
            .take_while(|item| {
                used += size(item);
                used <= budget
            })
            .collect()
    }

    pub(super) fn members(&self, all: Vec<String>) -> OkBody {
        let total = all.len() as u32;
        let nicks = self.fitting(all, |n| 1 + n.len());
        OkBody::Members { total, nicks }
    }

    pub(super) fn list_rooms(&self) -> OkBody {
        let (total, all) = self.core.rooms();
        let rooms = self.fitting(all, |r| 1 + r.name.len() + 4);
        OkBody::Rooms { total, rooms }
    }

    pub(super) fn direct<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        to: &str,
        text: &str,
        nick: &str,
    ) -> Result<OkBody, (ErrorCode, String)> {
        self.check_message(cx, s, text)?;
        let p = self.core.direct(cx, to, nick, text).map_err(|c| (c, format!("no user {to}")))?;
        Ok(OkBody::Sent { id: p.id, ts_us: p.ts_us, offset: 0 })
    }

    pub(super) fn say<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        room: &str,
        text: &str,
        nick: &Arc<str>,
    ) {
        if let Some(cluster) = self.core.cluster().cloned() {
            let room_ref = s.rooms.iter().find(|m| &*m.name == room).map(|m| m.room.clone());
            let result = match room_ref {
                None => Err((ErrorCode::NotMember, format!("not in {room}"))),
                Some(r) => self.check_message(cx, s, text).and_then(|()| {
                    let reply = s.reply_to(cx.id());
                    self.core
                        .cluster_post(&cluster, Some(&r), room, nick, text, Some(cx.id()), reply.clone())
                        .map(|()| reply)
                        .map_err(|c| (c, format!("cannot post to {room}")))
                }),
            };
            return match result {
                Ok(reply) => self.pending(s, request_id, &reply, true, None),
                Err((code, message)) => self.answer(cx, s, ServerFrame::error(request_id, code, &message)),
            };
        }
        let result = match s.rooms.iter().find(|m| &*m.name == room).map(|m| m.room.clone()) {
            None => Err(self.not_in(room)),
            Some(room_ref) => self.check_message(cx, s, text).and_then(|()| {
                s.next_seq += 1;
                let me = cx.id();
                let ack = AckTo { conn: me, token: s.next_seq };
                self.core
                    .post(cx, &room_ref, nick, text, Some(me), Some(ack))
                    .map_err(|c| (c, format!("cannot post to {room}")))
            }),
        };
        match result {
            Ok(p) if !p.stored => s.slots.push_back(Slot::Stored {
                seq: s.next_seq,
                request_id,
                body: OkBody::Sent { id: p.id, ts_us: p.ts_us, offset: p.offset },
            }),
            Ok(p) => {
                let body = OkBody::Sent { id: p.id, ts_us: p.ts_us, offset: p.offset };
                self.answer(cx, s, ServerFrame::ok(request_id, body));
            }
            Err((code, message)) => self.answer(cx, s, ServerFrame::error(request_id, code, &message)),
        }
    }

    pub(super) fn check_message<'a>(
        &self,
        cx: &impl Door<'a>,
        s: &mut Session,
        text: &str,
    ) -> Result<(), (ErrorCode, String)> {
        let max = self.settings.limits.max_text_len();
        if text.len() > max {
            return Err((ErrorCode::TextTooLong, format!("text of {} bytes, at most {max}", text.len())));
        }
        if !self.take_token(s, cx.now()) {
            let rate = self.settings.limits.rate_per_sec;
            return Err((
                ErrorCode::RateLimited,
                format!("over {rate} messages per second; message dropped"),
            ));
        }
        Ok(())
    }

    pub(super) fn leave<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        room: &str,
    ) -> Result<OkBody, (ErrorCode, String)> {
        let Some(i) = s.rooms.iter().position(|m| &*m.name == room) else { return Err(self.not_in(room)) };
        let m = s.rooms.swap_remove(i);
        // The room's events the leaver has yet to get go before the reply.
        let missed = match self.core.cluster().cloned() {
            Some(c) => self.core.cluster_leave(&c, cx, &m.room),
            None => self.core.leave(cx, &m.room),
        }
        .map_err(|c| (c, format!("cannot leave {room}")))?;
        for payload in missed {
            cx.send_payload(|buf| buf.extend_from_slice(&payload));
        }
        Ok(OkBody::Empty)
    }

    /// The error for a room the session is not in: it may not exist.
    pub(super) fn not_in(&self, room: &str) -> (ErrorCode, String) {
        // In a cluster, whether the room exists is Redis' to say: not
        // worth a round trip for an error.
        if self.core.cluster().is_some() || self.core.room_exists(room) {
            (ErrorCode::NotMember, format!("not in {room}"))
        } else {
            (ErrorCode::UnknownRoom, format!("no room {room}"))
        }
    }

    /// Sends a join's reply and history, and keeps the room.
    pub(super) fn joined<'a>(
        &self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        room: &str,
        joined: Joined,
    ) {
        {
            {
                let body = OkBody::Joined {
                    members: joined.members,
                    history: joined.history.len() as u32,
                    epoch: joined.epoch,
                    last_offset: joined.last_offset,
                    recovered: joined.recovered,
                };
                reply(cx, ServerFrame::ok(request_id, body));
                for m in &joined.history {
                    let push = PushRef::Message {
                        room,
                        id: m.id,
                        ts_us: m.ts_us,
                        offset: m.offset,
                        from: &m.from,
                        text: &m.text,
                        history: true,
                    };
                    cx.send_payload(|buf| push.encode(buf));
                }
                let name = joined.room.name.clone();
                s.rooms.push(Membership { name, room: joined.room });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn join<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        room: &str,
        resume: Option<Position>,
        nick: &Arc<str>,
        prefetched: Option<Vec<Arc<Entry>>>,
    ) {
        if s.rooms.iter().any(|m| &*m.name == room) {
            return reply_err(cx, request_id, ErrorCode::AlreadyMember, &format!("already in {room}"));
        }
        if s.rooms.len() >= self.settings.limits.max_rooms_per_user as usize {
            let max = self.settings.limits.max_rooms_per_user;
            return reply_err(
                cx,
                request_id,
                ErrorCode::TooManyRooms,
                &format!("at most {max} rooms per user"),
            );
        }
        let may_create = self.may_create(s, cx.now());
        if let Some(cluster) = self.core.cluster().cloned() {
            let reply = s.reply_to(cx.id());
            let retry = ClientFrame { request_id, request: Request::Join { room: room.to_string(), resume } };
            let joining = self.core.cluster_join(
                &cluster,
                cx,
                room,
                nick,
                resume,
                may_create,
                prefetched,
                reply.clone(),
            );
            return match joining {
                Ok((ClusterJoin::Done(joined), created)) => {
                    if created {
                        s.created += 1;
                    }
                    self.joined(cx, s, request_id, room, joined);
                }
                Ok((ClusterJoin::Wait, created)) => {
                    if created {
                        s.created += 1;
                    }
                    self.pending(s, request_id, &reply, false, Some(retry));
                }
                Err(code) => reply_err(cx, request_id, code, &format!("cannot join {room}")),
            };
        }
        match self.core.join(cx, room, nick, resume, may_create) {
            Ok((joined, created)) => {
                if created {
                    s.created += 1;
                }
                self.joined(cx, s, request_id, room, joined);
            }
            Err(ErrorCode::UnknownRoom) if !may_create => {
                let max = self.settings.room_creations_per_minute;
                reply_err(
                    cx,
                    request_id,
                    ErrorCode::TooManyRooms,
                    &format!("at most {max} new rooms per minute"),
                );
            }
            Err(code) => reply_err(cx, request_id, code, &format!("cannot join {room}")),
        }
    }

    pub(super) fn login<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        nick: &str,
        token: Option<&str>,
    ) -> Result<OkBody, (ErrorCode, String)> {
        let ip = cx.peer_addr().map(|a| a.ip());
        let needs_check = self.settings.token.is_some() || token.is_some() || s.preauth.is_some();
        if needs_check {
            if let Err(ms) = self.core.login_allowed(ip) {
                return Err((
                    ErrorCode::RateLimited,
                    format!("too many failed logins; retry in {} s", ms.div_ceil(1000)),
                ));
            }
        }
        // A session credential, in the token or from the WebSocket
        // handshake (cookie or Authorization), speaks as its nickname.
        let credential = token.filter(|t| crate::core::is_credential(t)).or(s.preauth.as_deref());
        let by_session = credential.map(|c| self.core.login_session(cx, nick, c));
        let nick = match by_session {
            Some(Ok(nick)) => nick,
            // A credential given as the token that names no session of this
            // nickname is a wrong token (unless it is the shared one).
            Some(Err(_))
                if token.is_some_and(crate::core::is_credential)
                    && self.settings.token.as_deref() != token =>
            {
                self.core.login_failed(ip);
                return Err((ErrorCode::BadToken, "no such session for this nickname".into()));
            }
            _ => {
                if let Some(expected) = &self.settings.token {
                    if token != Some(expected.as_str()) {
                        self.core.login_failed(ip);
                        return Err((ErrorCode::BadToken, "wrong or missing token".into()));
                    }
                }
                self.core.login(nick, cx.id()).map_err(|c| (c, format!("{nick} is taken")))?
            }
        };
        log::debug!("{} logged in as {nick}", cx.id());
        s.nick = Some(nick);
        Ok(OkBody::Welcome(self.settings.limits))
    }

    /// A login on a node of a cluster: the nickname is claimed on this
    /// node's identity table, then across the cluster (the answer comes
    /// when Redis has said). A session credential attaches at once: its
    /// nickname was claimed across the cluster when the session opened.
    pub(super) fn cluster_login<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        cluster: &crate::cluster::Cluster,
        nick: &str,
        token: Option<&str>,
    ) {
        let credential = token.filter(|t| crate::core::is_credential(t)).or(s.preauth.as_deref());
        if credential.is_some() {
            let frame = match self.login(cx, s, nick, token) {
                Ok(body) => ServerFrame::ok(request_id, body),
                Err((code, message)) => ServerFrame::error(request_id, code, &message),
            };
            return self.answer(cx, s, frame);
        }
        if let Some(expected) = &self.settings.token {
            if token != Some(expected.as_str()) {
                self.core.login_failed(cx.peer_addr().map(|a| a.ip()));
                return reply_err(cx, request_id, ErrorCode::BadToken, "wrong or missing token");
            }
        }
        let reply = s.reply_to(cx.id());
        match self.core.cluster_login(cluster, nick, reply.clone()) {
            Ok(()) => {
                s.claiming = Some(Arc::from(nick));
                self.pending(s, request_id, &reply, false, None);
            }
            Err(code) => reply_err(cx, request_id, code, &format!("{nick} is taken")),
        }
    }

    /// Queues a slot for a request whose answer comes from the cluster.
    pub(super) fn pending(
        &self,
        s: &mut Session,
        request_id: u32,
        reply: &ReplyTo,
        say: bool,
        retry: Option<ClientFrame>,
    ) {
        s.slots.push_back(Slot::Pending { seq: reply.seq, request_id, say, retry });
    }

    pub(super) fn request<'a>(
        &mut self,
        cx: &mut impl Door<'a>,
        s: &mut Session,
        request_id: u32,
        req: RequestRef<'_>,
    ) {
        let result = match (req, &s.nick) {
            (RequestRef::Ping { nonce }, _) => Ok(OkBody::Pong { nonce }),
            (RequestRef::Pong { .. }, _) => return,
            (RequestRef::Login { nick, token, .. }, None) => match self.core.cluster().cloned() {
                Some(c) => return self.cluster_login(cx, s, request_id, &c, nick, token),
                None => self.login(cx, s, nick, token),
            },
            (RequestRef::Login { .. }, Some(_)) => {
                Err((ErrorCode::AlreadyLoggedIn, "already logged in".into()))
            }
            (_, None) => Err((ErrorCode::NotLoggedIn, "log in first".into())),
            (RequestRef::Join { room, resume }, Some(nick)) => {
                let nick = nick.clone();
                return self.join(cx, s, request_id, room, resume, &nick, None);
            }
            (RequestRef::Leave { room }, Some(_)) => self.leave(cx, s, room),
            (RequestRef::Say { room, text }, Some(nick)) => {
                let nick = nick.clone();
                return self.say(cx, s, request_id, room, text, &nick);
            }
            (RequestRef::Direct { to, text }, Some(nick)) => {
                let nick = nick.clone();
                if let Some(c) = self.core.cluster().cloned() {
                    if let Err((code, message)) = self.check_message(cx, s, text) {
                        return self.answer(cx, s, ServerFrame::error(request_id, code, &message));
                    }
                    let reply = s.reply_to(cx.id());
                    self.pending(s, request_id, &reply, false, None);
                    return self.core.cluster_direct(&c, to, &nick, text, reply);
                }
                self.direct(cx, s, to, text, &nick)
            }
            (RequestRef::ListRooms, Some(_)) => match self.core.cluster().cloned() {
                Some(c) => {
                    let reply = s.reply_to(cx.id());
                    self.pending(s, request_id, &reply, false, None);
                    return self.core.cluster_rooms(&c, reply);
                }
                None => Ok(self.list_rooms()),
            },
            (RequestRef::Who { room }, Some(_)) => match self.core.cluster().cloned() {
                Some(c) => {
                    let reply = s.reply_to(cx.id());
                    self.pending(s, request_id, &reply, false, None);
                    return self.core.cluster_who(&c, room, reply);
                }
                None => match self.core.who(room) {
                    Ok(nicks) => Ok(self.members(nicks)),
                    Err(code) => Err((code, format!("no room {room}"))),
                },
            },
        };
        let frame = match result {
            Ok(body) => ServerFrame::ok(request_id, body),
            Err((code, message)) => ServerFrame::error(request_id, code, &message),
        };
        self.answer(cx, s, frame);
    }
}
