//! One load thread: a mio poll over its share of the connections. It
//! connects them (a bounded number at a time), then runs their sessions:
//! reads until WouldBlock into one scratch buffer, writes each connection's
//! output once per turn, and wakes sessions at their due times through a
//! timerfd (epoll's own timeout has only millisecond resolution).

use crate::net::{connect_result, Target};
use crate::runner::Progress;
use crate::session::{Io, Plan, Session, Tally};
use crate::sys::TimerFd;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMER: Token = Token(usize::MAX);
/// Connects in progress per thread: quick, yet few enough not to overflow a
/// server's listen backlog (a dropped SYN is retried only after a second).
const MAX_CONNECTING: usize = 128;
const SCRATCH: usize = 64 << 10;
/// Longest poll wait: how soon a thread sees a stop request.
const MAX_WAIT: Duration = Duration::from_millis(20);
/// Sessions started per loop turn.
const START_BATCH: usize = 64;
/// Events handled between two looks at what is due.
const DUE_EVERY: usize = 32;
/// Poll wait during handshakes: how soon a thread sees that the run starts.
const HANDSHAKE_WAIT: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    New,
    Connecting,
    Open,
    Closed,
}

struct Conn<S> {
    state: State,
    stream: Option<TcpStream>,
    session: S,
    /// Input the session has not consumed yet (an unfinished frame).
    pending: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    dirty: bool,
    /// Readable while still connecting: read once the handshake starts,
    /// since edge-triggered polling will not say so again.
    read_early: bool,
    /// The due time queued for this connection, if any.
    due: Option<u64>,
}

/// Counters last published to [`Progress`].
#[derive(Default)]
struct Published {
    replies: u64,
    bytes: u64,
    errors: u64,
    connected: u64,
    dropped: u64,
    ready: u64,
}

/// One thread's connections and their event loop.
pub struct Worker<S> {
    poll: Poll,
    conns: Vec<Conn<S>>,
    /// Global index of each connection (for source addresses and schedules).
    global: Vec<usize>,
    timer: TimerFd,
    armed: Option<u64>,
    timers: BinaryHeap<Reverse<(u64, usize)>>,
    scratch: Vec<u8>,
    dirty: Vec<usize>,
    /// This thread's counts.
    pub tally: Tally,
    progress: Arc<Progress>,
    published: Published,
}

impl<S: Session> Worker<S> {
    /// A worker for the connections with these global indices.
    pub fn new(
        global: Vec<usize>,
        make: &dyn Fn(usize) -> S,
        progress: Arc<Progress>,
    ) -> io::Result<Worker<S>> {
        let poll = Poll::new()?;
        let timer = TimerFd::new()?;
        poll.registry().register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
        let conns = global
            .iter()
            .map(|&g| Conn {
                state: State::New,
                stream: None,
                session: make(g),
                pending: Vec::new(),
                out: Vec::new(),
                written: 0,
                dirty: false,
                read_early: false,
                due: None,
            })
            .collect();
        Ok(Worker {
            poll,
            conns,
            global,
            timer,
            armed: None,
            timers: BinaryHeap::new(),
            scratch: vec![0; SCRATCH],
            dirty: Vec::new(),
            tally: Tally::default(),
            progress,
            published: Published::default(),
        })
    }

    /// Connects every connection, at most [`MAX_CONNECTING`] at a time,
    /// giving up on those not up by `deadline`.
    pub fn connect(&mut self, target: &Target, deadline: Instant) {
        let mut events = Events::with_capacity(1024);
        let (mut next, mut connecting) = (0, 0);
        loop {
            while connecting < MAX_CONNECTING && next < self.conns.len() {
                let i = next;
                next += 1;
                let started = target.start_connect(self.global[i]).and_then(|mut s| {
                    self.poll.registry().register(
                        &mut s,
                        Token(i),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    Ok(s)
                });
                match started {
                    Ok(s) => {
                        self.conns[i].stream = Some(s);
                        self.conns[i].state = State::Connecting;
                        connecting += 1;
                    }
                    Err(e) => self.connect_failed(i, e),
                }
            }
            self.publish();
            if connecting == 0 && next == self.conns.len() {
                return;
            }
            let now = Instant::now();
            if now >= deadline || self.progress.stop.load(Relaxed) {
                for i in 0..self.conns.len() {
                    if matches!(self.conns[i].state, State::New | State::Connecting) {
                        self.connect_failed(i, io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
                    }
                }
                self.publish();
                return;
            }
            let wait = (deadline - now).min(MAX_WAIT);
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.tally.note(format!("poll: {e}"));
                }
                continue;
            }
            for ev in events.iter() {
                let i = ev.token().0;
                let Some(c) = self.conns.get_mut(i) else { continue };
                if c.state == State::Open {
                    c.read_early |= ev.is_readable() || ev.is_read_closed();
                    continue;
                }
                if c.state != State::Connecting {
                    continue;
                }
                let result = c.stream.as_ref().map_or(Ok(false), connect_result);
                match result {
                    Ok(true) => {
                        c.state = State::Open;
                        c.read_early = ev.is_readable() || ev.is_read_closed();
                        self.tally.connected += 1;
                        connecting -= 1;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.connect_failed(i, e);
                        connecting -= 1;
                    }
                }
            }
        }
    }

    fn connect_failed(&mut self, i: usize, e: io::Error) {
        let c = &mut self.conns[i];
        c.state = State::Closed;
        c.stream = None;
        self.tally.connect_errors += 1;
        self.tally.note(format_args!("connect: {e}"));
    }

    /// Runs every session's handshake until `plan()` gives the run's plan
    /// (the runner publishes it once every session is ready), which it
    /// returns; `None` on a stop request.
    pub fn handshake(&mut self, plan: impl Fn() -> Option<Plan>) -> Option<Plan> {
        let setup = Plan::handshake(Instant::now());
        let mut events = Events::with_capacity(1024);
        let mut unstarted = 0..self.conns.len();
        loop {
            // A batch per turn, as in `run`.
            let mut batch = 0;
            while batch < START_BATCH {
                let Some(i) = unstarted.next() else { break };
                if self.conns[i].state == State::Open {
                    let now = setup.now_ns();
                    self.with_session(i, &setup, now, |s, io| s.handshake(io));
                    self.flush_dirty(&setup, now);
                    if std::mem::take(&mut self.conns[i].read_early) {
                        self.read(i, &setup, now);
                    }
                    batch += 1;
                }
            }
            if self.progress.stop.load(Relaxed) {
                return None;
            }
            if unstarted.is_empty() {
                if let Some(plan) = plan() {
                    // Due times of the handshake count from another epoch.
                    self.timers.clear();
                    self.armed = None;
                    self.conns.iter_mut().for_each(|c| c.due = None);
                    return Some(plan);
                }
            }
            let wait = if unstarted.is_empty() { HANDSHAKE_WAIT } else { Duration::ZERO };
            self.turn(&setup, &mut events, wait);
        }
    }

    /// Runs the sessions until the plan's end (plus drain) or a stop request.
    pub fn run(&mut self, plan: &Plan) {
        let mut events = Events::with_capacity(1024);
        let mut unstarted = 0..self.conns.len();
        loop {
            // Sessions start a batch per turn, so that with thousands of
            // connections replies to the first are read while later ones
            // start, instead of waiting (and being timed) behind them all.
            let mut batch = 0;
            while batch < START_BATCH {
                let Some(i) = unstarted.next() else { break };
                if self.conns[i].state == State::Open {
                    let now = plan.now_ns();
                    self.with_session(i, plan, now, |s, io| s.start(io));
                    self.flush_dirty(plan, now);
                    batch += 1;
                }
            }
            let now = plan.now_ns();
            if self.progress.stop.load(Relaxed) {
                break;
            }
            let mut wait = if unstarted.is_empty() { MAX_WAIT } else { Duration::ZERO };
            if let Some(end) = plan.measure_end_ns {
                if now >= end {
                    if self.tally.in_flight() == 0 || now >= end.saturating_add(plan.drain_ns) {
                        break;
                    }
                } else {
                    wait = wait.min(Duration::from_nanos(end - now));
                }
            }
            self.turn(plan, &mut events, wait);
        }
        let now = plan.now_ns();
        for i in 0..self.conns.len() {
            if self.conns[i].state == State::Open {
                self.tally.unanswered += self.conns[i].session.outstanding();
            }
            self.with_session(i, plan, now, |s, io| s.finish(io));
        }
        self.publish();
    }

    /// One turn of the event loop: waits up to `wait` for events, reads
    /// and writes what they allow, and fires the sessions that are due.
    fn turn(&mut self, plan: &Plan, events: &mut Events, wait: Duration) {
        self.arm_timer(plan.now_ns());
        if let Err(e) = self.poll.poll(events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                self.tally.note(format!("poll: {e}"));
            }
            return;
        }
        let start = plan.now_ns();
        let mut now = start;
        for (k, ev) in events.iter().enumerate() {
            if k > 0 {
                // A thousand reads take milliseconds: time each with a
                // clock reading of its own, and do not let them hold back
                // sends that fall due meanwhile.
                now = plan.now_ns();
                if k % DUE_EVERY == 0 {
                    self.fire_due(plan, now);
                    self.flush_dirty(plan, now);
                }
            }
            if ev.token() == TIMER {
                self.timer.drain();
                self.armed = None;
                continue;
            }
            let i = ev.token().0;
            if self.conns.get(i).is_none_or(|c| c.state != State::Open) {
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.read(i, plan, now);
            }
            if ev.is_writable() && self.conns[i].state == State::Open && !self.conns[i].out.is_empty() {
                self.flush(i, plan, now);
            }
        }
        let now = plan.now_ns();
        self.fire_due(plan, now);
        self.flush_dirty(plan, now);
        self.publish();
        if plan.in_window(start) {
            self.tally.turns.record(plan.now_ns().saturating_sub(start));
        }
    }

    /// Calls the session of connection `i`, then files its output and its
    /// next due time.
    fn with_session<R>(
        &mut self,
        i: usize,
        plan: &Plan,
        now_ns: u64,
        f: impl FnOnce(&mut S, &mut Io<'_>) -> R,
    ) -> R {
        let c = &mut self.conns[i];
        let mut io = Io { out: &mut c.out, now_ns, plan, tally: &mut self.tally };
        let r = f(&mut c.session, &mut io);
        self.after_session(i);
        r
    }

    fn after_session(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.state != State::Open {
            return;
        }
        if !c.dirty && c.out.len() > c.written {
            c.dirty = true;
            self.dirty.push(i);
        }
        let due = c.session.next_due();
        if due != c.due {
            c.due = due;
            if let Some(d) = due {
                self.timers.push(Reverse((d, i)));
            }
        }
    }

    /// Reads until the socket is drained, handing the bytes to the session.
    fn read(&mut self, i: usize, plan: &Plan, now_ns: u64) {
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else { return };
            let n = match stream.read(&mut self.scratch) {
                Ok(0) => return self.close(i, None, "server closed the connection"),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(i, Some(e), "read"),
            };
            let mut io = Io { out: &mut c.out, now_ns, plan, tally: &mut self.tally };
            // Parse straight from the scratch buffer unless a frame is unfinished.
            let result = if c.pending.is_empty() {
                c.session.on_input(&self.scratch[..n], &mut io).map(|used| {
                    c.pending.extend_from_slice(&self.scratch[used.min(n)..n]);
                })
            } else {
                c.pending.extend_from_slice(&self.scratch[..n]);
                c.session.on_input(&c.pending, &mut io).map(|used| {
                    c.pending.drain(..used.min(c.pending.len()));
                })
            };
            if let Err(msg) = result {
                let e = io::Error::new(io::ErrorKind::InvalidData, msg);
                return self.close(i, Some(e), "protocol");
            }
            self.after_session(i);
            if n < self.scratch.len() {
                // A short read drained the socket: data or a FIN arriving
                // later raises a new edge, so the read that would only say
                // WouldBlock is skipped (a third of the syscalls at depth 1,
                // as tokio does).
                return;
            }
        }
    }

    /// Writes connection `i`'s output until done or WouldBlock.
    fn flush(&mut self, i: usize, plan: &Plan, now_ns: u64) {
        loop {
            let c = &mut self.conns[i];
            let Some(stream) = c.stream.as_mut() else { return };
            while c.written < c.out.len() {
                match stream.write(&c.out[c.written..]) {
                    Ok(0) => return self.close(i, None, "write returned 0"),
                    Ok(n) => c.written += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.close(i, Some(e), "write"),
                }
            }
            c.out.clear();
            c.written = 0;
            if c.out.capacity() > 4 * SCRATCH {
                c.out.shrink_to(SCRATCH);
            }
            // A session held back by a full buffer may go on now.
            self.with_session(i, plan, now_ns, |s, io| s.on_drained(io));
            if self.conns[i].out.is_empty() {
                return;
            }
        }
    }

    fn flush_dirty(&mut self, plan: &Plan, now_ns: u64) {
        while !self.dirty.is_empty() {
            for i in std::mem::take(&mut self.dirty) {
                self.conns[i].dirty = false;
                self.flush(i, plan, now_ns);
            }
        }
    }

    fn fire_due(&mut self, plan: &Plan, now_ns: u64) {
        // Take what is due first: a session that names a past time again is
        // called next turn, not in a loop here.
        let mut due_now = Vec::new();
        while let Some(&Reverse((due, i))) = self.timers.peek() {
            if due > now_ns {
                break;
            }
            self.timers.pop();
            due_now.push((due, i));
        }
        for (due, i) in due_now {
            if self.conns[i].due != Some(due) || self.conns[i].state != State::Open {
                continue; // superseded, or the connection is gone
            }
            self.conns[i].due = None;
            self.with_session(i, plan, now_ns, |s, io| s.on_due(io));
        }
    }

    fn arm_timer(&mut self, now_ns: u64) {
        let Some(&Reverse((due, _))) = self.timers.peek() else { return };
        if self.armed == Some(due) {
            return;
        }
        if let Err(e) = self.timer.arm(Duration::from_nanos(due.saturating_sub(now_ns))) {
            self.tally.note(format!("timerfd: {e}"));
        }
        self.armed = Some(due);
    }

    fn close(&mut self, i: usize, error: Option<io::Error>, what: &str) {
        let c = &mut self.conns[i];
        c.state = State::Closed;
        c.stream = None;
        c.due = None;
        c.pending = Vec::new();
        c.out = Vec::new();
        c.written = 0;
        self.tally.unanswered += c.session.outstanding();
        match error {
            Some(e) => {
                self.tally.io_errors += 1;
                self.tally.note(format_args!("{what}: {e}"));
            }
            None => {
                self.tally.closed += 1;
                self.tally.note(what);
            }
        }
    }

    /// Adds what changed since the last call to the shared progress counters.
    fn publish(&mut self) {
        let (t, p, last) = (&self.tally, &self.progress, &mut self.published);
        let add = |counter: &std::sync::atomic::AtomicU64, now: u64, before: &mut u64| {
            if now != *before {
                counter.fetch_add(now.wrapping_sub(*before), Relaxed);
                *before = now;
            }
        };
        add(&p.replies, t.all_replies, &mut last.replies);
        add(&p.reply_bytes, t.all_reply_bytes, &mut last.bytes);
        add(&p.errors, t.errors(), &mut last.errors);
        add(&p.connected, t.connected, &mut last.connected);
        add(&p.dropped, t.closed + t.io_errors, &mut last.dropped);
        add(&p.handshaken, t.ready, &mut last.ready);
    }
}
