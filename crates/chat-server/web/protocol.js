// The chat protocol (docs/PROTOCOL.md, version 2) as the page speaks it
// over WebSocket: each binary message is one payload, without the length
// prefix of the TCP door. Integers are big-endian; u64 values are BigInt.

export const VERSION = 2;

const utf8 = new TextEncoder();
const text = new TextDecoder("utf-8", { fatal: true });

export const Op = {
  LOGIN: 0x01, JOIN: 0x02, LEAVE: 0x03, SAY: 0x04, DIRECT: 0x05,
  LIST_ROOMS: 0x06, WHO: 0x07, PING: 0x08, PONG: 0x09,
  OK: 0x40, ERROR: 0x41,
  MESSAGE: 0x80, DIRECT_MESSAGE: 0x81, PRESENCE: 0x82, SERVER_PING: 0x83,
  GOING_AWAY: 0x84, ERROR_PUSH: 0x85, MEMBER_COUNT: 0x86,
};

export const Body = { EMPTY: 0, WELCOME: 1, JOINED: 2, SENT: 3, ROOMS: 4, MEMBERS: 5, PONG: 6 };

export const Code = {
  MALFORMED: 100, TEXT_TOO_LONG: 106, NOT_LOGGED_IN: 200, NICKNAME_TAKEN: 202,
  BAD_TOKEN: 203, UNKNOWN_ROOM: 300, ALREADY_MEMBER: 302, UNKNOWN_USER: 303,
  RATE_LIMITED: 400, SHUTTING_DOWN: 501, IDLE_TIMEOUT: 502, STORE_FAILED: 504,
};

/** A growing byte buffer for one request. */
class Writer {
  constructor(op, id) {
    this.bytes = [op, (id >>> 24) & 255, (id >>> 16) & 255, (id >>> 8) & 255, id & 255];
  }
  u8(v) { this.bytes.push(v & 255); return this; }
  u64(v) {
    const b = BigInt.asUintN(64, BigInt(v));
    for (let s = 56n; s >= 0n; s -= 8n) this.bytes.push(Number((b >> s) & 255n));
    return this;
  }
  str8(s) {
    const b = utf8.encode(s ?? "");
    if (b.length > 255) throw new Error("string over 255 bytes");
    this.bytes.push(b.length, ...b);
    return this;
  }
  text(s) { for (const c of utf8.encode(s)) this.bytes.push(c); return this; }
  done() { return new Uint8Array(this.bytes); }
}

export const encode = {
  login: (id, nick, token) => new Writer(Op.LOGIN, id).u8(VERSION).str8(nick).str8(token || "").done(),
  join: (id, room, resume) => {
    const w = new Writer(Op.JOIN, id).str8(room);
    return resume ? w.u8(1).u64(resume.epoch).u64(resume.offset).done() : w.u8(0).done();
  },
  leave: (id, room) => new Writer(Op.LEAVE, id).str8(room).done(),
  say: (id, room, msg) => new Writer(Op.SAY, id).str8(room).text(msg).done(),
  direct: (id, to, msg) => new Writer(Op.DIRECT, id).str8(to).text(msg).done(),
  listRooms: (id) => new Writer(Op.LIST_ROOMS, id).done(),
  who: (id, room) => new Writer(Op.WHO, id).str8(room).done(),
  ping: (id, nonce) => new Writer(Op.PING, id).u64(nonce).done(),
  pong: (nonce) => new Writer(Op.PONG, 0).u64(nonce).done(),
};

/** A bounds-checked cursor over one server payload. */
class Reader {
  constructor(buf) { this.v = new DataView(buf); this.at = 0; }
  need(n) { if (this.at + n > this.v.byteLength) throw new Error("truncated frame"); }
  u8() { this.need(1); return this.v.getUint8(this.at++); }
  u16() { this.need(2); const x = this.v.getUint16(this.at); this.at += 2; return x; }
  u32() { this.need(4); const x = this.v.getUint32(this.at); this.at += 4; return x; }
  u64() { this.need(8); const x = this.v.getBigUint64(this.at); this.at += 8; return x; }
  str8() {
    const n = this.u8();
    this.need(n);
    const s = text.decode(new Uint8Array(this.v.buffer, this.at, n));
    this.at += n;
    return s;
  }
  rest() {
    const s = text.decode(new Uint8Array(this.v.buffer, this.at));
    this.at = this.v.byteLength;
    return s;
  }
}

function body(r, kind) {
  switch (kind) {
    case Body.EMPTY: return {};
    case Body.WELCOME: return {
      maxPayload: r.u32(), ratePerSec: r.u32(), maxRooms: r.u32(),
      maxMembers: r.u32(), historyLen: r.u32(), idleTimeoutMs: r.u32(),
    };
    case Body.JOINED: return {
      members: r.u32(), history: r.u32(), epoch: r.u64(), lastOffset: r.u64(), recovered: r.u8() === 1,
    };
    case Body.SENT: return { id: r.u64(), tsUs: r.u64(), offset: r.u64() };
    case Body.ROOMS: {
      const total = r.u32(), n = r.u32(), rooms = [];
      for (let i = 0; i < n; i++) rooms.push({ name: r.str8(), members: r.u32() });
      return { total, rooms };
    }
    case Body.MEMBERS: {
      const total = r.u32(), n = r.u32(), nicks = [];
      for (let i = 0; i < n; i++) nicks.push(r.str8());
      return { total, nicks };
    }
    case Body.PONG: return { nonce: r.u64() };
    default: throw new Error(`unknown body kind ${kind}`);
  }
}

/** Decodes one server payload (an ArrayBuffer) into a plain object. */
export function decode(buf) {
  const r = new Reader(buf);
  const op = r.u8();
  switch (op) {
    // `rid`: the request id (a Sent body has an `id` of its own).
    case Op.OK: { const rid = r.u32(); const kind = r.u8(); return { type: "ok", rid, kind, ...body(r, kind) }; }
    case Op.ERROR: return { type: "error", rid: r.u32(), code: r.u16(), message: r.rest() };
    case Op.MESSAGE: {
      const history = (r.u8() & 1) === 1;
      return {
        type: "message", history, id: r.u64(), tsUs: r.u64(), offset: r.u64(),
        room: r.str8(), from: r.str8(), text: r.rest(),
      };
    }
    case Op.DIRECT_MESSAGE: return { type: "direct", id: r.u64(), tsUs: r.u64(), from: r.str8(), text: r.rest() };
    case Op.PRESENCE: {
      const kind = r.u8();
      return { type: "presence", joined: kind === 1, room: r.str8(), nick: r.str8() };
    }
    case Op.SERVER_PING: return { type: "ping", nonce: r.u64() };
    case Op.GOING_AWAY: return { type: "going-away", retryAfterMs: r.u32(), reason: r.rest() };
    case Op.ERROR_PUSH: return { type: "error-push", code: r.u16(), message: r.rest() };
    case Op.MEMBER_COUNT: return { type: "member-count", room: r.str8(), members: r.u32() };
    default: throw new Error(`unknown opcode 0x${op.toString(16)}`);
  }
}

/** Names must be 1 to 32 of A-Z a-z 0-9 _ . - (the protocol's rule). */
export const validName = (s) => /^[A-Za-z0-9_.-]{1,32}$/.test(s);
