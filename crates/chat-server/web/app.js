// The chat page: log in (POST /session), then speak the chat protocol
// over one WebSocket (/ws). Rooms resume from (epoch, offset) after a
// reconnect, so a restart or an upgrade of the server loses nothing that
// was stored. Everything is built with textContent: no markup from peers.
import { Body, Code, decode, encode, validName } from "./protocol.js";

const $ = (sel) => document.querySelector(sel);
const store = window.sessionStorage; // per tab: two tabs may be two users

const state = {
  nick: null,
  session: null,        // the credential: sent as the Login token
  ws: null,
  connected: false,
  nextId: 1,
  pending: new Map(),   // request id -> callback(reply)
  panes: new Map(),     // "#room" or "@nick" -> pane
  current: null,
  backoff: 250,
  retryTimer: null,
  stopped: false,       // signed in elsewhere or logged out: no reconnect
};

// ---------- panes ----------

function pane(key) {
  let p = state.panes.get(key);
  if (!p) {
    p = { key, kind: key[0] === "#" ? "room" : "dm", name: key.slice(1), items: [], unread: 0,
          members: new Set(), count: 0, epoch: null, offset: 0n, joined: false };
    state.panes.set(key, p);
    saveRooms();
  }
  return p;
}

function saveRooms() {
  const rooms = [...state.panes.values()].filter((p) => p.kind === "room").map((p) => ({
    name: p.name, epoch: p.epoch === null ? null : String(p.epoch), offset: String(p.offset),
  }));
  store.setItem("rooms", JSON.stringify(rooms));
  if (state.current) store.setItem("current", state.current);
}

function loadRooms() {
  try {
    for (const r of JSON.parse(store.getItem("rooms") || "[]")) {
      const p = pane("#" + r.name);
      p.epoch = r.epoch === null ? null : BigInt(r.epoch);
      p.offset = BigInt(r.offset || "0");
    }
  } catch { /* a bad saved list is no list */ }
}

const time = (tsUs) => {
  const d = new Date(Number(tsUs / 1000n));
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
};

function hue(nick) {
  let h = 0;
  for (const c of nick) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function addItem(p, item) {
  p.items.push(item);
  if (p.items.length > 1000) p.items.shift();
  if (state.current === p.key) {
    renderItem(item, true);
  } else if (item.kind === "msg" && !item.history) {
    p.unread += 1;
    renderSidebar();
  }
}

function renderItem(item, scroll) {
  const list = $("#messages");
  const li = document.createElement("li");
  if (item.kind === "msg") {
    li.className = "msg" + (item.mine ? " mine" : "") + (item.sending ? " sending" : "") + (item.failed ? " failed" : "");
    li.dataset.from = item.from;
    const who = document.createElement("span");
    who.className = "from";
    who.textContent = item.from;
    who.style.color = `hsl(${hue(item.from)} 60% 40%)`;
    const when = document.createElement("time");
    when.textContent = item.tsUs ? time(item.tsUs) : "";
    const body = document.createElement("div");
    body.className = "text";
    body.textContent = item.text;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.append(who, when);
    if (item.sending) meta.append(Object.assign(document.createElement("em"), { textContent: "sending…" }));
    if (item.failed) meta.append(Object.assign(document.createElement("em"), { textContent: "not sent: " + item.failed }));
    li.append(meta, body);
    item.el = li;
  } else {
    li.className = "note";
    li.textContent = item.text;
  }
  list.append(li);
  if (scroll) list.scrollTop = list.scrollHeight;
}

function show(key) {
  const p = pane(key);
  state.current = key;
  p.unread = 0;
  saveRooms();
  $("#title").textContent = (p.kind === "room" ? "#" : "@") + p.name;
  $("#members-title").textContent = p.kind === "room" ? "In this room" : "Conversation";
  const list = $("#messages");
  list.replaceChildren();
  for (const item of p.items) renderItem(item, false);
  list.scrollTop = list.scrollHeight;
  renderSidebar();
  renderMembers();
  $("#composer-input").placeholder = p.kind === "room" ? `Message #${p.name}` : `Message @${p.name}`;
  document.body.classList.remove("drawer-open");
}

function renderSidebar() {
  for (const [sel, kind] of [["#room-list", "room"], ["#dm-list", "dm"]]) {
    const ul = $(sel);
    ul.replaceChildren();
    for (const p of state.panes.values()) {
      if (p.kind !== kind) continue;
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.className = "pane" + (p.key === state.current ? " active" : "");
      b.dataset.key = p.key;
      b.textContent = (kind === "room" ? "# " : "@ ") + p.name;
      if (kind === "room" && p.count) {
        const c = document.createElement("span");
        c.className = "count";
        c.textContent = p.count;
        b.append(c);
      }
      if (p.unread) {
        const u = document.createElement("span");
        u.className = "unread";
        u.textContent = p.unread;
        b.append(u);
      }
      b.onclick = () => show(p.key);
      li.append(b);
      ul.append(li);
    }
  }
}

function renderMembers() {
  const p = state.current && state.panes.get(state.current);
  const ul = $("#members");
  ul.replaceChildren();
  if (!p) return;
  const names = p.kind === "room" ? [...p.members].sort() : [state.nick, p.name];
  for (const n of names) {
    const li = document.createElement("li");
    li.textContent = n;
    li.style.setProperty("--dot", `hsl(${hue(n)} 60% 45%)`);
    if (n !== state.nick) li.onclick = () => show("@" + n);
    ul.append(li);
  }
  $("#member-count").textContent = p.kind === "room" ? `${p.count || names.length} members` : "direct messages";
}

function setStatus(text, kind) {
  const s = $("#status");
  s.textContent = text;
  s.dataset.state = kind;
}

// ---------- the connection ----------

function send(bytes) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(bytes);
}

function request(make, onReply) {
  const id = state.nextId++;
  if (onReply) state.pending.set(id, onReply);
  send(make(id));
  return id;
}

function connect() {
  clearTimeout(state.retryTimer);
  if (state.stopped) return;
  setStatus("connecting…", "connecting");
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => request((id) => encode.login(id, state.nick, state.session), onLogin);
  ws.onmessage = (ev) => {
    let f;
    try { f = decode(ev.data); } catch (e) { console.error("bad frame", e); return; }
    onFrame(f);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.connected = false;
    state.pending.clear();
    for (const p of state.panes.values()) p.joined = false;
    if (state.stopped) return;
    const wait = Math.min(state.backoff, 10000) * (0.5 + Math.random());
    state.backoff = Math.min(state.backoff * 2, 10000);
    setStatus(`disconnected — reconnecting in ${Math.ceil(wait / 1000)} s`, "down");
    state.retryTimer = setTimeout(connect, wait);
  };
}

async function onLogin(r) {
  if (r.type === "ok") {
    state.connected = true;
    state.backoff = 250;
    setStatus("connected", "up");
    for (const p of state.panes.values()) if (p.kind === "room") join(p);
    request((id) => encode.listRooms(id), (r) => { if (r.type === "ok") renderRoomChoices(r.rooms); });
    refreshOnline();
  } else if (r.code === Code.BAD_TOKEN || r.code === Code.NICKNAME_TAKEN) {
    // The session is gone (expired, or the server lost it): open another
    // with the same nickname, or ask again.
    state.ws.onclose = null;
    state.ws.close();
    const ok = await openSession(state.nick, store.getItem("token") || "");
    if (ok) connect(); else logout(`${r.message}: log in again`);
  } else {
    setStatus(`login failed: ${r.message}`, "down");
  }
}

function join(p) {
  const resume = p.epoch === null ? null : { epoch: p.epoch, offset: p.offset };
  request((id) => encode.join(id, p.name, resume), (r) => {
    if (r.type !== "ok") {
      addItem(p, { kind: "note", text: `cannot join #${p.name}: ${r.message}` });
      return;
    }
    const gap = p.epoch !== null && !r.recovered;
    if (p.joined === false && p.epoch !== null) {
      addItem(p, { kind: "note", text: gap ? "— reconnected; some messages may be missing —" : "— reconnected —" });
    }
    p.joined = true;
    p.epoch = r.epoch;
    p.count = r.members;
    if (gap) p.offset = 0n;
    saveRooms();
    request((id) => encode.who(id, p.name), (w) => {
      if (w.type === "ok") { p.members = new Set(w.nicks); p.count = w.total; renderMembers(); renderSidebar(); }
    });
    renderSidebar();
  });
}

function onFrame(f) {
  switch (f.type) {
    case "ok":
    case "error": {
      const cb = state.pending.get(f.rid);
      state.pending.delete(f.rid);
      if (cb) cb(f);
      break;
    }
    case "message": {
      const p = pane("#" + f.room);
      if (f.offset <= p.offset) break; // already shown
      p.offset = f.offset;
      saveRooms();
      addItem(p, { kind: "msg", from: f.from, text: f.text, tsUs: f.tsUs, history: f.history, mine: f.from === state.nick });
      break;
    }
    case "direct": {
      const p = pane("@" + f.from);
      addItem(p, { kind: "msg", from: f.from, text: f.text, tsUs: f.tsUs });
      renderSidebar();
      break;
    }
    case "presence": {
      const p = pane("#" + f.room);
      if (f.joined) p.members.add(f.nick); else p.members.delete(f.nick);
      p.count = p.members.size;
      addItem(p, { kind: "note", text: `${f.nick} ${f.joined ? "joined" : "left"}` });
      if (state.current === p.key) renderMembers();
      renderSidebar();
      refreshOnline();
      break;
    }
    case "member-count": {
      const p = pane("#" + f.room);
      p.count = f.members;
      if (state.current === p.key) renderMembers();
      renderSidebar();
      break;
    }
    case "ping":
      send(encode.pong(f.nonce));
      break;
    case "going-away":
      setStatus(`server going away: ${f.reason}`, "down");
      state.backoff = Math.max(250, f.retryAfterMs);
      break;
    case "error-push":
      if (f.code === Code.NICKNAME_TAKEN || f.code === Code.BAD_TOKEN) {
        state.stopped = true;
        setStatus(f.message, "down");
        $("#takeover").hidden = f.code !== Code.NICKNAME_TAKEN;
        if (f.code === Code.BAD_TOKEN) logout(f.message);
      } else {
        setStatus(f.message, "down");
      }
      break;
  }
}

function say(textValue) {
  const p = state.current && state.panes.get(state.current);
  if (!p || !textValue) return;
  if (textValue.startsWith("/join ")) return joinNamed(textValue.slice(6).trim());
  if (textValue.startsWith("/msg ")) {
    const [, to, ...rest] = textValue.split(" ");
    return directTo(to, rest.join(" "));
  }
  if (p.kind === "dm") return directTo(p.name, textValue);
  const item = { kind: "msg", from: state.nick, text: textValue, mine: true, sending: true };
  addItem(p, item);
  if (!state.connected) { markFailed(item, "not connected"); return; }
  request((id) => encode.say(id, p.name, textValue), (r) => settle(p, item, r));
}

function directTo(to, textValue) {
  if (!validName(to)) return;
  const p = pane("@" + to);
  show(p.key);
  if (!textValue) return;
  const item = { kind: "msg", from: state.nick, text: textValue, mine: true, sending: true };
  addItem(p, item);
  request((id) => encode.direct(id, to, textValue), (r) => settle(null, item, r));
}

function settle(p, item, r) {
  item.sending = false;
  if (r.type === "ok") {
    item.tsUs = r.tsUs;
    if (p && r.offset > p.offset) { p.offset = r.offset; saveRooms(); }
  } else {
    item.failed = r.message;
  }
  rerender(item);
}

function markFailed(item, why) {
  item.sending = false;
  item.failed = why;
  rerender(item);
}

function rerender(item) {
  if (!item.el) return;
  const old = item.el;
  renderItem(item, false);
  old.replaceWith(item.el);
}

function joinNamed(name) {
  if (!validName(name)) { setStatus(`${name}: names are 1-32 of A-Z a-z 0-9 _ . -`, "down"); return; }
  const p = pane("#" + name);
  show(p.key);
  if (state.connected && !p.joined) join(p);
}

function leaveCurrent() {
  const p = state.current && state.panes.get(state.current);
  if (!p) return;
  if (p.kind === "room") request((id) => encode.leave(id, p.name));
  state.panes.delete(p.key);
  state.current = null;
  saveRooms();
  const next = state.panes.keys().next();
  if (next.done) { $("#messages").replaceChildren(); $("#title").textContent = "no room"; renderSidebar(); renderMembers(); }
  else show(next.value);
}

function renderRoomChoices(rooms) {
  const dl = $("#room-choices");
  dl.replaceChildren();
  for (const r of rooms) {
    const o = document.createElement("option");
    o.value = r.name;
    o.label = `${r.members} members`;
    dl.append(o);
  }
}

async function refreshOnline() {
  if (!state.session) return;
  try {
    const res = await fetch("/users", { headers: { Authorization: `Bearer ${state.session}` } });
    if (!res.ok) return;
    const { users, total } = await res.json();
    const ul = $("#online");
    ul.replaceChildren();
    for (const u of users) {
      const li = document.createElement("li");
      li.textContent = u.nick;
      li.className = u.connected ? "on" : "away";
      if (u.nick !== state.nick) li.onclick = () => show("@" + u.nick);
      ul.append(li);
    }
    $("#online-count").textContent = total;
  } catch { /* offline: the next refresh will do */ }
}

// ---------- logging in and out ----------

async function openSession(nick, token) {
  const res = await fetch("/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(token ? { nick, token } : { nick }),
  }).catch(() => null);
  if (!res) { $("#login-error").textContent = "the server cannot be reached"; return false; }
  const body = await res.json().catch(() => ({}));
  if (res.status !== 201) { $("#login-error").textContent = body.message || `error ${res.status}`; return false; }
  state.nick = body.nick;
  state.session = body.session;
  store.setItem("nick", body.nick);
  store.setItem("session", body.session);
  if (token) store.setItem("token", token);
  return true;
}

function enter() {
  $("#login").hidden = true;
  $("#chat").hidden = false;
  $("#me").textContent = state.nick;
  state.stopped = false;
  loadRooms();
  if (state.panes.size === 0) pane("#lobby");
  const current = store.getItem("current");
  show(state.panes.has(current) ? current : state.panes.keys().next().value);
  connect();
}

function logout(message) {
  state.stopped = true;
  if (state.session) fetch("/session", { method: "DELETE", headers: { Authorization: `Bearer ${state.session}` } }).catch(() => {});
  if (state.ws) { state.ws.onclose = null; state.ws.close(); }
  store.clear();
  state.session = null;
  state.panes.clear();
  $("#chat").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
}

function wire() {
  $("#login-form").onsubmit = async (e) => {
    e.preventDefault();
    const nick = $("#login-nick").value.trim();
    if (!validName(nick)) { $("#login-error").textContent = "1 to 32 of A-Z a-z 0-9 _ . -"; return; }
    if (await openSession(nick, $("#login-token").value)) enter();
  };
  $("#composer").onsubmit = (e) => {
    e.preventDefault();
    const input = $("#composer-input");
    say(input.value.trim());
    input.value = "";
  };
  $("#join-form").onsubmit = (e) => {
    e.preventDefault();
    joinNamed($("#join-name").value.trim());
    $("#join-name").value = "";
  };
  $("#leave").onclick = leaveCurrent;
  $("#logout").onclick = () => logout();
  $("#menu").onclick = () => document.body.classList.toggle("drawer-open");
  $("#takeover").onclick = () => { $("#takeover").hidden = true; state.stopped = false; connect(); };
  setInterval(refreshOnline, 15000);
  state.nick = store.getItem("nick");
  state.session = store.getItem("session");
  if (state.nick && state.session) enter();
}

wire();
