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

use crate::parse;
use crate::sys;
use clap::Args;
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
}

impl Common {
    /// Checks what can be checked before connecting: that the server
    /// process, if named, can be measured.
    pub fn check(&self) -> Result<(), String> {
        match self.server_pid {
            Some(pid) => sys::cpu_time(pid).map(drop).map_err(|e| format!("--server-pid {pid}: {e}")),
            None => Ok(()),
        }
    }
}

/// Progress lines are worth printing on runs longer than this.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(3);
