//! Scenarios, one a file: its arguments, its [`Session`](crate::session::Session)
//! and its `run`, which returns a [`Report`](crate::report::Report). A new
//! scenario is a file here and a variant of the command enum in `main.rs`;
//! connections, handshakes, scheduling, fan-out accounting, statistics and
//! the report are shared.

pub mod chat;
pub mod chat_http;
pub mod echo;
pub mod http;
pub mod idle;
pub mod nats;
pub mod storm;
pub mod ws;

use crate::net::Target;
use crate::parse;
use crate::runner::RunSpec;
use crate::session::Phases;
use crate::sys;
use clap::Args;
use std::net::SocketAddr;
use std::time::Duration;

/// Options every scenario takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Give up on connections not established by then (all of them, from
    /// the start); handshakes (login and join, subscribe) get as long again.
    #[arg(long, default_value = "10s", value_parser = parse::duration)]
    pub connect_timeout: Duration,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// The server's process id: report its CPU time over the window, per
    /// unit of work (and, for `idle`, its memory per connection).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// More server processes (the other nodes of a cluster, its Redis):
    /// their CPU time is added to --server-pid's. Repeat for each.
    #[arg(long = "also-pid", value_name = "PID", requires = "server_pid")]
    pub also_pids: Vec<u32>,
}

impl Common {
    /// Checks what can be checked before connecting: that the server
    /// process, if named, can be measured.
    pub fn check(&self) -> Result<(), String> {
        for pid in self.pids() {
            sys::cpu_time(pid).map(drop).map_err(|e| format!("--server-pid/--also-pid {pid}: {e}"))?;
        }
        Ok(())
    }

    /// Every server process measured: --server-pid, then the --also-pid ones.
    pub fn pids(&self) -> Vec<u32> {
        self.server_pid.into_iter().chain(self.also_pids.iter().copied()).collect()
    }
}

/// How long a timed scenario (`echo`, `http`, `chat`, `nats`, `chat-http`)
/// loads the server, and how the generator spreads its connections.
#[derive(Args, Clone, Debug)]
pub struct TimedRun {
    /// Measured time (10s, 500ms, 2m).
    #[arg(long, short, default_value = "10s", value_parser = parse::duration)]
    pub duration: Duration,
    /// Load before measuring (after every connection's handshake).
    #[arg(long, default_value = "2s", value_parser = parse::duration)]
    pub warmup: Duration,
    /// Load threads, each with its own event loop; connections are spread
    /// over them.
    #[arg(long, short, default_value_t = 1)]
    pub threads: usize,
    /// Source addresses to spread connections over (127.0.0.2 upwards);
    /// 0 lets the kernel choose.
    #[arg(long, default_value_t = 0)]
    pub sources: usize,
}

impl TimedRun {
    /// One thread, the kernel's source address: how `compare` runs.
    pub fn new(warmup: Duration, duration: Duration) -> TimedRun {
        TimedRun { duration, warmup, threads: 1, sources: 0 }
    }

    /// The checked run of `connections` to `addr`, waiting up to `drain`
    /// after the window for replies still owed.
    pub fn spec(
        &self,
        addr: SocketAddr,
        connections: usize,
        common: &Common,
        drain: Duration,
    ) -> Result<RunSpec, String> {
        if self.duration.is_zero() {
            return Err("--duration must be positive".into());
        }
        let mut spec = RunSpec {
            target: Target { addr, also: vec![], sources: self.sources },
            connections,
            threads: self.threads,
            connect_timeout: common.connect_timeout,
            phases: Phases { warmup: self.warmup, measure: Some(self.duration), drain },
            show_progress: !common.quiet && self.warmup + self.duration > PROGRESS_AFTER,
        };
        spec.prepare()?;
        Ok(spec)
    }
}

/// Progress lines are worth printing on runs longer than this.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(3);
