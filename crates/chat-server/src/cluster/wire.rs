//! What nodes read from Redis, decoded without I/O: the events published on
//! a room's or a node's channel, and the stream entries of a room log.
//!
//! Channel payloads are made by the Lua scripts (`scripts.rs`): fields
//! separated by `\n`, the text last (it may hold `\n`; names cannot):
//!
//! | kind | payload |
//! | --- | --- |
//! | message | `M room epoch offset id ts_us origin from text` |
//! | presence | `P room kind members node conn nick` (kind 1 joined, 2 left; conn 0: none) |
//! | direct message | `D to id ts_us from text` |
//! | wake-up | `W` (the node's own subscriber has work) |
//!
//! A message's `origin` is `node:token` (the posting node and its token
//! for the post). Stream entries carry `i` (id), `t` (ts_us), `f` (from),
//! `x` (text), `o` (origin) under the id `offset-0`.

use crate::protocol::PresenceKind;
use crate::store::Entry;
use redis::Value;
use std::sync::Arc;

/// An event published on a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// A room message, stored.
    Message {
        /// The room.
        room: String,
        /// The room log's epoch.
        epoch: u64,
        /// The message.
        entry: Entry,
        /// Who posted it: node and token.
        origin: Option<(String, u64)>,
    },
    /// A member joined or left.
    Presence {
        /// The room.
        room: String,
        /// Joined or left.
        kind: PresenceKind,
        /// Members on every node after the change.
        members: u32,
        /// The node of the member.
        node: String,
        /// Its connection there (0: unknown, as when a dead node is swept).
        conn: u64,
        /// Its nickname.
        nick: String,
    },
    /// A direct message for a user on this node.
    Direct {
        /// The recipient.
        to: String,
        /// Message id.
        id: u64,
        /// Server timestamp.
        ts_us: u64,
        /// The sender.
        from: String,
        /// Text.
        text: String,
    },
    /// Wakes the subscriber (it has subscriptions to change).
    Wake,
}

/// A payload that is not one of ours.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPayload(pub String);

fn num(field: Option<&str>, what: &str) -> Result<u64, BadPayload> {
    field.and_then(|f| f.parse().ok()).ok_or_else(|| BadPayload(format!("bad {what}")))
}

fn text(field: Option<&str>, what: &str) -> Result<String, BadPayload> {
    field.map(str::to_string).ok_or_else(|| BadPayload(format!("no {what}")))
}

/// Splits `node:token`.
pub fn parse_origin(origin: &str) -> Option<(String, u64)> {
    let (node, token) = origin.rsplit_once(':')?;
    Some((node.to_string(), token.parse().ok()?))
}

impl Published {
    /// Decodes a channel payload.
    pub fn decode(payload: &[u8]) -> Result<Published, BadPayload> {
        let s = std::str::from_utf8(payload).map_err(|_| BadPayload("not UTF-8".into()))?;
        let kind = s.split('\n').next().unwrap_or("");
        match kind {
            "M" => {
                let mut f = s.splitn(9, '\n').skip(1);
                let room = text(f.next(), "room")?;
                let epoch = num(f.next(), "epoch")?;
                let offset = num(f.next(), "offset")?;
                let id = num(f.next(), "id")?;
                let ts_us = num(f.next(), "timestamp")?;
                let origin = f.next().and_then(parse_origin);
                let from = text(f.next(), "sender")?;
                let body = text(f.next(), "text")?;
                let entry = Entry { offset, id, ts_us, from: from.into(), text: body.into() };
                Ok(Published::Message { room, epoch, entry, origin })
            }
            "P" => {
                let mut f = s.splitn(7, '\n').skip(1);
                let room = text(f.next(), "room")?;
                let kind = match f.next() {
                    Some("1") => PresenceKind::Joined,
                    Some("2") => PresenceKind::Left,
                    _ => return Err(BadPayload("bad presence kind".into())),
                };
                let members = u32::try_from(num(f.next(), "members")?).unwrap_or(u32::MAX);
                let node = text(f.next(), "node")?;
                let conn = num(f.next(), "connection")?;
                let nick = text(f.next(), "nick")?;
                Ok(Published::Presence { room, kind, members, node, conn, nick })
            }
            "D" => {
                let mut f = s.splitn(6, '\n').skip(1);
                let to = text(f.next(), "recipient")?;
                let id = num(f.next(), "id")?;
                let ts_us = num(f.next(), "timestamp")?;
                let from = text(f.next(), "sender")?;
                let body = text(f.next(), "text")?;
                Ok(Published::Direct { to, id, ts_us, from, text: body })
            }
            "W" => Ok(Published::Wake),
            other => Err(BadPayload(format!("unknown kind {other:?}"))),
        }
    }
}

/// A Redis value as text, if it is a string or a number.
pub fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// A Redis value as a number (integers come as either).
pub fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => as_string(other)?.parse().ok(),
    }
}

/// The items of an array value (none for anything else).
pub fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// A stream entry of a room log, as `XRANGE` returns it:
/// `[id, [field, value, ...]]`. Returns the entry and its origin.
pub fn stream_entry(v: &Value) -> Option<(Entry, Option<(String, u64)>)> {
    let [id, fields] = items(v) else { return None };
    let id = as_string(id)?;
    let offset: u64 = id.split('-').next()?.parse().ok()?;
    let fields = items(fields);
    let mut entry = Entry { offset, id: 0, ts_us: 0, from: Arc::from(""), text: Arc::from("") };
    let mut origin = None;
    for pair in fields.chunks(2) {
        let [k, val] = pair else { continue };
        let (Some(k), Some(val)) = (as_string(k), as_string(val)) else { continue };
        match k.as_str() {
            "i" => entry.id = val.parse().ok()?,
            "t" => entry.ts_us = val.parse().ok()?,
            "f" => entry.from = val.into(),
            "x" => entry.text = val.into(),
            "o" => origin = parse_origin(&val),
            _ => {}
        }
    }
    Some((entry, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_keep_newlines_in_their_text() {
        let p = Published::decode(b"M\nlobby\n42\n7\n1001\n123456\nn1~ab:9\nalice\nhi\nthere").unwrap();
        let entry =
            Entry { offset: 7, id: 1001, ts_us: 123456, from: "alice".into(), text: "hi\nthere".into() };
        assert_eq!(
            p,
            Published::Message { room: "lobby".into(), epoch: 42, entry, origin: Some(("n1~ab".into(), 9)) }
        );
    }

    #[test]
    fn presence_direct_and_wake() {
        let p = Published::decode(b"P\nlobby\n2\n3\nn2\n0\nbob").unwrap();
        assert_eq!(
            p,
            Published::Presence {
                room: "lobby".into(),
                kind: PresenceKind::Left,
                members: 3,
                node: "n2".into(),
                conn: 0,
                nick: "bob".into()
            }
        );
        let d = Published::decode(b"D\nbob\n5\n6\nalice\nyo").unwrap();
        assert_eq!(
            d,
            Published::Direct { to: "bob".into(), id: 5, ts_us: 6, from: "alice".into(), text: "yo".into() }
        );
        assert_eq!(Published::decode(b"W").unwrap(), Published::Wake);
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        for bad in [&b""[..], b"M", b"M\nr\nx", b"P\nr\n9\n1\nn\n0\nz", b"Q\n", b"\xff", b"D\nbob\n5"] {
            assert!(Published::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stream_entries() {
        let s = |t: &str| Value::BulkString(t.as_bytes().to_vec());
        let v = Value::Array(vec![
            s("12-0"),
            Value::Array(vec![
                s("i"),
                s("99"),
                s("t"),
                s("5"),
                s("f"),
                s("al"),
                s("x"),
                s("yo"),
                s("o"),
                s("n:3"),
            ]),
        ]);
        let (e, origin) = stream_entry(&v).unwrap();
        assert_eq!((e.offset, e.id, e.ts_us, &*e.from, &*e.text), (12, 99, 5, "al", "yo"));
        assert_eq!(origin, Some(("n".into(), 3)));
        assert!(stream_entry(&Value::Nil).is_none());
    }
}
