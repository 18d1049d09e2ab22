//! The command thread: every Redis call of a node, pipelined in batches,
//! off the event loops.
//!
//! Loops (and the subscriber) hand [`Call`]s over a bounded channel and go
//! on; a full channel is refused at once (a slow Redis never stalls a
//! loop). The thread takes whatever queued up while the last batch was in
//! flight, sends it as one pipeline of `EVALSHA`s (one round trip), and
//! gives each call its reply through its continuation, on this thread.
//!
//! Faults: when the connection breaks, the calls of the batch in flight may
//! or may not have run. Those that can be sent again safely (reads,
//! presence, claims; appends with their de-duplication flag set) wait for
//! the reconnection, up to a deadline; the rest fail as unknown. While
//! Redis is away, new calls fail at once ([`CallError::Unavailable`]); the
//! thread reconnects with a jittered back-off and, once connected, loads
//! the scripts again and runs the hooks (heartbeat first).

use super::scripts::{source, Script, SOURCES};
use super::stats::ClusterStats;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use redis::Value;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Calls one pipeline carries at most.
const MAX_BATCH: usize = 1024;

/// Why a call has no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Not sent: Redis is away or the queue is full.
    Unavailable,
    /// Sent, but no reply came (the connection broke): it may have run.
    Unknown,
    /// Redis answered with an error.
    Server(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unavailable => f.write_str("Redis is unavailable"),
            CallError::Unknown => f.write_str("the connection to Redis broke before the reply"),
            CallError::Server(e) => write!(f, "Redis: {e}"),
        }
    }
}

/// May a call whose reply was lost be sent again?
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retry {
    /// No: it fails as [`CallError::Unknown`].
    No,
    /// Yes, as it is (it does the same thing twice).
    Same,
    /// Yes, with its last argument replaced (an append's de-duplication flag).
    LastArg(&'static str),
}

/// What a call's continuation gets.
pub type CallResult = Result<Value, CallError>;

/// One script call, and what to do with its reply (run on the command
/// thread: it must not block).
pub struct Call {
    /// The script.
    pub script: Script,
    /// Its KEYS.
    pub keys: Vec<String>,
    /// Its ARGV.
    pub args: Vec<String>,
    /// Whether it may be sent again after a lost reply.
    pub retry: Retry,
    /// Gets the reply.
    pub done: Box<dyn FnOnce(CallResult) + Send>,
}

impl Call {
    /// A call of `script` whose reply goes to `done`.
    pub fn new(
        script: Script,
        keys: Vec<String>,
        args: Vec<String>,
        retry: Retry,
        done: impl FnOnce(CallResult) + Send + 'static,
    ) -> Call {
        Call { script, keys, args, retry, done: Box::new(done) }
    }
}

/// What the command thread calls on its own: at every (re)connection and
/// every `period`, `tick` gives calls to run first (the heartbeat, the
/// sweep).
pub struct Hooks {
    /// Heartbeat period.
    pub period: Duration,
    /// The calls of a tick; `true`: the connection is new.
    pub tick: Box<dyn FnMut(bool) -> Vec<Call> + Send>,
}

/// The handle loops use; cloneable, safe from any thread.
#[derive(Clone)]
pub struct Bridge {
    tx: Sender<Call>,
    stats: Arc<ClusterStats>,
}

impl Bridge {
    /// Starts the command thread on `client`, with a queue of `capacity`
    /// calls and a reply timeout of `timeout`.
    pub fn start(
        client: redis::Client,
        capacity: usize,
        timeout: Duration,
        stats: Arc<ClusterStats>,
        hooks: Hooks,
    ) -> std::io::Result<(Bridge, JoinHandle<()>)> {
        let (tx, rx) = bounded(capacity.max(1));
        let run = Run {
            client,
            timeout,
            rx,
            conn: None,
            shas: Vec::new(),
            unsure: Vec::new(),
            stats: stats.clone(),
            hooks,
            next_tick: Instant::now(),
            backoff: Duration::ZERO,
            was_connected: false,
        };
        let thread = std::thread::Builder::new().name("redis-calls".into()).spawn(move || run.run())?;
        Ok((Bridge { tx, stats }, thread))
    }

    /// Queues a call; never blocks. A refused call gets
    /// [`CallError::Unavailable`] through its continuation before this
    /// returns, and `false`.
    pub fn call(&self, call: Call) -> bool {
        match self.tx.try_send(call) {
            Ok(()) => true,
            Err(TrySendError::Full(call) | TrySendError::Disconnected(call)) => {
                self.stats.refused.inc();
                (call.done)(Err(CallError::Unavailable));
                false
            }
        }
    }

    /// Calls waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}

struct Run {
    client: redis::Client,
    timeout: Duration,
    rx: Receiver<Call>,
    conn: Option<redis::Connection>,
    shas: Vec<String>,
    /// Calls whose reply was lost, to send again once connected, with the
    /// time they give up.
    unsure: Vec<(Call, Instant)>,
    stats: Arc<ClusterStats>,
    hooks: Hooks,
    next_tick: Instant,
    backoff: Duration,
    was_connected: bool,
}

impl Run {
    fn run(mut self) {
        loop {
            if self.conn.is_none() && !self.reconnect() {
                if !self.fail_while_away() {
                    return;
                }
                continue;
            }
            let mut batch: Vec<Call> = Vec::new();
            let now = Instant::now();
            if now >= self.next_tick {
                self.next_tick = now + self.hooks.period;
                batch.extend((self.hooks.tick)(false));
            }
            batch.extend(self.unsure.drain(..).map(|(c, _)| c));
            if batch.is_empty() {
                let wait = self.next_tick.saturating_duration_since(Instant::now());
                match self.rx.recv_timeout(wait) {
                    Ok(c) => batch.push(c),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            self.send(batch);
        }
    }

    /// Connects and loads the scripts; false (after a back-off pause
    /// spent failing new calls) if Redis cannot be reached.
    fn reconnect(&mut self) -> bool {
        match self.connect() {
            Ok((conn, shas)) => {
                if self.was_connected {
                    self.stats.reconnects.inc();
                    log::info!("redis: reconnected");
                }
                self.conn = Some(conn);
                self.shas = shas;
                self.backoff = Duration::ZERO;
                self.was_connected = true;
                self.next_tick = Instant::now() + self.hooks.period;
                // The heartbeat goes first: other nodes see us alive, and we
                // learn whether we were taken for dead meanwhile.
                let first = (self.hooks.tick)(true);
                let mut batch = first;
                batch.extend(self.unsure.drain(..).map(|(c, _)| c));
                self.send(batch);
                self.conn.is_some()
            }
            Err(e) => {
                self.backoff = (self.backoff * 2).clamp(Duration::from_millis(50), Duration::from_secs(2));
                log::warn!("redis: cannot connect ({e}); retrying in about {:?}", self.backoff);
                false
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<(redis::Connection, Vec<String>)> {
        let mut conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        let mut shas = Vec::with_capacity(SOURCES.len());
        let mut pipe = redis::pipe();
        for i in 0..SOURCES.len() {
            pipe.cmd("SCRIPT").arg("LOAD").arg(source(script_at(i)));
        }
        let loaded: Vec<String> = pipe.query(&mut conn)?;
        shas.extend(loaded);
        Ok((conn, shas))
    }

    /// While Redis is away: new calls fail at once and unsure ones past
    /// their deadline fail, for one back-off pause (with jitter). False
    /// if every handle is gone.
    fn fail_while_away(&mut self) -> bool {
        let jitter = Duration::from_millis(fastrand::u64(0..=self.backoff.as_millis() as u64 / 4 + 1));
        let until = Instant::now() + self.backoff + jitter;
        loop {
            let now = Instant::now();
            let (expired, kept): (Vec<_>, Vec<_>) = self.unsure.drain(..).partition(|(_, d)| *d <= now);
            self.unsure = kept;
            for (c, _) in expired {
                (c.done)(Err(CallError::Unknown));
            }
            if now >= until {
                return true;
            }
            match self.rx.recv_timeout(until - now) {
                Ok(c) => {
                    self.stats.refused.inc();
                    (c.done)(Err(CallError::Unavailable));
                }
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    fn send(&mut self, batch: Vec<Call>) {
        if batch.is_empty() {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            for c in batch {
                (c.done)(Err(CallError::Unavailable));
            }
            return;
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for c in &batch {
            let sha = self.shas.get(c.script as usize).map_or("", String::as_str);
            let cmd = pipe.cmd("EVALSHA").arg(sha).arg(c.keys.len()).arg(&c.keys);
            cmd.arg(&c.args);
        }
        let started = Instant::now();
        let reply: redis::RedisResult<Value> = pipe.query(conn);
        self.stats.round_trip.observe(started.elapsed().as_secs_f64());
        self.stats.batches.inc();
        self.stats.calls.inc_by(batch.len() as u64);
        match reply {
            Ok(Value::Array(values)) if values.len() == batch.len() => {
                let mut lost_scripts = false;
                for (c, v) in batch.into_iter().zip(values) {
                    match v {
                        Value::ServerError(e) => {
                            let text = format!("{e:?}");
                            lost_scripts |= text.contains("NOSCRIPT");
                            self.stats.errors.inc();
                            (c.done)(Err(CallError::Server(text)));
                        }
                        v => (c.done)(Ok(v)),
                    }
                }
                if lost_scripts {
                    // Someone flushed the script cache: load them again.
                    self.conn = None;
                }
            }
            Ok(other) => {
                log::error!("redis: unexpected pipeline reply {other:?}");
                self.lost(batch);
            }
            Err(e) => {
                log::warn!("redis: connection lost: {e}");
                self.lost(batch);
            }
        }
    }

    /// The connection broke with `batch` in flight.
    fn lost(&mut self, batch: Vec<Call>) {
        self.conn = None;
        let deadline = Instant::now() + self.timeout * 5;
        for mut c in batch {
            match c.retry {
                Retry::No => (c.done)(Err(CallError::Unknown)),
                Retry::Same => self.unsure.push((c, deadline)),
                Retry::LastArg(arg) => {
                    if let Some(last) = c.args.last_mut() {
                        *last = arg.to_string();
                    }
                    self.unsure.push((c, deadline));
                }
            }
        }
    }
}

fn script_at(i: usize) -> Script {
    Script::ALL[i]
}
