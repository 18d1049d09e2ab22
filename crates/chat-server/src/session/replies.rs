//! Replies in request order: a request is taken now or queued behind a
//! reply that waits for the room log (or the cluster), and the queue is
//! let go as those replies are stored.

use super::*;

impl ChatService {
    /// Answers from the cluster arrived in the mailbox.
    pub(super) fn completed<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session) {
        let done = match &s.mailbox {
            Some(m) => std::mem::take(&mut *crate::core::lock(m)),
            None => return,
        };
        for (seq, completion) in done {
            let Some(i) =
                s.slots.iter().position(|sl| matches!(sl, Slot::Pending { seq: q, .. } if *q == seq))
            else {
                continue;
            };
            let Slot::Pending { request_id, retry, .. } = &mut s.slots[i] else { continue };
            let request_id = *request_id;
            let frame = match completion {
                Completion::Sent(Ok(p)) => {
                    ServerFrame::ok(request_id, OkBody::Sent { id: p.id, ts_us: p.ts_us, offset: p.offset })
                }
                Completion::Sent(Err(code)) => {
                    ServerFrame::error(request_id, code, "the message could not be stored")
                }
                Completion::Login(Ok(nick)) => {
                    s.claiming = None;
                    log::debug!("{} logged in as {nick}", cx.id());
                    s.nick = Some(nick);
                    ServerFrame::ok(request_id, OkBody::Welcome(self.settings.limits))
                }
                Completion::Login(Err(code)) => {
                    let nick = s.claiming.take();
                    let nick = nick.as_deref().unwrap_or("");
                    ServerFrame::error(request_id, code, format!("{nick} is taken"))
                }
                Completion::Reply(Ok(body)) => ServerFrame::ok(request_id, body),
                Completion::Reply(Err((code, message))) => ServerFrame::error(request_id, code, &message),
                Completion::Page(_) => {
                    ServerFrame::error(request_id, ErrorCode::Internal, "unexpected answer")
                }
                Completion::Retry(prefetched) => {
                    let retry = retry.take();
                    s.slots.remove(i);
                    if let (Some(ClientFrame { request: Request::Join { room, resume }, .. }), Some(nick)) =
                        (retry, s.nick.clone())
                    {
                        self.join(cx, s, request_id, &room, resume, &nick, prefetched);
                    }
                    continue;
                }
            };
            s.slots[i] = Slot::Ready(frame);
        }
        self.flush(cx, s);
    }

    /// Sends the replies ready at the front, then runs the requests that
    /// waited for them.
    pub(super) fn flush<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session) {
        loop {
            while let Some(Slot::Ready(_)) = s.slots.front() {
                if let Some(Slot::Ready(frame)) = s.slots.pop_front() {
                    reply(cx, frame);
                }
            }
            let Some(next) = s.deferred.front() else { break };
            let is_say = matches!(next.request, Request::Say { .. });
            let may_run = s.slots.is_empty() || (is_say && s.slots.iter().all(Slot::lets_say_through));
            if !may_run || !cx.is_open() {
                break;
            }
            let Some(frame) = s.deferred.pop_front() else { break };
            let request = frame.request.as_borrowed();
            self.request(cx, s, frame.request_id, request);
        }
        // An idle connection keeps no queue memory: a burst (a login and a
        // join waiting for Redis) leaves none behind.
        if s.slots.is_empty() && s.slots.capacity() > 0 {
            s.slots = VecDeque::new();
        }
        if s.deferred.is_empty() && s.deferred.capacity() > 0 {
            s.deferred = VecDeque::new();
        }
    }

    /// The log reported message `seq` stored (or not): its reply and the
    /// ones queued behind it leave, then the requests that waited run.
    pub(super) fn stored<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session, seq: u64, ok: bool) {
        for slot in s.slots.iter_mut() {
            if let Slot::Stored { seq: q, request_id, body } = slot {
                if *q == seq {
                    let frame = if ok {
                        ServerFrame::ok(*request_id, body.clone())
                    } else {
                        ServerFrame::error(
                            *request_id,
                            ErrorCode::StoreFailed,
                            "the message could not be stored",
                        )
                    };
                    *slot = Slot::Ready(frame);
                    break;
                }
            }
        }
        self.flush(cx, s);
    }

    /// Answers in request order: now, or behind the replies still waiting.
    pub(super) fn answer<'a>(&self, cx: &mut impl Door<'a>, s: &mut Session, frame: ServerFrame) {
        if s.slots.is_empty() {
            reply(cx, frame);
        } else {
            s.slots.push_back(Slot::Ready(frame));
        }
    }

    /// Takes a decoded request: handled now, or queued behind a reply that
    /// waits for the log.
    pub(super) fn take<'a>(&mut self, cx: &mut impl Door<'a>, s: &mut Session, frame: ClientFrameRef<'_>) {
        let is_say = matches!(frame.request, RequestRef::Say { .. });
        if matches!(frame.request, RequestRef::Pong { .. }) {
            return; // answers our ping: no reply, nothing to order
        }
        let may_pass = is_say && s.slots.iter().all(Slot::lets_say_through);
        if !s.deferred.is_empty() || (!s.slots.is_empty() && !may_pass) {
            if s.waiting() >= MAX_WAITING {
                error_push(cx, ErrorCode::RateLimited, "too many requests waiting for the room log");
                return cx.close_with(CloseReason::Protocol("too many requests in flight".into()));
            }
            s.deferred.push_back(frame.into_owned());
            return;
        }
        self.request(cx, s, frame.request_id, frame.request);
    }
}
