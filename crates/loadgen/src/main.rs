//! `loadgen`: the load generator and benchmark harness of switchboard.
//!
//! An independent instrument: it speaks the wire protocols itself, on mio,
//! one event loop per `--threads`. Each scenario is a file of `scenario/`;
//! connections, scheduling, statistics and the report are shared (`worker`,
//! `runner`, `schedule`, `stats`, `report`).

mod net;
mod parse;
mod report;
mod runner;
mod scenario;
mod schedule;
mod session;
mod stats;
mod sys;
mod wire;
mod worker;

use clap::{Parser, Subcommand};
use scenario::{echo, idle};
use std::process::ExitCode;

/// Load generator for switchboard servers.
#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    after_help = "Exit status: 0 if the run saw no error, 3 if it finished but counted errors, \
                  2 if it could not run."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Framed echo (4-byte big-endian length + payload) under load, closed
    /// loop (--depth) or open loop (--rate); throughput and latency.
    Echo(echo::EchoArgs),
    /// Many connections that echo one frame each and then sit idle; with
    /// --server-pid, the server's memory per idle connection.
    Idle(idle::IdleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (result, json) = match &cli.command {
        Command::Echo(a) => (echo::run(a), a.common.json),
        Command::Idle(a) => (idle::run(a), a.common.json),
    };
    match result {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            if report.errors.total == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
