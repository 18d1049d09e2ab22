//! One storm client without I/O: it logs in, joins the room (resuming from
//! the last position it saw once it has one), checks and times every
//! message, and, told to go away or dropped, asks to reconnect after the
//! chat client library's own jittered back-off. A sender also posts its
//! stamped messages when they are due and records which were acknowledged.

use super::tally::{MessageKey, StormTally};
use crate::fanout::Stamp;
use bytes::BytesMut;
use chat_server::client::reconnect::Backoff;
use chat_server::protocol::{
    ClientFrameRef, ErrorCode, OkBody, Position, PushRef, Reply, RequestRef, ServerFrameRef, PROTOCOL_VERSION,
};
use std::time::Duration;

const LOGIN_ID: u32 = 1;
const JOIN_ID: u32 = 2;
/// Request ids of `Say` are this plus the message's sequence number.
const SAY_BASE: u32 = 16;

/// Where a client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not connected; the driver connects it when told.
    Idle,
    /// Connected, login and join sent, the join reply not yet in.
    Joining,
    /// A member: messages flow.
    Live,
}

/// What the driver must do after a client handled its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing (send what was queued, if anything).
    Continue,
    /// Close the connection and connect again after this delay.
    Reconnect(Duration),
}

/// A sender's schedule and sequence.
#[derive(Clone, Debug)]
pub struct Publisher {
    /// Its index among the senders.
    pub index: u32,
    /// Next sequence number.
    pub seq: u64,
    /// When the next message is due, ns from the run's start.
    pub due_ns: u64,
    /// Nanoseconds between its messages.
    pub every_ns: u64,
    /// The last message is the one due before this, ns.
    pub until_ns: u64,
}

/// One client.
pub struct Client {
    /// Its nickname.
    pub nick: String,
    room: String,
    run: u32,
    size: usize,
    /// Index among the members (for the tally), or `None` for a sender.
    member: Option<usize>,
    /// Where it is.
    pub phase: Phase,
    /// The last message it saw, to resume from.
    pub position: Option<Position>,
    /// History pushes still to come after the join reply.
    history_left: u32,
    /// Set by `GoingAway`: the server's hint for the next attempt.
    hint: Option<Duration>,
    backoff: Backoff,
    /// Publishing, for a sender.
    pub publisher: Option<Publisher>,
    scratch: BytesMut,
    payload: Vec<u8>,
}

impl Client {
    /// Member `member` (or a sender, `None`) of `room`, named `nick`, for
    /// run `run` with `size`-byte messages, backing off as `backoff` says.
    pub fn new(
        nick: String,
        room: String,
        run: u32,
        size: usize,
        member: Option<usize>,
        backoff: Backoff,
    ) -> Client {
        Client {
            nick,
            room,
            run,
            size,
            member,
            phase: Phase::Idle,
            position: None,
            history_left: 0,
            hint: None,
            backoff,
            publisher: None,
            scratch: BytesMut::with_capacity(256),
            payload: Vec::with_capacity(size),
        }
    }

    fn send(&mut self, out: &mut Vec<u8>, request_id: u32, request: RequestRef<'_>) {
        self.scratch.clear();
        ClientFrameRef { request_id, request }.encode(&mut self.scratch);
        out.extend_from_slice(&(self.scratch.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.scratch);
    }

    /// The connection is up: queue login and join (with the position it
    /// saw last, if any).
    pub fn on_connected(&mut self, out: &mut Vec<u8>) {
        self.phase = Phase::Joining;
        self.history_left = 0;
        let nick = std::mem::take(&mut self.nick);
        self.send(out, LOGIN_ID, RequestRef::Login { version: PROTOCOL_VERSION, nick: &nick, token: None });
        self.nick = nick;
        let room = std::mem::take(&mut self.room);
        self.send(out, JOIN_ID, RequestRef::Join { room: &room, resume: self.position });
        self.room = room;
    }

    /// The connection failed or closed: when to try again.
    pub fn on_closed(&mut self) -> Duration {
        self.phase = Phase::Idle;
        self.backoff.next_delay(self.hint.take())
    }

    /// Queues every message due by `now_ns` (a live sender only; one that
    /// is away catches up when it is back, late by its schedule).
    pub fn publish_due(&mut self, now_ns: u64, out: &mut Vec<u8>, tally: &mut StormTally) {
        if self.phase != Phase::Live {
            return;
        }
        let Some(mut p) = self.publisher.take() else { return };
        while p.due_ns <= now_ns && p.due_ns < p.until_ns {
            Stamp { run: self.run, sender: p.index, seq: p.seq, sched_ns: p.due_ns }
                .encode(&mut self.payload, self.size);
            let payload = std::mem::take(&mut self.payload);
            // Stamps are ASCII.
            if let Ok(text) = std::str::from_utf8(&payload) {
                let room = std::mem::take(&mut self.room);
                self.send(out, SAY_BASE.wrapping_add(p.seq as u32), RequestRef::Say { room: &room, text });
                self.room = room;
                tally.posted += 1;
            }
            self.payload = payload;
            p.seq += 1;
            p.due_ns += p.every_ns;
        }
        self.publisher = Some(p);
    }

    /// Handles one server frame received at `now_ns`.
    pub fn on_frame(
        &mut self,
        frame: ServerFrameRef<'_>,
        now_ns: u64,
        out: &mut Vec<u8>,
        tally: &mut StormTally,
    ) -> Action {
        match frame {
            ServerFrameRef::Reply {
                request_id: JOIN_ID,
                reply: Reply::Ok(OkBody::Joined { history, epoch, last_offset, recovered, .. }),
            } => {
                let rejoin = self.position.is_some();
                if rejoin {
                    tally.resumed(self.member, recovered, now_ns);
                } else {
                    tally.joined(self.member, now_ns);
                }
                if !recovered || self.position.is_none_or(|p| p.epoch != epoch) {
                    // A first join, or history lost: live messages continue
                    // after the room's last offset; the replay is context.
                    self.position = Some(Position { epoch, offset: last_offset });
                }
                self.history_left = history;
                self.phase = Phase::Live;
                self.backoff.reset();
                Action::Continue
            }
            ServerFrameRef::Reply { request_id, reply: Reply::Ok(OkBody::Sent { .. }) }
                if request_id >= SAY_BASE =>
            {
                if let Some(p) = &self.publisher {
                    // The request id carries the low 32 bits of the sequence.
                    let low = request_id.wrapping_sub(SAY_BASE) as u64;
                    let seq = (p.seq & !0xffff_ffff) | low;
                    let seq = if seq >= p.seq { seq.wrapping_sub(1 << 32) } else { seq };
                    tally.acked(MessageKey { sender: p.index, seq });
                }
                Action::Continue
            }
            ServerFrameRef::Reply { request_id, reply: Reply::Error { code, .. } } => {
                tally.refused(code);
                if request_id == LOGIN_ID || request_id == JOIN_ID {
                    // Not in: try again later.
                    return Action::Reconnect(self.on_closed());
                }
                Action::Continue
            }
            ServerFrameRef::Push(PushRef::Message { text, offset, history, .. }) => {
                if history {
                    self.history_left = self.history_left.saturating_sub(1);
                }
                let epoch = self.position.map_or(0, |p| p.epoch);
                let last = self.position.map_or(0, |p| p.offset);
                if offset <= last {
                    // Not past what it saw: the replay of a join that was
                    // not a resume (context), or a duplicate.
                    if !history {
                        tally.out_of_order += 1;
                    }
                    return Action::Continue;
                }
                self.position = Some(Position { epoch, offset });
                match Stamp::decode(text.as_bytes(), self.run, self.size) {
                    Ok(s) => tally.delivered(
                        self.member,
                        MessageKey { sender: s.sender, seq: s.seq },
                        s.sched_ns,
                        now_ns,
                        history,
                    ),
                    Err(_) => tally.foreign += 1,
                }
                Action::Continue
            }
            ServerFrameRef::Push(PushRef::Ping { nonce }) => {
                self.send(out, 0, RequestRef::Pong { nonce });
                Action::Continue
            }
            ServerFrameRef::Push(PushRef::GoingAway { retry_after_ms, .. }) => {
                tally.going_away += 1;
                self.hint = Some(Duration::from_millis(u64::from(retry_after_ms)));
                Action::Reconnect(self.on_closed())
            }
            ServerFrameRef::Push(PushRef::Error { code, .. }) => {
                tally.refused(code);
                Action::Continue
            }
            _ => Action::Continue,
        }
    }
}

/// `ErrorCode` as its name, for the tally.
pub fn code_name(code: ErrorCode) -> String {
    format!("{code:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::chat::tests::requests;
    use chat_server::protocol::{Push, Request, ServerFrame};

    fn handle(c: &mut Client, frame: ServerFrame, now_ns: u64, tally: &mut StormTally) -> Action {
        let mut payload = BytesMut::new();
        frame.encode(&mut payload);
        c.on_frame(ServerFrameRef::decode(&payload).unwrap(), now_ns, &mut Vec::new(), tally)
    }

    fn message(run: u32, seq: u64, sched_ns: u64, offset: u64, history: bool) -> ServerFrame {
        let mut text = Vec::new();
        Stamp { run, sender: 0, seq, sched_ns }.encode(&mut text, 64);
        ServerFrame::Push(Push::Message {
            room: "storm".into(),
            id: offset,
            ts_us: 0,
            offset,
            from: "s".into(),
            text: String::from_utf8(text).unwrap(),
            history,
        })
    }

    fn joined(history: u32, last_offset: u64, recovered: bool) -> ServerFrame {
        ServerFrame::ok(JOIN_ID, OkBody::Joined { members: 3, history, epoch: 9, last_offset, recovered })
    }

    #[test]
    fn a_member_joins_goes_away_and_resumes_from_what_it_saw() {
        let mut tally = StormTally::new(1, 1, 100);
        let backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10)).with_seed(3);
        let mut c = Client::new("m0".into(), "storm".into(), 7, 64, Some(0), backoff);
        let mut out = Vec::new();
        c.on_connected(&mut out);
        let reqs: Vec<Request> = requests(&out).into_iter().map(|f| f.request).collect();
        assert_eq!(reqs[1], Request::Join { room: "storm".into(), resume: None });
        // First join: 2 messages of history (context, offsets 4 and 5).
        assert_eq!(handle(&mut c, joined(2, 5, false), 10, &mut tally), Action::Continue);
        handle(&mut c, message(1, 0, 0, 4, true), 11, &mut tally);
        handle(&mut c, message(1, 1, 0, 5, true), 11, &mut tally);
        assert_eq!(tally.foreign, 0, "replayed context is not checked");
        handle(&mut c, message(7, 0, 1_000, 6, false), 3_000, &mut tally);
        assert_eq!(c.position, Some(Position { epoch: 9, offset: 6 }));
        // Told to go away: back after the hint plus the jittered back-off.
        let hint = ServerFrame::Push(Push::GoingAway { retry_after_ms: 100, reason: "restart".into() });
        let Action::Reconnect(after) = handle(&mut c, hint, 4_000, &mut tally) else {
            panic!("must reconnect")
        };
        assert!(after >= Duration::from_millis(225) && after <= Duration::from_millis(350), "{after:?}");
        // The rejoin resumes from offset 6 and gets 7 and 8 replayed.
        let mut out = Vec::new();
        c.on_connected(&mut out);
        let reqs: Vec<Request> = requests(&out).into_iter().map(|f| f.request).collect();
        assert_eq!(
            reqs[1],
            Request::Join { room: "storm".into(), resume: Some(Position { epoch: 9, offset: 6 }) }
        );
        handle(&mut c, joined(2, 8, true), 5_000, &mut tally);
        handle(&mut c, message(7, 1, 2_000, 7, true), 5_001, &mut tally);
        handle(&mut c, message(7, 2, 3_000, 8, true), 5_002, &mut tally);
        handle(&mut c, message(7, 2, 3_000, 8, false), 5_003, &mut tally);
        assert_eq!(
            (tally.resumes, tally.recovered, tally.out_of_order),
            (1, 1, 1),
            "8 twice is out of order"
        );
        assert_eq!(tally.received_of(0), 3);
        assert_eq!(tally.history.summary().samples, 2);
    }

    #[test]
    fn a_sender_posts_when_due_and_files_acknowledgements_and_refusals() {
        let mut tally = StormTally::new(1, 1, 100);
        let mut s = Client::new(
            "s0".into(),
            "storm".into(),
            7,
            64,
            None,
            Backoff::new(Duration::from_millis(250), Duration::from_secs(1)),
        );
        s.publisher = Some(Publisher { index: 0, seq: 0, due_ns: 0, every_ns: 10, until_ns: 35 });
        let mut out = Vec::new();
        s.publish_due(100, &mut out, &mut tally);
        assert!(out.is_empty(), "not live yet");
        s.on_connected(&mut out);
        handle(&mut s, joined(0, 0, false), 1, &mut tally);
        out.clear();
        s.publish_due(100, &mut out, &mut tally);
        let says: Vec<u32> = requests(&out).iter().map(|f| f.request_id).collect();
        assert_eq!(
            says,
            [SAY_BASE, SAY_BASE + 1, SAY_BASE + 2, SAY_BASE + 3],
            "0, 10, 20, 30 ns; 40 is past the end"
        );
        handle(
            &mut s,
            ServerFrame::ok(SAY_BASE + 1, OkBody::Sent { id: 1, ts_us: 0, offset: 1 }),
            2,
            &mut tally,
        );
        handle(&mut s, ServerFrame::error(SAY_BASE + 2, ErrorCode::StoreFailed, "closing"), 2, &mut tally);
        assert!(
            tally.is_acked(MessageKey { sender: 0, seq: 1 })
                && !tally.is_acked(MessageKey { sender: 0, seq: 0 })
        );
        assert_eq!(tally.refusals.get("StoreFailed"), Some(&1));
    }
}
