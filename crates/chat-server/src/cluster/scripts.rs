//! The Lua scripts a node runs in Redis: each one step of the cluster,
//! atomic, in one round trip. Loaded at every (re)connection with
//! `SCRIPT LOAD` and called with `EVALSHA`.
//!
//! Keys (prefix `P`, `[cluster] prefix`):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P:room:R` | hash | room R's `epoch` and `last` offset |
//! | `P:log:R` | stream | room R's messages, id `offset-0`, trimmed to about `retain_messages` (`MAXLEN ~`: whole nodes at a time, cheaper; what is kept is read from the stream's first entry) |
//! | `P:members:R` | hash | R's members: nick → node |
//! | `P:rooms` | sorted set | every room name (score 0: by name) |
//! | `P:ids` | string | the message id counter (rooms and direct messages) |
//! | `P:nicks` | hash | nick → node holding it |
//! | `P:nodes` | sorted set | node → time (ms) its liveness runs out |
//! | `P:node:N:members`, `P:node:N:nicks` | sets | what node N holds (`room\nnick`; nicks), for its sweep |
//!
//! Channels: `P:ch:R` (room R's messages and presence), `P:nodech:N`
//! (direct messages for node N's users, and its wake-ups).
//!
//! A claim or presence entry of a node is valid while the node is alive
//! (its `P:nodes` score is in the future): liveness costs one write per
//! node per heartbeat, whatever its number of users. The sweep, run by
//! every node each heartbeat, removes what dead nodes held and publishes
//! their members' departures.

/// The scripts, by name, in the order [`Script`] numbers them.
pub const SOURCES: [(&str, &str); 12] = [
    ("append", APPEND),
    ("load", LOAD),
    ("read", READ),
    ("claim", CLAIM),
    ("release", RELEASE),
    ("presence", PRESENCE),
    ("heartbeat", HEARTBEAT),
    ("sweep", SWEEP),
    ("who", WHO),
    ("rooms", ROOMS),
    ("wake", WAKE),
    ("direct", DIRECT),
];

/// A script, as an index into [`SOURCES`] (and the loaded SHA list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Script {
    /// Appends a message: offset, id, stream, publish.
    Append = 0,
    /// A room's position, tail and member count (creating it if asked).
    Load = 1,
    /// A room's position and messages after an offset.
    Read = 2,
    /// Claims a nickname for this node.
    Claim = 3,
    /// Releases a nickname.
    Release = 4,
    /// Records a join or leave and publishes it.
    Presence = 5,
    /// Refreshes this node's liveness.
    Heartbeat = 6,
    /// Clears what dead nodes held.
    Sweep = 7,
    /// A room's live members.
    Who = 8,
    /// Room names and member counts.
    Rooms = 9,
    /// Wakes a node's subscriber.
    Wake = 10,
    /// Sends a direct message to the recipient's node.
    Direct = 11,
}

impl Script {
    /// Every script, in order.
    pub const ALL: [Script; 12] = [
        Script::Append,
        Script::Load,
        Script::Read,
        Script::Claim,
        Script::Release,
        Script::Presence,
        Script::Heartbeat,
        Script::Sweep,
        Script::Who,
        Script::Rooms,
        Script::Wake,
        Script::Direct,
    ];
}

/// Redis' clock in milliseconds, and integers as decimal text.
const PRELUDE: &str = r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function s(n) return string.format('%d', n) end
local function alive(nodes, node, now)
  local exp = redis.call('ZSCORE', nodes, node)
  return exp ~= false and exp ~= nil and tonumber(exp) > now
end
"#;

/// KEYS: room, log, rooms, ids, channel. ARGV: room, epoch if new,
/// retain, ts_us, from, text, origin, dedup. With dedup = 1 (a retry after
/// a lost reply) a message whose origin is among the room's latest 1,000
/// is not stored again: its offset and id are returned. Returns {offset,
/// id, epoch, was_stored_before}.
const APPEND: &str = r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0)
  redis.call('ZADD', KEYS[3], 0, ARGV[1])
end
if ARGV[8] == '1' then
  for _, e in ipairs(redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1000)) do
    local f, id, origin = e[2], nil, nil
    for i = 1, #f, 2 do
      if f[i] == 'o' then origin = f[i + 1] elseif f[i] == 'i' then id = f[i + 1] end
    end
    if origin == ARGV[7] then return {string.match(e[1], '^(%d+)'), id, epoch, 1} end
  end
end
local offset = redis.call('HINCRBY', KEYS[1], 'last', 1)
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if top and tonumber(string.match(top[1], '^(%d+)')) >= offset then
  -- The position and the Stream disagree (the hash was evicted or
  -- deleted, the Stream kept): go on after the Stream's last message, so
  -- that offsets never go back.
  offset = tonumber(string.match(top[1], '^(%d+)')) + 1
  redis.call('HSET', KEYS[1], 'last', offset)
end
local id = redis.call('INCR', KEYS[4])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], s(offset) .. '-0',
  'i', s(id), 't', ARGV[4], 'f', ARGV[5], 'x', ARGV[6], 'o', ARGV[7])
redis.call('PUBLISH', KEYS[5], 'M\n' .. ARGV[1] .. '\n' .. epoch .. '\n' .. s(offset) .. '\n' .. s(id) ..
  '\n' .. ARGV[4] .. '\n' .. ARGV[7] .. '\n' .. ARGV[5] .. '\n' .. ARGV[6])
return {s(offset), s(id), epoch, 0}
"#;

/// KEYS: room, log, rooms, members. ARGV: create (0/1), epoch if new, tail
/// length, room. Returns nil (no such room) or {epoch, last, created,
/// first kept offset (0: none), members, tail newest first}.
const LOAD: &str = r#"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'last')
local created = 0
if not m[1] then
  if ARGV[1] ~= '1' then return false end
  redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'last', 0)
  redis.call('ZADD', KEYS[3], 0, ARGV[4])
  m = {ARGV[2], '0'}
  created = 1
end
local tail = {}
if tonumber(ARGV[3]) > 0 then tail = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[3]) end
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local f = '0'
if first[1] then f = string.match(first[1][1], '^(%d+)') end
return {m[1], m[2], created, f, redis.call('HLEN', KEYS[4]), tail}
"#;

/// KEYS: room, log, members. ARGV: first offset wanted, count. Returns nil
/// (no such room) or {epoch, last, first kept offset, messages oldest
/// first, members}.
const READ: &str = r#"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'last')
if not m[1] then return false end
local entries = redis.call('XRANGE', KEYS[2], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local f = '0'
if first[1] then f = string.match(first[1][1], '^(%d+)') end
return {m[1], m[2], f, entries, redis.call('HLEN', KEYS[3])}
"#;

/// KEYS: nicks, nodes, node's nicks. ARGV: nick, node. Returns 1 (claimed)
/// or 0 (a live node holds it).
const CLAIM: &str = r#"
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if owner and owner ~= ARGV[2] and alive(KEYS[2], owner, now_ms()) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"#;

/// KEYS: nicks, node's nicks. ARGV: nick, node.
const RELEASE: &str = r#"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"#;

/// KEYS: members, node's members, room channel. ARGV: kind (1 joined, 2
/// left), room, nick, node, connection. Returns the member count.
const PRESENCE: &str = r#"
local entry = ARGV[2] .. '\n' .. ARGV[3]
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
  redis.call('SADD', KEYS[2], entry)
else
  redis.call('SREM', KEYS[2], entry)
  if redis.call('HGET', KEYS[1], ARGV[3]) ~= ARGV[4] then return redis.call('HLEN', KEYS[1]) end
  redis.call('HDEL', KEYS[1], ARGV[3])
end
local n = redis.call('HLEN', KEYS[1])
redis.call('PUBLISH', KEYS[3], 'P\n' .. ARGV[2] .. '\n' .. ARGV[1] .. '\n' .. s(n) .. '\n' .. ARGV[4] ..
  '\n' .. ARGV[5] .. '\n' .. ARGV[3])
return n
"#;

/// KEYS: nodes, ids. ARGV: node, ttl ms, lowest next id. Returns 1 if the
/// node was alive, 0 if it was not (new, or taken for dead: what it holds
/// must be claimed again).
const HEARTBEAT: &str = r#"
local now = now_ms()
local was = alive(KEYS[1], ARGV[1], now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local floor = tonumber(ARGV[3])
if tonumber(redis.call('GET', KEYS[2]) or '0') < floor then redis.call('SET', KEYS[2], s(floor)) end
if was then return 1 end
return 0
"#;

/// KEYS: nodes, nicks. ARGV: prefix. Returns the dead nodes cleared.
const SWEEP: &str = r#"
local P = ARGV[1]
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms(), 'LIMIT', 0, 16)
for _, node in ipairs(dead) do
  local mk = P .. ':node:' .. node .. ':members'
  for _, e in ipairs(redis.call('SMEMBERS', mk)) do
    local room, nick = string.match(e, '^([^\n]*)\n(.*)$')
    if room then
      local hk = P .. ':members:' .. room
      if redis.call('HGET', hk, nick) == node then
        redis.call('HDEL', hk, nick)
        redis.call('PUBLISH', P .. ':ch:' .. room, 'P\n' .. room .. '\n2\n' .. s(redis.call('HLEN', hk)) ..
          '\n' .. node .. '\n0\n' .. nick)
      end
    end
  end
  local nk = P .. ':node:' .. node .. ':nicks'
  for _, nick in ipairs(redis.call('SMEMBERS', nk)) do
    if redis.call('HGET', KEYS[2], nick) == node then redis.call('HDEL', KEYS[2], nick) end
  end
  redis.call('DEL', mk, nk)
  redis.call('ZREM', KEYS[1], node)
end
return dead
"#;

/// KEYS: members, nodes, room. Returns {room exists (0/1), live members}.
const WHO: &str = r#"
local now = now_ms()
local all = redis.call('HGETALL', KEYS[1])
local live, out = {}, {}
for i = 1, #all, 2 do
  local node = all[i + 1]
  if live[node] == nil then live[node] = alive(KEYS[2], node, now) end
  if live[node] then out[#out + 1] = all[i] end
end
return {redis.call('EXISTS', KEYS[3]), out}
"#;

/// KEYS: rooms. ARGV: prefix, limit. Returns {total, name, members, ...}.
const ROOMS: &str = r#"
local out = {redis.call('ZCARD', KEYS[1])}
for _, name in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)) do
  out[#out + 1] = name
  out[#out + 1] = redis.call('HLEN', ARGV[1] .. ':members:' .. name)
end
return out
"#;

/// KEYS: a node's channel.
const WAKE: &str = r#"
return redis.call('PUBLISH', KEYS[1], 'W')
"#;

/// KEYS: nicks, nodes, ids. ARGV: prefix, to, from, ts_us, text. Returns
/// the message id, or 0 if no live node holds `to` (or it is not
/// listening).
const DIRECT: &str = r#"
local owner = redis.call('HGET', KEYS[1], ARGV[2])
if not owner or not alive(KEYS[2], owner, now_ms()) then return 0 end
local id = redis.call('INCR', KEYS[3])
local n = redis.call('PUBLISH', ARGV[1] .. ':nodech:' .. owner,
  'D\n' .. ARGV[2] .. '\n' .. s(id) .. '\n' .. ARGV[4] .. '\n' .. ARGV[3] .. '\n' .. ARGV[5])
if n == 0 then return 0 end
return id
"#;

/// A script's full text (the prelude and its body).
pub fn source(script: Script) -> String {
    format!("{PRELUDE}{}", SOURCES[script as usize].1)
}

/// The Redis key and channel names of one cluster.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Names under `prefix`.
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_string() }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A room's position (hash).
    pub fn room(&self, room: &str) -> String {
        format!("{}:room:{room}", self.prefix)
    }

    /// A room's log (stream).
    pub fn log(&self, room: &str) -> String {
        format!("{}:log:{room}", self.prefix)
    }

    /// A room's members (hash).
    pub fn members(&self, room: &str) -> String {
        format!("{}:members:{room}", self.prefix)
    }

    /// A room's channel.
    pub fn room_channel(&self, room: &str) -> String {
        format!("{}:ch:{room}", self.prefix)
    }

    /// The room named by a room channel, if it is one.
    pub fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&self.prefix)?.strip_prefix(":ch:")
    }

    /// A node's channel.
    pub fn node_channel(&self, node: &str) -> String {
        format!("{}:nodech:{node}", self.prefix)
    }

    /// Every room name.
    pub fn rooms(&self) -> String {
        format!("{}:rooms", self.prefix)
    }

    /// The message id counter.
    pub fn ids(&self) -> String {
        format!("{}:ids", self.prefix)
    }

    /// Nick → node.
    pub fn nicks(&self) -> String {
        format!("{}:nicks", self.prefix)
    }

    /// Node liveness.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// What a node holds: its members.
    pub fn node_members(&self, node: &str) -> String {
        format!("{}:node:{node}:members", self.prefix)
    }

    /// What a node holds: its nicknames.
    pub fn node_nicks(&self, node: &str) -> String {
        format!("{}:node:{node}:nicks", self.prefix)
    }
}
