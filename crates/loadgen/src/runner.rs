//! Running a scenario: threads with their share of the connections, a start
//! signal once every connection is up, progress lines once a second, and a
//! bounded end.

use crate::net::Target;
use crate::report::{grouped, ServerCpu};
use crate::schedule::conns_of;
use crate::session::{Phases, Plan, Session, Tally};
use crate::stats::{CpuMeter, ServerMeter};
use crate::sys;
use crate::worker::Worker;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Descriptors kept for everything but connections (poll, timerfd, stdio,
/// /proc reads).
const SPARE_FDS: u64 = 64;

/// Counters the threads publish as they go, and the stop request.
#[derive(Default)]
pub struct Progress {
    /// Replies received.
    pub replies: AtomicU64,
    /// Bytes of replies received.
    pub reply_bytes: AtomicU64,
    /// Errors of every kind.
    pub errors: AtomicU64,
    /// Connections established.
    pub connected: AtomicU64,
    /// Connections lost after they were established.
    pub dropped: AtomicU64,
    /// Sessions whose handshake completed.
    pub handshaken: AtomicU64,
    /// Threads done connecting.
    pub(crate) ready: AtomicUsize,
    /// Asks every thread to stop.
    pub stop: AtomicBool,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// Where to connect.
    pub target: Target,
    /// Connections in all.
    pub connections: usize,
    /// Threads, each with its own event loop.
    pub threads: usize,
    /// How long connecting may take in all; handshakes get as long again.
    pub connect_timeout: Duration,
    /// Warm-up, measurement and drain.
    pub phases: Phases,
    /// Print progress to stderr once a second.
    pub show_progress: bool,
}

impl RunSpec {
    /// Checks the spec, and that the process may open enough descriptors
    /// (raising its soft limit to the hard one).
    pub fn prepare(&mut self) -> Result<(), String> {
        self.target.validate()?;
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        self.threads = self.threads.min(self.connections);
        let limit = sys::raise_fd_limit().map_err(|e| format!("reading the descriptor limit: {e}"))?;
        let need = self.connections as u64 + SPARE_FDS + 4 * self.threads as u64;
        if need > limit.soft {
            return Err(format!(
                "{} connections need about {need} descriptors, but this process may open only {} \
                 (hard limit {}, which an unprivileged process cannot raise); use at most {} connections",
                self.connections,
                limit.soft,
                limit.hard,
                limit.soft.saturating_sub(SPARE_FDS + 4 * self.threads as u64)
            ));
        }
        Ok(())
    }
}

/// A run whose connections are up and whose sessions have started.
pub struct Running {
    progress: Arc<Progress>,
    handles: Vec<JoinHandle<Tally>>,
    /// The phases, timed from when sessions started.
    pub plan: Plan,
    /// How long connecting took.
    pub connect_time: Duration,
    /// How long the handshakes took after connecting.
    pub handshake_time: Duration,
    show_progress: bool,
    ticker: Ticker,
}

/// Starts the threads, connects, and starts the sessions once every thread
/// is done connecting. `make(i)` makes connection `i`'s session.
pub fn start<S, F>(spec: &RunSpec, make: F) -> Result<Running, String>
where
    S: Session,
    F: Fn(usize) -> S + Send + Sync + 'static,
{
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let plan_cell: Arc<OnceLock<Plan>> = Arc::new(OnceLock::new());
    let make = Arc::new(make);
    let deadline = started + spec.connect_timeout;
    let mut handles = Vec::new();
    for t in 0..spec.threads {
        let conns: Vec<usize> = conns_of(t, spec.connections, spec.threads).collect();
        let (progress, plan_cell, make, target) =
            (progress.clone(), plan_cell.clone(), make.clone(), spec.target.clone());
        let body = move || {
            let mut worker = match Worker::new(conns, &*make, progress.clone()) {
                Ok(w) => w,
                Err(e) => {
                    progress.ready.fetch_add(1, Relaxed);
                    let mut tally = Tally::default();
                    tally.note(format!("starting a load thread: {e}"));
                    return tally;
                }
            };
            worker.connect(&target, deadline);
            progress.ready.fetch_add(1, Relaxed);
            if let Some(plan) = worker.handshake(|| plan_cell.get().copied()) {
                worker.run(&plan);
            }
            worker.tally
        };
        let handle = thread::Builder::new()
            .name(format!("load-{t}"))
            .spawn(body)
            .map_err(|e| format!("cannot start a load thread: {e}"))?;
        handles.push(handle);
    }
    let mut running = Running {
        progress,
        handles,
        plan: Plan::new(started, Phases { warmup: Duration::ZERO, measure: None, drain: Duration::ZERO }),
        connect_time: Duration::ZERO,
        handshake_time: Duration::ZERO,
        show_progress: spec.show_progress,
        ticker: Ticker::new(started),
    };
    // Each thread gives up connecting at the deadline; the margin only
    // covers a thread that died.
    let give_up = deadline + Duration::from_secs(5);
    while running.progress.ready.load(Relaxed) < spec.threads {
        if Instant::now() >= give_up || running.handles.iter().all(|h| h.is_finished()) {
            running.stop();
            return Err("the load threads did not finish connecting".into());
        }
        thread::sleep(Duration::from_millis(1));
        running.tick("connect");
    }
    running.connect_time = started.elapsed();
    if running.progress.connected.load(Relaxed) == 0 {
        let tally = running.finish(Duration::from_secs(1));
        let why = tally.first_error.unwrap_or_else(|| "no reason given".into());
        return Err(format!("no connection to {} could be established: {why}", spec.target.addr));
    }
    // Sessions that never become ready (refused, or lost) are the
    // scenario's to count; the run goes on without them.
    let handshaken = Instant::now();
    running.wait_for(handshaken + spec.connect_timeout, "handshake", |p| {
        p.handshaken.load(Relaxed) + p.dropped.load(Relaxed) >= p.connected.load(Relaxed)
    });
    running.handshake_time = handshaken.elapsed();
    running.plan = Plan::new(Instant::now(), spec.phases);
    // Set once, here; the threads wait for it.
    let _ = plan_cell.set(running.plan);
    running.ticker.reset();
    Ok(running)
}

impl Running {
    /// Sleeps until `until`, printing progress once a second.
    pub fn wait_until(&mut self, until: Instant, phase: &str) {
        while Instant::now() < until {
            thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
            self.tick(phase);
        }
    }

    /// Waits until `done` holds or `until` passes; true if it held.
    pub fn wait_for(&mut self, until: Instant, phase: &str, done: impl Fn(&Progress) -> bool) -> bool {
        loop {
            if done(&self.progress) {
                return true;
            }
            if Instant::now() >= until || self.handles.iter().all(|h| h.is_finished()) {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
            self.tick(phase);
        }
    }

    fn tick(&mut self, phase: &str) {
        if self.show_progress {
            self.ticker.tick(&self.progress, phase);
        }
    }

    /// Waits through the warm-up and the measured window, measuring the
    /// CPU this process and, given its pid, the server spend in the window.
    pub fn measure(&mut self, server_pids: &[u32]) -> Measured {
        let plan = self.plan;
        self.wait_until(plan.at(plan.measure_start_ns), "warmup");
        let cpu = CpuMeter::start();
        let server = (!server_pids.is_empty()).then(|| ServerMeter::start(server_pids));
        self.wait_until(plan.at(plan.measure_end_ns.unwrap_or(plan.measure_start_ns)), "measure");
        let cpu_percent = cpu.percent();
        let (server, server_error) = match server.map(|m| m.and_then(|m| m.finish())) {
            Some(Ok(s)) => (Some(s), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        Measured { cpu_percent, server, server_error }
    }

    /// Runs the warm-up and the window ([`Running::measure`]), then waits up
    /// to `grace` for replies still owed ([`Running::finish`]).
    pub fn complete(mut self, server_pids: &[u32], grace: Duration) -> Outcome {
        let mut measured = self.measure(server_pids);
        let (connect_s, handshake_s) = (self.connect_time.as_secs_f64(), self.handshake_time.as_secs_f64());
        let mut tally = self.finish(grace);
        if let Some(e) = measured.server_error.take() {
            tally.note(e);
        }
        Outcome { tally, measured, connect_s, handshake_s }
    }

    /// Asks every thread to stop now.
    pub fn stop(&self) {
        self.progress.stop.store(true, Relaxed);
    }

    /// Waits up to `grace` for the threads to end by themselves, then stops
    /// them, and merges their counts.
    pub fn finish(mut self, grace: Duration) -> Tally {
        let until = Instant::now() + grace;
        while Instant::now() < until && !self.handles.iter().all(|h| h.is_finished()) {
            thread::sleep(Duration::from_millis(2));
        }
        self.stop();
        let mut tally = Tally::default();
        for h in self.handles.drain(..) {
            match h.join() {
                Ok(t) => tally.merge(t),
                Err(_) => tally.note("a load thread panicked"),
            }
        }
        tally
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // An early return must not leave threads running.
        self.stop();
    }
}

/// What [`Running::measure`] saw.
pub struct Measured {
    /// This process's CPU use over the window, in % of one core.
    pub cpu_percent: f64,
    /// The server's CPU time over the window.
    pub server: Option<ServerCpu>,
    /// Why the server's CPU time could not be read.
    pub server_error: Option<String>,
}

/// What a whole timed run gave.
pub struct Outcome {
    /// Every thread's counts, merged (with a failure to read the server's
    /// CPU time noted).
    pub tally: Tally,
    /// CPU use over the window.
    pub measured: Measured,
    /// Seconds connecting took.
    pub connect_s: f64,
    /// Seconds the handshakes took after that.
    pub handshake_s: f64,
}

/// Prints a progress line once a second, with rates since the last one.
struct Ticker {
    started: Instant,
    last: Instant,
    replies: u64,
    bytes: u64,
}

impl Ticker {
    fn new(started: Instant) -> Ticker {
        Ticker { started, last: Instant::now(), replies: 0, bytes: 0 }
    }

    fn reset(&mut self) {
        self.last = Instant::now();
    }

    fn tick(&mut self, p: &Progress, phase: &str) {
        let elapsed = self.last.elapsed();
        if elapsed < Duration::from_secs(1) {
            return;
        }
        let (replies, bytes) = (p.replies.load(Relaxed), p.reply_bytes.load(Relaxed));
        let secs = elapsed.as_secs_f64();
        eprintln!(
            "[{:>4.0}s] {phase:<9} {} connected, {} ready, {} replies/s, {:.2} MB/s, {} errors",
            self.started.elapsed().as_secs_f64(),
            grouped(p.connected.load(Relaxed)),
            grouped(p.handshaken.load(Relaxed)),
            grouped(((replies - self.replies) as f64 / secs) as u64),
            (bytes - self.bytes) as f64 / secs / 1e6,
            grouped(p.errors.load(Relaxed)),
        );
        (self.last, self.replies, self.bytes) = (Instant::now(), replies, bytes);
    }
}
