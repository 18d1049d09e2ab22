//! `nats`: the fan-out workload in the NATS text protocol, so that
//! nats-server is measured with the same instrument as the chat server.
//! A room is a subject (`room{r}`); each client connects with
//! `echo:false` (a publisher does not get its own messages back, as the
//! chat server does not echo to the sender), subscribes to its room's
//! subject, and sends `PING`: the `PONG` means the subscription is in
//! place. Senders `PUB` the same stamped payloads as `chat`.

use crate::fanout::{self, Event, FanoutArgs, Wire};
use crate::report::Report;
use clap::Args;
use std::borrow::Cow;
use std::io::Write;
use std::net::SocketAddr;

/// Longest control line accepted (nats-server's own limit is 4 KiB).
const MAX_CONTROL: usize = 4096;
/// Largest message payload accepted (nats-server's largest max_payload).
const MAX_PAYLOAD: usize = 64 << 20;
/// What every client sends first.
const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n";

/// Arguments of `nats`.
#[derive(Args, Clone, Debug)]
pub struct NatsArgs {
    /// nats-server address.
    #[arg(long, default_value = "127.0.0.1:4222")]
    pub addr: SocketAddr,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: FanoutArgs,
}

/// One NATS client's side of the protocol.
pub struct NatsWire {
    subject: String,
    /// Waiting for the `PONG` that acknowledges the subscription.
    joining: bool,
}

impl NatsWire {
    /// A client of `subject`.
    pub fn new(subject: String) -> NatsWire {
        NatsWire { subject, joining: false }
    }
}

/// The position of the first CRLF in `input`.
fn line_end(input: &[u8]) -> Option<usize> {
    input.windows(2).position(|w| w == b"\r\n")
}

fn number(arg: &str, what: &str) -> Result<usize, String> {
    arg.parse().map_err(|_| format!("NATS {what}: bad length '{arg}'"))
}

impl Wire for NatsWire {
    fn handshake(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(CONNECT);
        let _ = write!(out, "SUB {} 1\r\nPING\r\n", self.subject);
        self.joining = true;
    }

    fn publish(&mut self, out: &mut Vec<u8>, payload: &[u8]) {
        let _ = write!(out, "PUB {} {}\r\n", self.subject, payload.len());
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
    }

    fn next<'a>(&mut self, input: &'a [u8], out: &mut Vec<u8>) -> Result<Option<(Event<'a>, usize)>, String> {
        let Some(end) = line_end(&input[..input.len().min(MAX_CONTROL + 2)]) else {
            if input.len() > MAX_CONTROL + 1 {
                return Err(format!("NATS control line longer than {MAX_CONTROL} bytes"));
            }
            return Ok(None);
        };
        let line =
            std::str::from_utf8(&input[..end]).map_err(|_| "NATS control line is not UTF-8".to_string())?;
        let (op, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let after_line = end + 2;
        let event = if op.eq_ignore_ascii_case("MSG") || op.eq_ignore_ascii_case("HMSG") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            // HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
            // No allocation: this runs for every delivery. Six slots, so
            // that one argument too many shows.
            let mut args = [""; 6];
            let mut n = 0;
            for (slot, arg) in args.iter_mut().zip(rest.split_ascii_whitespace()) {
                *slot = arg;
                n += 1;
            }
            let headers = op.len() == 4;
            let counts = if headers { 2 } else { 1 };
            if !(2 + counts..=3 + counts).contains(&n) {
                return Err(format!("NATS {op} with unexpected arguments: '{line}'"));
            }
            let total = number(args[n - 1], op)?;
            let header_len = if headers { number(args[n - 2], op)? } else { 0 };
            if total > MAX_PAYLOAD || header_len > total {
                return Err(format!("NATS {op} of {total} bytes ({header_len} of headers)"));
            }
            let whole = after_line + total + 2;
            let Some(body) = input.get(after_line..whole) else { return Ok(None) };
            if &body[total..] != b"\r\n" {
                return Err(format!("NATS {op} payload not followed by CRLF"));
            }
            return Ok(Some((Event::Message(&body[header_len..total]), whole)));
        } else if op.eq_ignore_ascii_case("PING") {
            out.extend_from_slice(b"PONG\r\n");
            Event::Other
        } else if op.eq_ignore_ascii_case("PONG") {
            if std::mem::take(&mut self.joining) {
                Event::Joined
            } else {
                Event::Other
            }
        } else if op.eq_ignore_ascii_case("-ERR") {
            Event::Refused(Cow::Owned(rest.trim().trim_matches('\'').to_string()))
        } else if op.eq_ignore_ascii_case("+OK") || op.eq_ignore_ascii_case("INFO") {
            Event::Other
        } else {
            return Err(format!("unexpected NATS operation '{}'", line.chars().take(64).collect::<String>()));
        };
        Ok(Some((event, after_line)))
    }
}

/// Runs the nats scenario.
pub fn run(args: &NatsArgs) -> Result<Report, String> {
    fanout::run("nats", args.addr, &args.load, |i, layout, _| {
        NatsWire::new(format!("room{}", layout.room_of(i)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in the given pieces as the worker does (keeping what
    /// was not consumed), and lists the events.
    fn events(stream: &[u8], cuts: &[usize]) -> (Vec<String>, Vec<u8>) {
        let mut w = NatsWire::new("room0".into());
        w.handshake(&mut Vec::new());
        let (mut out, mut pending, mut got) = (Vec::new(), Vec::new(), Vec::new());
        let mut from = 0;
        for &to in cuts.iter().chain([&stream.len()]) {
            pending.extend_from_slice(&stream[from..to]);
            from = to;
            let mut used = 0;
            while let Some((ev, n)) = w.next(&pending[used..], &mut out).unwrap() {
                got.push(match ev {
                    Event::Message(p) => format!("msg {}", String::from_utf8_lossy(p)),
                    other => format!("{other:?}"),
                });
                used += n;
            }
            pending.drain(..used);
        }
        assert!(pending.is_empty(), "left over: {pending:?}");
        (got, out)
    }

    const STREAM: &[u8] = b"INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\n\
        PONG\r\n\
        MSG room0 1 5\r\nhello\r\n\
        PING\r\n\
        msg room0 1 _INBOX.abc 0\r\n\r\n\
        MSG room0 1 12\r\nwith\r\ncrlf!!\r\n\
        HMSG room0 1 12 15\r\nNATS/1.0\r\n\r\nabc\r\n\
        +OK\r\n\
        PONG\r\n\
        -ERR 'Slow Consumer'\r\n";

    fn want() -> Vec<String> {
        [
            "Other",
            "Joined",
            "msg hello",
            "Other",
            "msg ",
            "msg with\r\ncrlf!!",
            "msg abc",
            "Other",
            "Other",
            "Refused(\"Slow Consumer\")",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn messages_parse_across_every_split() {
        for cut in 0..=STREAM.len() {
            let (got, out) = events(STREAM, &[cut]);
            assert_eq!(got, want(), "cut at {cut}");
            assert_eq!(out, b"PONG\r\n", "the server's PING is answered");
        }
    }

    #[test]
    fn messages_parse_byte_by_byte_and_in_odd_chunks() {
        let every: Vec<usize> = (1..STREAM.len()).collect();
        assert_eq!(events(STREAM, &every).0, want());
        for step in [2, 3, 7, 13] {
            let cuts: Vec<usize> = (step..STREAM.len()).step_by(step).collect();
            assert_eq!(events(STREAM, &cuts).0, want(), "chunks of {step}");
        }
    }

    #[test]
    fn handshake_and_publish_bytes() {
        let mut w = NatsWire::new("room3".into());
        let mut out = Vec::new();
        w.handshake(&mut out);
        w.publish(&mut out, b"0123");
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n\
             SUB room3 1\r\nPING\r\nPUB room3 4\r\n0123\r\n"
        );
    }

    #[test]
    fn protocol_violations_are_errors() {
        let mut w = NatsWire::new("r".into());
        let mut bad = |input: &[u8]| w.next(input, &mut Vec::new()).is_err();
        assert!(bad(b"MSG a 1 5\r\nhelloXX"), "payload without CRLF");
        assert!(bad(b"MSG a 1 x\r\n"), "bad length");
        assert!(bad(b"MSG a\r\n"), "too few arguments");
        assert!(bad(b"WHAT\r\n"), "unknown operation");
        assert!(bad(&[b'x'; MAX_CONTROL + 2]), "endless control line");
        assert!(bad(b"MSG a 1 99999999999\r\n"), "absurd length");
        assert!(w.next(&[b'x'; MAX_CONTROL], &mut Vec::new()).unwrap().is_none(), "may still end");
    }
}
