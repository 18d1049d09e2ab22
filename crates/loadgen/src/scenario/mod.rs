//! Scenarios, one a file: its arguments, its [`Session`](crate::session::Session)
//! and its `run`, which returns a [`Report`](crate::report::Report). A new
//! scenario (chat, nats, http) is a file here and a variant of the command
//! enum in `main.rs`; connections, scheduling, statistics and the report
//! are shared.

pub mod echo;
pub mod idle;

use crate::parse;
use clap::Args;
use std::time::Duration;

/// Options every scenario takes.
#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Give up on connections not established by then (all of them, from
    /// the start).
    #[arg(long, default_value = "10s", value_parser = parse::duration)]
    pub connect_timeout: Duration,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Progress lines are worth printing on runs longer than this.
pub const PROGRESS_AFTER: Duration = Duration::from_secs(3);
