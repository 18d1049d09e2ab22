//! Replies: the answer to each request.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, DecodeErrorKind, ErrorCode};
use super::wire::{put_str8, str8_len, Reader};
use super::{body_kind, opcode, TEXT_HEADROOM};

/// Server limits announced to the client in the login reply
/// ([`OkBody::Welcome`]). These are server configuration; [`Default`]
/// gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ServerLimits {
    /// Maximum frame payload size in bytes, in both directions
    /// (default 65,536).
    pub max_payload: u32,
    /// `Say` plus `Direct` messages allowed per second per connection;
    /// 0 means unlimited (default 50).
    pub rate_per_sec: u32,
    /// Maximum number of rooms a user may be a member of (default 32).
    pub max_rooms_per_user: u32,
    /// Maximum number of members in a room (default 10,000).
    pub max_members_per_room: u32,
    /// Number of recent messages kept per room and replayed on join
    /// (default 100).
    pub history_len: u32,
    /// A connection that sends nothing for this long is closed, in
    /// milliseconds (default 60,000).
    pub idle_timeout_ms: u32,
}

impl ServerLimits {
    /// Encoded size of the limits: six `u32`.
    const ENCODED_LEN: usize = 6 * 4;

    /// Longest text accepted in a `Say` or `Direct` request:
    /// `max_payload - TEXT_HEADROOM` bytes (0 if `max_payload` is smaller).
    pub fn max_text_len(&self) -> usize {
        usize::try_from(self.max_payload.saturating_sub(TEXT_HEADROOM)).unwrap_or(usize::MAX)
    }

    fn encode(&self, dst: &mut BytesMut) {
        dst.put_u32(self.max_payload);
        dst.put_u32(self.rate_per_sec);
        dst.put_u32(self.max_rooms_per_user);
        dst.put_u32(self.max_members_per_room);
        dst.put_u32(self.history_len);
        dst.put_u32(self.idle_timeout_ms);
    }

    fn decode(r: &mut Reader<'_>) -> Result<ServerLimits, DecodeError> {
        Ok(ServerLimits {
            max_payload: r.u32()?,
            rate_per_sec: r.u32()?,
            max_rooms_per_user: r.u32()?,
            max_members_per_room: r.u32()?,
            history_len: r.u32()?,
            idle_timeout_ms: r.u32()?,
        })
    }
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_payload: 64 * 1024,
            rate_per_sec: 50,
            max_rooms_per_user: 32,
            max_members_per_room: 10_000,
            history_len: 100,
            idle_timeout_ms: 60_000,
        }
    }
}

/// Size of a `Joined` body: members, history, epoch, last offset, recovered.
const JOINED_LEN: usize = 4 + 4 + 8 + 8 + 1;

/// A place in a room's log: the log's epoch and a message offset in it.
/// A client keeps the position of the last message it saw in each room and
/// joins with it after a reconnect to get exactly what it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    /// The log's epoch (see [`OkBody::Joined`]).
    pub epoch: u64,
    /// A message offset; 0 is "before the first message".
    pub offset: u64,
}

/// A room and its member count, as listed by [`OkBody::Rooms`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomInfo {
    /// Room name.
    pub name: String,
    /// Number of members.
    pub members: u32,
}

/// The body of a successful reply. Each request has one body kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OkBody {
    /// No data (answers `Leave`).
    Empty,
    /// Login accepted (answers `Login`).
    Welcome(ServerLimits),
    /// Room joined (answers `Join`). Exactly `history` message pushes with
    /// the history flag follow this reply, oldest first, before any other
    /// frame.
    Joined {
        /// Member count of the room, including the joiner.
        members: u32,
        /// Number of history message pushes that follow.
        history: u32,
        /// The room log's epoch: it changes only when the stored log was
        /// lost, so positions of another epoch mean nothing here.
        epoch: u64,
        /// Offset of the room's latest message (0: none yet). Live messages
        /// continue from `last_offset + 1`.
        last_offset: u64,
        /// True when the join asked to resume and the history that follows
        /// is exactly every message after its position; false when it is
        /// the recent history instead (no position given, another epoch,
        /// or older than the server keeps).
        recovered: bool,
    },
    /// Message accepted, and stored as the server's durability policy
    /// requires (answers `Say` and `Direct`).
    Sent {
        /// Server-assigned message id.
        id: u64,
        /// Server timestamp, unix microseconds.
        ts_us: u64,
        /// The message's offset in its room's log; 0 for a direct message.
        offset: u64,
    },
    /// Room list (answers `ListRooms`).
    Rooms {
        /// Total number of rooms; larger than `rooms.len()` when the list
        /// was cut to fit the maximum payload size.
        total: u32,
        /// The rooms listed.
        rooms: Vec<RoomInfo>,
    },
    /// Member list (answers `Who`).
    Members {
        /// Total number of members; larger than `nicks.len()` when the
        /// list was cut to fit the maximum payload size.
        total: u32,
        /// Nicknames of the members listed.
        nicks: Vec<String>,
    },
    /// Echo of a client ping (answers `Ping`).
    Pong {
        /// The nonce of the ping.
        nonce: u64,
    },
}

impl OkBody {
    /// The body kind byte (see [`body_kind`]).
    pub fn kind(&self) -> u8 {
        match self {
            OkBody::Empty => body_kind::EMPTY,
            OkBody::Welcome(_) => body_kind::WELCOME,
            OkBody::Joined { .. } => body_kind::JOINED,
            OkBody::Sent { .. } => body_kind::SENT,
            OkBody::Rooms { .. } => body_kind::ROOMS,
            OkBody::Members { .. } => body_kind::MEMBERS,
            OkBody::Pong { .. } => body_kind::PONG,
        }
    }

    /// Size of the encoded body, excluding the kind byte.
    fn body_len(&self) -> usize {
        match self {
            OkBody::Empty => 0,
            OkBody::Welcome(_) => ServerLimits::ENCODED_LEN,
            OkBody::Joined { .. } => JOINED_LEN,
            OkBody::Sent { .. } => 24,
            OkBody::Pong { .. } => 8,
            OkBody::Rooms { rooms, .. } => 8 + rooms.iter().map(|r| str8_len(&r.name) + 4).sum::<usize>(),
            OkBody::Members { nicks, .. } => 8 + nicks.iter().map(|n| str8_len(n)).sum::<usize>(),
        }
    }

    fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(self.kind());
        match self {
            OkBody::Empty => {}
            OkBody::Welcome(limits) => limits.encode(dst),
            OkBody::Joined { members, history, epoch, last_offset, recovered } => {
                dst.put_u32(*members);
                dst.put_u32(*history);
                dst.put_u64(*epoch);
                dst.put_u64(*last_offset);
                dst.put_u8(u8::from(*recovered));
            }
            OkBody::Sent { id, ts_us, offset } => {
                dst.put_u64(*id);
                dst.put_u64(*ts_us);
                dst.put_u64(*offset);
            }
            OkBody::Rooms { total, rooms } => {
                dst.put_u32(*total);
                dst.put_u32(count_u32(rooms.len()));
                for room in rooms {
                    put_str8(dst, &room.name);
                    dst.put_u32(room.members);
                }
            }
            OkBody::Members { total, nicks } => {
                dst.put_u32(*total);
                dst.put_u32(count_u32(nicks.len()));
                for nick in nicks {
                    put_str8(dst, nick);
                }
            }
            OkBody::Pong { nonce } => dst.put_u64(*nonce),
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<OkBody, DecodeError> {
        let kind = r.u8()?;
        Ok(match kind {
            body_kind::EMPTY => OkBody::Empty,
            body_kind::WELCOME => OkBody::Welcome(ServerLimits::decode(r)?),
            body_kind::JOINED => OkBody::Joined {
                members: r.u32()?,
                history: r.u32()?,
                epoch: r.u64()?,
                last_offset: r.u64()?,
                recovered: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(r.err(DecodeErrorKind::InvalidField("recovered flag"))),
                },
            },
            body_kind::SENT => OkBody::Sent { id: r.u64()?, ts_us: r.u64()?, offset: r.u64()? },
            body_kind::ROOMS => {
                let (total, count) = list_header(r)?;
                // Each entry takes at least 6 bytes: never trust `count`
                // for the allocation.
                let mut rooms = Vec::with_capacity(count.min(r.remaining() / 6));
                for _ in 0..count {
                    let name = r.name()?.to_owned();
                    let members = r.u32()?;
                    rooms.push(RoomInfo { name, members });
                }
                OkBody::Rooms { total, rooms }
            }
            body_kind::MEMBERS => {
                let (total, count) = list_header(r)?;
                let mut nicks = Vec::with_capacity(count.min(r.remaining() / 2));
                for _ in 0..count {
                    nicks.push(r.name()?.to_owned());
                }
                OkBody::Members { total, nicks }
            }
            body_kind::PONG => OkBody::Pong { nonce: r.u64()? },
            _ => return Err(r.err(DecodeErrorKind::InvalidField("body kind"))),
        })
    }
}

/// Reads `total` and `count` of a list body; `count` may not exceed `total`.
fn list_header(r: &mut Reader<'_>) -> Result<(u32, usize), DecodeError> {
    let total = r.u32()?;
    let count = r.u32()?;
    if count > total {
        return Err(r.err(DecodeErrorKind::InvalidField("list count")));
    }
    Ok((total, usize::try_from(count).unwrap_or(usize::MAX)))
}

fn count_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reply {
    /// The request succeeded.
    Ok(OkBody),
    /// The request failed.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// Human-readable detail (UTF-8, may be empty).
        message: String,
    },
}

impl Reply {
    pub(super) fn opcode(&self) -> u8 {
        match self {
            Reply::Ok(_) => opcode::OK,
            Reply::Error { .. } => opcode::ERROR,
        }
    }

    pub(super) fn body_len(&self) -> usize {
        match self {
            Reply::Ok(body) => 1 + body.body_len(),
            Reply::Error { message, .. } => 2 + message.len(),
        }
    }

    /// Decodes the rest of a reply with opcode `op` (`OK` or `ERROR`),
    /// after the request id.
    pub(super) fn decode(op: u8, r: &mut Reader<'_>) -> Result<Reply, DecodeError> {
        if op == opcode::OK {
            Ok(Reply::Ok(OkBody::decode(r)?))
        } else {
            let code = r.error_code()?;
            let message = r.text()?.to_owned();
            Ok(Reply::Error { code, message })
        }
    }

    pub(super) fn encode(&self, request_id: u32, dst: &mut BytesMut) {
        dst.reserve(5 + self.body_len());
        dst.put_u8(self.opcode());
        dst.put_u32(request_id);
        match self {
            Reply::Ok(body) => body.encode(dst),
            Reply::Error { code, message } => {
                dst.put_u16(code.as_u16());
                dst.put_slice(message.as_bytes());
            }
        }
    }
}
