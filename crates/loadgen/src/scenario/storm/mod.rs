//! `storm`: a reconnect storm against the chat server (issue 12, item 7).
//!
//! `--members N` clients join one room, one after another with
//! `--sequential` (each waits for its reply: the server's CPU over the joins
//! is the cost of N joins into one room) or a bounded number at a time.
//! With `--upgrade-pid PID`, `--senders` then post stamped messages at
//! `--rate` into the room; after `--before` the generator sends SIGUSR2 to
//! the server (a binary upgrade: every client is told to go away) and
//! every client reconnects after the chat client library's jittered
//! back-off, logs in and rejoins from the last position it saw. It reports
//! when every member was back, whether each resume was recovered, which
//! acknowledged messages any member missed or got twice, and the delays of
//! the messages that kept flowing: before the signal, during the storm (until
//! every member is back) and after, and of those replayed by the resumes.
//!
//! One thread, its own mio loop: connections come and go, which the
//! fixed-connection runner of the other scenarios does not model. The
//! protocol logic is I/O-free in `client` and `tally`.

mod client;
mod report;
mod tally;

use crate::fanout::{run_id, STAMP_LEN};
use crate::net::Target;
use crate::parse;
use crate::stats::CpuMeter;
use crate::sys;
use chat_server::client::reconnect::Backoff;
use chat_server::protocol::ServerFrameRef;
use clap::Args;
use client::{Action, Client, Phase, Publisher};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
pub use report::{JoinFigures, StormFigures, StormReport};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tally::StormTally;

/// Largest server frame accepted.
const MAX_FRAME: usize = 1 << 20;
/// Reconnects started per loop turn at most, so that reading keeps up.
const STARTS_PER_TURN: usize = 256;
/// How long deliveries are waited for after the senders stop.
const DRAIN: Duration = Duration::from_secs(2);

/// Arguments of `storm`.
#[derive(Args, Clone, Debug)]
pub struct StormArgs {
    /// Chat server address.
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub addr: SocketAddr,
    /// Members of the room.
    #[arg(long, default_value = "2000", value_parser = parse::count_usize)]
    pub members: usize,
    /// The room.
    #[arg(long, default_value = "storm")]
    pub room: String,
    /// Join one member at a time, each after the previous one's reply.
    #[arg(long)]
    pub sequential: bool,
    /// Handshakes in flight at once when not sequential.
    #[arg(long, default_value = "200", value_parser = parse::count_usize)]
    pub in_flight: usize,
    /// Give up on the first joins after this long.
    #[arg(long, default_value = "120s", value_parser = parse::duration)]
    pub join_timeout: Duration,
    /// Send SIGUSR2 to this process (the server) once messages flow: the
    /// storm. Without it, the run ends after the joins.
    #[arg(long)]
    pub upgrade_pid: Option<u32>,
    /// Clients posting into the room (besides the members).
    #[arg(long, default_value = "1", value_parser = parse::count_usize)]
    pub senders: usize,
    /// Messages per second over all senders.
    #[arg(long, default_value = "20", value_parser = parse::count)]
    pub rate: u64,
    /// Bytes per message (at least 48: the stamp).
    #[arg(long, default_value = "64", value_parser = parse::size)]
    pub size: usize,
    /// Messages flow this long before the signal.
    #[arg(long, default_value = "3s", value_parser = parse::duration)]
    pub before: Duration,
    /// ... and this long once every member is back.
    #[arg(long, default_value = "3s", value_parser = parse::duration)]
    pub after: Duration,
    /// Give up waiting for every member to be back after this long.
    #[arg(long, default_value = "60s", value_parser = parse::duration)]
    pub storm_timeout: Duration,
    /// The back-off's first delay (the chat client's: 250 ms).
    #[arg(long, default_value = "250ms", value_parser = parse::duration)]
    pub backoff: Duration,
    /// The back-off's longest delay (the chat client's: 10 s).
    #[arg(long, default_value = "10s", value_parser = parse::duration)]
    pub backoff_max: Duration,
    /// Spread connections over this many loopback source addresses
    /// (127.0.0.2...): reconnects leave sockets in TIME_WAIT.
    #[arg(long, default_value = "16")]
    pub sources: usize,
    /// The server's process id: its CPU time over the joins.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

struct Conn {
    stream: Option<TcpStream>,
    connected: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    /// When to connect again, ns from the start.
    retry_at: Option<u64>,
    /// When the current attempt started (first join latency).
    started_ns: u64,
    /// Its first join was answered.
    joined_once: bool,
}

struct Driver {
    poll: Poll,
    target: Target,
    start: Instant,
    clients: Vec<Client>,
    conns: Vec<Conn>,
    tally: StormTally,
    join_latency: crate::stats::Latency,
    failed_attempts: u64,
    first_joined: usize,
    /// Clients `0..members` are members, the rest senders.
    members: usize,
}

impl Driver {
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn connect(&mut self, i: usize) {
        let now = self.now_ns();
        let c = &mut self.conns[i];
        c.retry_at = None;
        c.started_ns = now;
        c.input.clear();
        c.output.clear();
        match self.target.start_connect(i) {
            Ok(mut s) => {
                if self
                    .poll
                    .registry()
                    .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                    .is_ok()
                {
                    c.stream = Some(s);
                    c.connected = false;
                    return;
                }
                self.failed(i);
            }
            Err(_) => self.failed(i),
        }
    }

    fn failed(&mut self, i: usize) {
        self.failed_attempts += 1;
        self.close(i, None);
    }

    /// Closes client `i`'s connection and schedules the next attempt.
    fn close(&mut self, i: usize, after: Option<Duration>) {
        let delay = after.unwrap_or_else(|| self.clients[i].on_closed());
        let now = self.now_ns();
        let c = &mut self.conns[i];
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.connected = false;
        c.retry_at = Some(now + delay.as_nanos() as u64);
    }

    fn on_event(&mut self, i: usize, readable: bool, writable: bool) {
        let Some(stream) = self.conns[i].stream.as_ref() else { return };
        if !self.conns[i].connected {
            match crate::net::connect_result(stream) {
                Ok(true) => {
                    self.conns[i].connected = true;
                    let mut out = std::mem::take(&mut self.conns[i].output);
                    self.clients[i].on_connected(&mut out);
                    self.conns[i].output = out;
                }
                Ok(false) => return,
                Err(_) => return self.failed(i),
            }
        }
        if readable && !self.read(i) {
            return;
        }
        if writable || !self.conns[i].output.is_empty() {
            self.flush(i);
        }
    }

    /// Reads and handles what arrived (all of it, even when the server
    /// closed right after: its last frame may be `GoingAway`); false if
    /// the connection is gone.
    fn read(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 64 * 1024];
        let mut closed = false;
        loop {
            let Some(stream) = self.conns[i].stream.as_mut() else { return false };
            match stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => self.conns[i].input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if !self.handle_input(i) {
            return false;
        }
        if closed {
            if self.clients[i].phase == Phase::Joining {
                self.failed_attempts += 1;
            }
            self.close(i, None);
            return false;
        }
        true
    }

    /// Handles the whole frames received; false if the client went away.
    fn handle_input(&mut self, i: usize) -> bool {
        let input = std::mem::take(&mut self.conns[i].input);
        let mut out = std::mem::take(&mut self.conns[i].output);
        let mut used = 0;
        let mut action = Action::Continue;
        let now = self.now_ns();
        while input.len() - used >= 4 && action == Action::Continue {
            let len =
                u32::from_be_bytes([input[used], input[used + 1], input[used + 2], input[used + 3]]) as usize;
            if len > MAX_FRAME {
                action = Action::Reconnect(self.clients[i].on_closed());
                break;
            }
            let Some(payload) = input.get(used + 4..used + 4 + len) else { break };
            used += 4 + len;
            let was = self.clients[i].phase;
            action = match ServerFrameRef::decode(payload) {
                Ok(frame) => self.clients[i].on_frame(frame, now, &mut out, &mut self.tally),
                Err(_) => {
                    self.tally.undecodable += 1;
                    Action::Reconnect(self.clients[i].on_closed())
                }
            };
            if was == Phase::Joining && self.clients[i].phase == Phase::Live {
                if !self.conns[i].joined_once {
                    self.conns[i].joined_once = true;
                    self.first_joined += 1;
                    self.join_latency.record(now.saturating_sub(self.conns[i].started_ns));
                }
                self.clients[i].publish_due(now, &mut out, &mut self.tally);
            }
        }
        let mut input = input;
        input.drain(..used);
        self.conns[i].input = input;
        self.conns[i].output = out;
        if let Action::Reconnect(after) = action {
            self.close(i, Some(after));
            return false;
        }
        true
    }

    fn flush(&mut self, i: usize) {
        let c = &mut self.conns[i];
        let Some(stream) = c.stream.as_mut() else { return };
        if !c.connected {
            return;
        }
        while !c.output.is_empty() {
            match stream.write(&c.output) {
                Ok(n) => {
                    c.output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.failed(i),
            }
        }
    }

    /// One loop turn: events, due reconnects, due messages.
    fn turn(&mut self, events: &mut Events, wait: Duration) -> Result<(), String> {
        match self.poll.poll(events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<(usize, bool, bool)> = events
            .iter()
            .map(|e| (e.token().0, e.is_readable() || e.is_read_closed() || e.is_error(), e.is_writable()))
            .collect();
        for (i, r, w) in ready {
            if i < self.conns.len() {
                self.on_event(i, r, w);
            }
        }
        let now = self.now_ns();
        let due: Vec<usize> = (0..self.conns.len())
            .filter(|&i| self.conns[i].retry_at.is_some_and(|t| t <= now))
            .take(STARTS_PER_TURN)
            .collect();
        for i in due {
            self.connect(i);
        }
        for i in self.members..self.clients.len() {
            let mut out = std::mem::take(&mut self.conns[i].output);
            self.clients[i].publish_due(now, &mut out, &mut self.tally);
            self.conns[i].output = out;
            if !self.conns[i].output.is_empty() {
                self.flush(i);
            }
        }
        Ok(())
    }

    fn live(&self, range: std::ops::Range<usize>) -> usize {
        self.clients[range].iter().filter(|c| c.phase == Phase::Live).count()
    }
}

/// Runs the storm.
pub fn run(args: &StormArgs) -> Result<StormReport, String> {
    if args.members == 0 {
        return Err("--members must be at least 1".into());
    }
    if args.size < STAMP_LEN {
        return Err(format!("--size must be at least {STAMP_LEN}"));
    }
    let target = Target { addr: args.addr, also: vec![], sources: args.sources };
    target.validate()?;
    sys::raise_fd_limit().map_err(|e| format!("descriptor limit: {e}"))?;
    let storm = args.upgrade_pid.is_some();
    let senders = if storm && args.rate > 0 { args.senders.max(1) } else { 0 };
    let run = run_id();
    let per_sender_rate = args.rate.div_ceil(senders.max(1) as u64).max(1);
    let longest = args.before + args.storm_timeout + args.after + DRAIN;
    let per_sender = per_sender_rate * longest.as_secs().max(1) + 16;
    let backoff =
        |i: usize| Backoff::new(args.backoff, args.backoff_max).with_seed(u64::from(run) ^ i as u64);
    let mut clients: Vec<Client> = (0..args.members)
        .map(|i| {
            Client::new(format!("st{run:08x}_{i}"), args.room.clone(), run, args.size, Some(i), backoff(i))
        })
        .collect();
    for j in 0..senders {
        let i = args.members + j;
        clients.push(Client::new(
            format!("st{run:08x}_s{j}"),
            args.room.clone(),
            run,
            args.size,
            None,
            backoff(i),
        ));
    }
    let n = clients.len();
    let conns = (0..n)
        .map(|_| Conn {
            stream: None,
            connected: false,
            input: Vec::new(),
            output: Vec::new(),
            retry_at: None,
            started_ns: 0,
            joined_once: false,
        })
        .collect();
    let mut d = Driver {
        poll: Poll::new().map_err(|e| e.to_string())?,
        target,
        start: Instant::now(),
        clients,
        conns,
        tally: StormTally::new(args.members, senders as u32, per_sender),
        join_latency: crate::stats::Latency::default(),
        failed_attempts: 0,
        first_joined: 0,
        members: args.members,
    };
    let mut events = Events::with_capacity(4096);
    let cpu = CpuMeter::start();
    let mut problems = Vec::new();

    // The first joins: members, then senders.
    let server_cpu0 =
        args.server_pid.map(sys::cpu_time).transpose().map_err(|e| format!("--server-pid: {e}"))?;
    let joins_started = Instant::now();
    let in_flight = if args.sequential { 1 } else { args.in_flight.max(1) };
    let mut next = 0;
    while d.first_joined < n {
        while next < n && next - d.first_joined < in_flight {
            d.connect(next);
            next += 1;
        }
        if joins_started.elapsed() > args.join_timeout {
            problems.push(format!(
                "only {} of {n} clients joined within {:?}",
                d.first_joined, args.join_timeout
            ));
            break;
        }
        d.turn(&mut events, Duration::from_millis(2))?;
    }
    let joins_wall = joins_started.elapsed();
    let server_cpu_s = match (args.server_pid, server_cpu0) {
        (Some(pid), Some(before)) => Some(
            sys::cpu_time(pid)
                .map_err(|e| format!("--server-pid: {e}"))?
                .saturating_sub(before)
                .as_secs_f64(),
        ),
        _ => None,
    };
    let joins = JoinFigures {
        joined: d.first_joined.min(args.members),
        wall_s: joins_wall.as_secs_f64(),
        server_cpu_s,
        latency: d.join_latency.summary(),
    };

    let mut storm_figures = None;
    if let (Some(pid), true) = (args.upgrade_pid, problems.is_empty()) {
        let flow_start = d.now_ns();
        let every_ns = 1_000_000_000 * senders as u64 / args.rate.max(1);
        for (j, c) in d.clients[args.members..].iter_mut().enumerate() {
            c.publisher = Some(Publisher {
                index: j as u32,
                seq: 0,
                due_ns: flow_start + every_ns * j as u64 / senders.max(1) as u64,
                every_ns,
                until_ns: u64::MAX,
            });
        }
        let until = Instant::now() + args.before;
        while Instant::now() < until {
            d.turn(&mut events, Duration::from_millis(1))?;
        }
        // SAFETY: kill has no memory preconditions.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR2) } != 0 {
            return Err(format!("kill -USR2 {pid}: {}", io::Error::last_os_error()));
        }
        let signal_ns = d.now_ns();
        d.tally.signal_ns = Some(signal_ns);
        let give_up = Instant::now() + args.storm_timeout;
        while d.tally.all_back_ns.is_none() && Instant::now() < give_up {
            d.turn(&mut events, Duration::from_millis(1))?;
        }
        if d.tally.all_back_ns.is_none() {
            problems.push(format!(
                "{} of {} members back within {:?}",
                d.tally.back(),
                args.members,
                args.storm_timeout
            ));
        }
        let until = Instant::now() + args.after;
        while Instant::now() < until {
            d.turn(&mut events, Duration::from_millis(1))?;
        }
        let stop = d.now_ns();
        for c in &mut d.clients[args.members..] {
            if let Some(p) = c.publisher.as_mut() {
                p.until_ns = stop;
            }
        }
        let until = Instant::now() + DRAIN;
        while Instant::now() < until {
            d.turn(&mut events, Duration::from_millis(5))?;
        }
        let (acked, missing) = d.tally.missing();
        let t = &d.tally;
        let f = StormFigures {
            back: t.back(),
            all_back_s: t.all_back_ns.map(|b| (b - signal_ns) as f64 / 1e9),
            resumes: t.resumes,
            recovered: t.recovered,
            going_away: t.going_away,
            undecodable: t.undecodable,
            failed_attempts: d.failed_attempts,
            posted: t.posted,
            acked,
            unanswered: t.posted.saturating_sub(acked + t.refusals.values().sum::<u64>()),
            missing,
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            refusals: t.refusals.clone(),
            before: t.before.summary(),
            during: t.storm.summary(),
            after: t.after.summary(),
            replayed: t.history.summary(),
        };
        if f.recovered < f.resumes {
            problems.push(format!("{} of {} resumes not recovered", f.resumes - f.recovered, f.resumes));
        }
        if f.undecodable > 0 {
            problems.push(format!("{} undecodable server frames", f.undecodable));
        }
        if f.missing + f.duplicates + f.out_of_order > 0 {
            problems.push(format!(
                "{} missing, {} duplicate, {} out-of-order deliveries",
                f.missing, f.duplicates, f.out_of_order
            ));
        }
        if f.acked == 0 {
            problems.push("no message was acknowledged".into());
        }
        storm_figures = Some(f);
    }
    let live = d.live(0..args.members);
    if live < args.members {
        problems.push(format!("{live} of {} members connected at the end", args.members));
    }
    Ok(StormReport {
        members: args.members,
        senders,
        rate: if storm { args.rate } else { 0 },
        sequential: args.sequential,
        joins,
        storm: storm_figures,
        generator_cpu_percent: cpu.percent(),
        problems,
    })
}
