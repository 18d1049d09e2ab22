// The chat page in a real browser: two pages (one on a phone-sized
// screen) and a terminal chat-client chat in one room, each sees the
// others' messages and presence; the server restarts on its data
// directory and the pages carry on by themselves, without losing or
// repeating a message. Screenshots are saved and checked not blank.
//
// Run by crates/chat-server/tests/browser.rs, which passes:
//   CHAT_SERVER, CHAT_CLIENT  the binaries
//   ARTIFACTS                 where screenshots go (never committed)
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import puppeteer from "puppeteer-core";

const SERVER = process.env.CHAT_SERVER;
const CLIENT = process.env.CHAT_CLIENT;
const ARTIFACTS = process.env.ARTIFACTS || os.tmpdir();
const STEP = 15000; // the longest any one step may take
const deadline = setTimeout(() => fail("the whole test took over 3 minutes"), 180000);

let passed = 0;
const children = new Set();
let browser;

function fail(why) {
  console.error(`FAIL: ${why}`);
  cleanup();
  console.log(`${passed} passed, 1 failed`);
  process.exit(1);
}

function check(cond, what) {
  if (!cond) fail(what);
  passed += 1;
  console.log(`ok   ${what}`);
}

function cleanup() {
  clearTimeout(deadline);
  for (const c of children) c.kill("SIGKILL");
  if (browser) browser.process()?.kill("SIGKILL");
}

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function until(what, f, ms = STEP) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await f();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`${what} (last: ${last})`);
}

// ---------- the server ----------

const dataDir = mkdtempSync(path.join(os.tmpdir(), "chat-browser-"));
const [chatPort, httpPort] = [await freePort(), await freePort()];
const base = `http://127.0.0.1:${httpPort}`;
let server;

async function startServer() {
  const args = ["--listen", `127.0.0.1:${chatPort}`, "--http-listen", `127.0.0.1:${httpPort}`, "--data-dir", dataDir, "--threads", "2"];
  server = spawn(SERVER, args, { stdio: ["ignore", "inherit", "inherit"] });
  children.add(server);
  await until("the server answers /healthz", async () => (await fetch(`${base}/healthz`)).ok);
}

async function stopServer() {
  const exited = new Promise((r) => server.once("exit", r));
  server.kill("SIGTERM");
  await exited;
  children.delete(server);
}

// ---------- the terminal client, in script mode ----------

function terminal(nick) {
  const c = spawn(CLIENT, ["--connect", `127.0.0.1:${chatPort}`, "--nick", nick, "--script", "--linger", "0"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  children.add(c);
  const lines = [];
  let buf = "";
  c.stdout.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  return {
    lines,
    say: (line) => c.stdin.write(line + "\n"),
    saw: (what, pred) => until(`${nick} sees ${what}`, () => lines.some(pred)),
    end: () => { c.stdin.end(); children.delete(c); },
  };
}

// ---------- the pages ----------

async function openPage(nick, viewport) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport(viewport);
  page.on("pageerror", (e) => fail(`${nick}'s page threw: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") console.log(`[${nick} console] ${m.text()}`); });
  await page.goto(`${base}/`, { waitUntil: "load" });
  await page.type("#login-nick", nick);
  await page.click("#login-submit");
  await until(`${nick}'s page connects`, () => page.$eval("#status", (e) => e.dataset.state === "up"));
  return page;
}

const texts = (page) => page.$$eval("#messages .msg", (els) => els.map((e) => `${e.dataset.from}: ${e.querySelector(".text").textContent}`));
const notes = (page) => page.$$eval("#messages .note", (els) => els.map((e) => e.textContent));
const members = (page) => page.$$eval("#members li", (els) => els.map((e) => e.textContent));

async function send(page, text) {
  await page.type("#composer-input", text);
  await page.keyboard.press("Enter");
}

async function sees(page, who, line) {
  await until(`${who} sees "${line}"`, async () => (await texts(page)).includes(line));
}

/** A PNG's pixels are not all one colour: decode its IDAT data and count
 *  distinct bytes of the unfiltered rows (a blank page has one or two). */
function notBlank(file) {
  const png = readFileSync(file);
  const idat = [];
  let width = 0;
  let bpp = 4;
  for (let at = 8; at < png.length; ) {
    const len = png.readUInt32BE(at);
    const type = png.toString("ascii", at + 4, at + 8);
    if (type === "IHDR") {
      width = png.readUInt32BE(at + 8);
      bpp = { 0: 1, 2: 3, 4: 2, 6: 4 }[png[at + 17]] || 4; // by colour type, 8-bit
    }
    if (type === "IDAT") idat.push(png.subarray(at + 8, at + 8 + len));
    at += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = 1 + width * bpp; // rows with a filter byte
  const colours = new Set();
  for (let row = 0; row + stride <= raw.length && colours.size < 64; row += stride) {
    for (let i = row + 1; i + bpp <= row + stride; i += bpp) colours.add(raw.subarray(i, i + bpp).toString("hex"));
  }
  return colours.size;
}

async function shoot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, name);
  writeFileSync(file, await page.screenshot({ type: "png" }));
  const n = notBlank(file);
  check(n >= 8, `screenshot ${file} is not blank (${n}+ distinct values)`);
}

// ---------- the scenario ----------

try {
  await startServer();
  browser = await puppeteer.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--no-first-run"],
  });

  const cli = terminal("cli");
  cli.say("/join lobby");
  await cli.saw("its join", (l) => l.startsWith("ok join room=lobby"));

  const ann = await openPage("ann", { width: 1280, height: 800 });
  const ben = await openPage("ben", { width: 390, height: 844, isMobile: true, hasTouch: true });

  // Presence, every way.
  await cli.saw("ann join", (l) => l === "presence joined room=lobby nick=ann");
  await cli.saw("ben join", (l) => l === "presence joined room=lobby nick=ben");
  await until("ann lists ben and cli", async () => { const m = await members(ann); return m.includes("ben") && m.includes("cli"); });
  await until("ann sees ben join", async () => (await notes(ann)).includes("ben joined"));
  check(true, "presence: the terminal sees both pages join; ann's page lists ben and cli");

  // Messages, every way.
  await send(ann, "hello from ann");
  await sees(ben, "ben", "ann: hello from ann");
  await cli.saw("ann's message", (l) => l.startsWith("message room=lobby") && l.endsWith("from=ann text=hello from ann"));
  await send(ben, "hello from ben");
  await sees(ann, "ann", "ben: hello from ben");
  await cli.saw("ben's message", (l) => l.endsWith("from=ben text=hello from ben"));
  cli.say("hello from cli");
  await sees(ann, "ann", "cli: hello from cli");
  await sees(ben, "ben", "cli: hello from cli");
  check(true, "messages: each of ann, ben and cli sees the other two");
  await until("ann's own message is confirmed by the server", () =>
    ann.$$eval("#messages .msg.mine", (els) => els.length > 0 && els.every((e) => !e.classList.contains("sending") && e.querySelector("time").textContent !== "")));
  check(true, "the sender's message leaves 'sending…' once the server has stored it");

  // A direct message: ann opens a conversation with ben from the member
  // list; ben gets it in a conversation pane of its own.
  await ann.evaluate(() => [...document.querySelectorAll("#members li")].find((e) => e.textContent === "ben").click());
  await send(ann, "psst, ben");
  await until("ben gets a conversation with ann", () => ben.$('[data-key="@ann"]'));
  await ben.evaluate(() => document.querySelector('[data-key="@ann"]').click());
  await sees(ben, "ben", "ann: psst, ben");
  check(!(await texts(ann)).includes("cli: hello from cli"), "the conversation pane shows the conversation only");
  await ann.evaluate(() => document.querySelector('[data-key="#lobby"]').click());
  await ben.evaluate(() => document.querySelector('[data-key="#lobby"]').click());
  await sees(ann, "ann", "cli: hello from cli");
  check(true, "direct messages between the pages, each in its own pane");

  // Who's online (GET /users with the page's bearer credential).
  await until("ann's online list", async () => {
    const online = await ann.$$eval("#online li", (els) => els.map((e) => e.textContent));
    return ["ann", "ben", "cli"].every((n) => online.includes(n));
  });
  check(true, "who's online lists the pages and the terminal");

  await shoot(ann, "chat-desktop.png");
  await shoot(ben, "chat-phone.png");

  // A restart: the terminal client (script mode) exits; the pages reconnect
  // and resume each room from their last offset.
  cli.end();
  await stopServer();
  await until("ann notices", () => ann.$eval("#status", (e) => e.dataset.state === "down"));
  await startServer();
  await until("ann reconnects", () => ann.$eval("#status", (e) => e.dataset.state === "up"), 30000);
  await until("ben reconnects", () => ben.$eval("#status", (e) => e.dataset.state === "up"), 30000);
  check(true, "both pages reconnect by themselves after the restart");

  await send(ann, "after the restart");
  await sees(ben, "ben", "ann: after the restart");
  const cli2 = terminal("cli2");
  cli2.say("/join lobby");
  await cli2.saw("the history", (l) => l.startsWith("history room=lobby") && l.endsWith("from=ann text=after the restart"));
  cli2.say("cli2 is here");
  await sees(ann, "ann", "cli2: cli2 is here");
  await sees(ben, "ben", "cli2: cli2 is here");
  const all = await texts(ben);
  const once = (line) => all.filter((t) => t === line).length === 1;
  check(["ann: hello from ann", "cli: hello from cli", "ann: after the restart"].every(once),
        "after the restart every message shows exactly once (resumed from the room's offset)");
  check((await notes(ben)).includes("— reconnected —"), "the page marks the reconnection, with nothing missing");
  await shoot(ben, "chat-phone-after-restart.png");
  cli2.end();

  cleanup();
  await browser.close().catch(() => {});
  server.kill("SIGKILL");
  rmSync(dataDir, { recursive: true, force: true });
  console.log(`${passed} passed, 0 failed`);
  process.exit(0);
} catch (e) {
  fail(e.stack || String(e));
}
