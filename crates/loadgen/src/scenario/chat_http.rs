//! `chat-http`: the fan-out workload through the chat server's HTTP
//! endpoints, as a browser-era chat client would use them: senders `POST
//! /rooms/{room}/messages`, members long-poll `GET
//! /rooms/{room}/messages?since=OFFSET&wait=S` and poll again from the
//! `last_offset` of each answer. Same stamps, schedule, checks and delivery
//! latency as `chat`, so the two measure the cost of HTTP on one workload.
//!
//! Every client first opens a session (`POST /session`: every route is
//! authorised by one, and a post speaks as its nickname), then posts a
//! greeting: its `201` says the room exists and
//! gives the offset a member polls from. Senders only post (one connection
//! cannot post while its long poll holds the pipeline), so, like `chat`,
//! where the server does not echo a message to its sender, a message owes
//! one delivery to every other member; a room may therefore have only one
//! sender. Benchmark a server with `rate_per_sec = 0` and a `history_len`
//! that covers what arrives between two polls, and `logins_per_minute = 0`
//! under `[http]` (every client logs in from the same address).

use crate::fanout::{self, Event, FanoutArgs, Layout, Wire};
use crate::http_response;
use crate::report::Report;
use clap::Args;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Longest a long poll asks to wait, in seconds (the server caps it).
const POLL_WAIT_S: u32 = 30;

/// Arguments of `chat-http`.
#[derive(Args, Clone, Debug)]
pub struct ChatHttpArgs {
    /// The chat server's HTTP address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: FanoutArgs,
}

/// What an outstanding request was, so that its response is read right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Session,
    Greeting,
    Poll,
    Post,
}

/// A poll answer whose messages are being handed out one per event.
#[derive(Clone, Copy, Debug)]
struct Answer {
    /// Where the next `"text":` is looked for, from the response's start.
    at: usize,
    /// The end of the body.
    body_end: usize,
    /// The whole response's length.
    len: usize,
}

/// One HTTP chat client.
pub struct HttpChatWire {
    host: String,
    path: String,
    nick: String,
    /// The session credential, once opened.
    bearer: String,
    /// Polls for the room's messages (every client but a sender).
    member: bool,
    asked: VecDeque<Asked>,
    since: u64,
    answer: Option<Answer>,
}

impl HttpChatWire {
    /// Client `nick` of `room` on the server at `host`; a member polls.
    pub fn new(host: String, room: &str, nick: String, member: bool) -> HttpChatWire {
        HttpChatWire {
            host,
            path: format!("/rooms/{room}/messages"),
            nick,
            bearer: String::new(),
            member,
            asked: VecDeque::new(),
            since: 0,
            answer: None,
        }
    }

    fn post(&mut self, out: &mut Vec<u8>, text: &[u8], asked: Asked) {
        // Stamps and greetings are plain ASCII without quotes or
        // backslashes: they go into the JSON string as they are.
        let body_len = br#"{"text":""}"#.len() + text.len();
        out.extend_from_slice(b"POST ");
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b"\r\nAuthorization: Bearer ");
        out.extend_from_slice(self.bearer.as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: application/json\r\nContent-Length: ");
        out.extend_from_slice(body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n{\"text\":\"");
        out.extend_from_slice(text);
        out.extend_from_slice(b"\"}");
        self.asked.push_back(asked);
    }

    fn open_session(&mut self, out: &mut Vec<u8>) {
        let body = format!(r#"{{"nick":"{}"}}"#, self.nick);
        let request = format!(
            "POST /session HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        out.extend_from_slice(request.as_bytes());
        self.asked.push_back(Asked::Session);
    }

    fn poll(&mut self, out: &mut Vec<u8>) {
        let request = format!(
            "GET {}?since={}&wait={POLL_WAIT_S} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            self.path, self.since, self.host, self.bearer
        );
        out.extend_from_slice(request.as_bytes());
        self.asked.push_back(Asked::Poll);
    }

    /// The next message text of the answer being read, or the answer's
    /// end (its `last_offset` taken, the next poll queued).
    fn next_of_answer<'a>(
        &mut self,
        input: &'a [u8],
        mut a: Answer,
        out: &mut Vec<u8>,
    ) -> Result<(Event<'a>, usize), String> {
        let body = &input[..a.body_end];
        if let Some(start) = find(&body[a.at..], br#""text":""#).map(|i| a.at + i + 8) {
            let end = (start..a.body_end)
                .find(|&i| body[i] == b'"' && body[i - 1] != b'\\')
                .ok_or("a message text without its closing quote")?;
            a.at = end + 1;
            self.answer = Some(a);
            return Ok((Event::Message(&body[start..end]), 0));
        }
        self.answer = None;
        self.since = number_after(&body[..a.body_end], br#""last_offset":"#)
            .ok_or("a poll answer without last_offset")?;
        self.poll(out);
        Ok((Event::Other, a.len))
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The decimal number right after the last `key` in `body`.
fn number_after(body: &[u8], key: &[u8]) -> Option<u64> {
    let at = body.windows(key.len()).rposition(|w| w == key)? + key.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits]).ok()?.parse().ok()
}

impl Wire for HttpChatWire {
    fn handshake(&mut self, out: &mut Vec<u8>) {
        self.open_session(out);
    }

    fn publish(&mut self, out: &mut Vec<u8>, payload: &[u8]) {
        self.post(out, payload, Asked::Post);
    }

    fn next<'a>(&mut self, input: &'a [u8], out: &mut Vec<u8>) -> Result<Option<(Event<'a>, usize)>, String> {
        if let Some(a) = self.answer {
            return self.next_of_answer(input, a, out).map(Some);
        }
        let Some(r) = http_response::parse(input, false)? else { return Ok(None) };
        if r.interim() {
            return Ok(Some((Event::Other, r.len)));
        }
        let asked = self.asked.pop_front().ok_or("a response to no request")?;
        if r.close {
            return Err(format!("the server closes the connection (status {})", r.status));
        }
        if !(200..300).contains(&r.status) {
            return Ok(Some((Event::Refused(Cow::Owned(format!("HTTP {}", r.status))), r.len)));
        }
        let body_start = find(&input[..r.len], b"\r\n\r\n").map_or(r.len, |i| i + 4);
        match asked {
            Asked::Post => Ok(Some((Event::Other, r.len))),
            Asked::Session => {
                let body = &input[body_start..r.len];
                let at =
                    find(body, br#""session":""#).ok_or("a 201 to POST /session without a session")? + 11;
                let len = body[at..].iter().take_while(|b| b.is_ascii_hexdigit()).count();
                self.bearer = String::from_utf8_lossy(&body[at..at + len]).into_owned();
                self.post(out, b"hello", Asked::Greeting);
                Ok(Some((Event::Other, r.len)))
            }
            Asked::Greeting => {
                if self.member {
                    self.since = number_after(&input[body_start..r.len], br#""offset":"#)
                        .ok_or("a 201 to a post without the message offset")?;
                    self.poll(out);
                }
                Ok(Some((Event::Joined, r.len)))
            }
            Asked::Poll => {
                let a = Answer { at: body_start, body_end: r.len, len: r.len };
                self.next_of_answer(input, a, out).map(Some)
            }
        }
    }
}

/// Runs the chat-over-HTTP scenario.
pub fn run(args: &ChatHttpArgs) -> Result<Report, String> {
    let layout = Layout::new(args.load.clients, args.load.rooms, args.load.senders)?;
    if (0..layout.rooms).any(|r| layout.senders_in(r) > 1) {
        return Err("chat-http: at most one sender per room (--senders up to --rooms): senders post and \
                    do not poll, so they would not receive each other's messages"
            .into());
    }
    let host = args.addr.to_string();
    let mut report = fanout::run("chat-http", args.addr, &args.load, move |i, layout, run| {
        let room = format!("room{}", layout.room_of(i));
        HttpChatWire::new(host.clone(), &room, format!("lg{run:08x}_{i}"), layout.sender_of(i).is_none())
    })?;
    if report.errors.kinds.contains_key("HTTP 429") {
        report.errors.hints.push(crate::scenario::chat::RATE_LIMIT_HINT.into());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn response(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// Every event of `input`, with the bytes each consumed.
    fn events(wire: &mut HttpChatWire, input: &[u8], out: &mut Vec<u8>) -> Vec<(String, usize)> {
        let mut used = 0;
        let mut v = Vec::new();
        while let Some((e, len)) = wire.next(&input[used..], out).unwrap() {
            v.push((
                match e {
                    Event::Message(t) => format!("msg {}", String::from_utf8_lossy(t)),
                    other => format!("{other:?}"),
                },
                len,
            ));
            used += len;
        }
        assert_eq!(used, input.len(), "everything consumed");
        v
    }

    #[test]
    fn a_member_greets_then_polls_from_each_last_offset() {
        let mut w = HttpChatWire::new("127.0.0.1:8080".into(), "room0", "lg1_3".into(), true);
        let mut out = Vec::new();
        w.handshake(&mut out);
        let req = String::from_utf8(out.clone()).unwrap();
        assert!(req.starts_with("POST /session HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"), "{req}");
        assert!(req.ends_with(r#"{"nick":"lg1_3"}"#), "{req}");
        out.clear();
        let opened = response("201 Created", r#"{"nick":"lg1_3","session":"00ff","idle_timeout_ms":1}"#);
        assert_eq!(events(&mut w, &opened, &mut out), [("Other".to_string(), opened.len())]);
        let req = String::from_utf8(out.clone()).unwrap();
        assert!(req.starts_with("POST /rooms/room0/messages HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"), "{req}");
        assert!(req.contains("\r\nAuthorization: Bearer 00ff\r\n"), "{req}");
        let body = r#"{"text":"hello"}"#;
        assert!(req.ends_with(&format!("Content-Length: {}\r\n\r\n{body}", body.len())), "{req}");
        out.clear();

        let greeted = response("201 Created", r#"{"id":7041,"ts_us":5,"offset":41}"#);
        assert_eq!(events(&mut w, &greeted, &mut out), [("Joined".to_string(), greeted.len())]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "GET /rooms/room0/messages?since=41&wait=30 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
             Authorization: Bearer 00ff\r\n\r\n"
        );
        out.clear();

        let answer = response(
            "200 OK",
            r#"{"room":"room0","epoch":9,"messages":[{"id":42,"ts_us":1,"offset":42,"from":"a","text":"one"},{"id":43,"ts_us":2,"offset":43,"from":"b","text":"t\"wo"}],"last_offset":43}"#,
        );
        let got = events(&mut w, &answer, &mut out);
        assert_eq!(
            got,
            [
                ("msg one".to_string(), 0),
                (r#"msg t\"wo"#.to_string(), 0),
                ("Other".to_string(), answer.len())
            ]
        );
        assert!(String::from_utf8_lossy(&out).starts_with("GET /rooms/room0/messages?since=43&wait=30 "));
        out.clear();

        // A poll that timed out: nothing new, poll again from the same offset.
        let empty = response("200 OK", r#"{"room":"room0","epoch":9,"messages":[],"last_offset":43}"#);
        assert_eq!(events(&mut w, &empty, &mut out), [("Other".to_string(), empty.len())]);
        assert!(String::from_utf8_lossy(&out).contains("since=43&"));
    }

    #[test]
    fn a_sender_posts_without_polling_and_errors_are_refusals() {
        let mut w = HttpChatWire::new("h:1".into(), "room2", "lg1_0".into(), false);
        let mut out = Vec::new();
        w.handshake(&mut out);
        let opened = response("201 Created", r#"{"nick":"lg1_0","session":"ab"}"#);
        assert_eq!(events(&mut w, &opened, &mut out).len(), 1);
        w.publish(&mut out, b"0000abcd");
        out.clear();
        let mut input = response("201 Created", r#"{"id":1,"ts_us":5,"offset":1}"#);
        input.extend(response("429 Too Many Requests", r#"{"error":"RateLimited"}"#));
        let got = events(&mut w, &input, &mut out);
        assert_eq!(got[0].0, "Joined");
        assert_eq!(got[1].0, "Refused(\"HTTP 429\")");
        assert!(out.is_empty(), "a sender does not poll");
        // Partial responses wait for the rest.
        w.publish(&mut out, b"x");
        let posted = response("201 Created", r#"{"id":2,"ts_us":6}"#);
        assert_eq!(w.next(&posted[..posted.len() - 1], &mut out).unwrap(), None);
        assert_eq!(w.next(&posted, &mut out).unwrap(), Some((Event::Other, posted.len())));
    }

    #[test]
    fn more_than_one_sender_a_room_is_refused() {
        let load = FanoutArgs {
            clients: 10,
            rooms: 2,
            senders: 3,
            rate: 100,
            size: 64,
            also: Vec::new(),
            run: crate::scenario::TimedRun::new(Duration::ZERO, Duration::from_secs(1)),
            common: crate::scenario::Common {
                json: false,
                connect_timeout: Duration::from_secs(1),
                quiet: true,
                server_pid: None,
                also_pids: Vec::new(),
            },
        };
        let err = run(&ChatHttpArgs { addr: "127.0.0.1:1".parse().unwrap(), load }).unwrap_err();
        assert!(err.contains("one sender per room"), "{err}");
    }
}
