//! `loadgen`: the load generator and benchmark harness of switchboard.
//!
//! An independent instrument: it speaks the wire protocols itself, on mio,
//! one event loop per `--threads`. Each scenario is a file of `scenario/`;
//! connections, handshakes, scheduling, statistics and the report are
//! shared (`worker`, `runner`, `schedule`, `stats`, `report`), and so is the
//! fan-out workload that `chat` and `nats` speak in two protocols
//! (`fanout`). The chat protocol's codec comes from `chat-server`.
//! `compare` runs the scenarios in-process against ours and the baselines.

mod compare;
mod fanout;
mod http_response;
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
use scenario::{chat, chat_http, echo, http, idle, nats, storm, ws};
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
    /// Chat fan-out: clients over rooms, senders posting at a fixed total
    /// rate; delivery latency from the scheduled send at every member.
    /// Benchmark a server configured with rate_per_sec = 0.
    Chat(chat::ChatArgs),
    /// The same fan-out in the NATS text protocol, for nats-server.
    Nats(nats::NatsArgs),
    /// The same fan-out through the chat server's HTTP endpoints: senders
    /// POST, members long-poll GET; one sender per room.
    ChatHttp(chat_http::ChatHttpArgs),
    /// The same fan-out as `chat` over WebSocket (GET /ws on the chat
    /// server's HTTP listener): one binary message per chat payload.
    Ws(ws::WsArgs),
    /// HTTP/1.1 keep-alive requests, closed loop (--pipeline) or open loop
    /// (--rate).
    Http(http::HttpArgs),
    /// A reconnect storm: members join one room (one after another with
    /// --sequential: the server's CPU per join); with --upgrade-pid, messages
    /// flow, the server is sent SIGUSR2 and every client reconnects and
    /// resumes; checks that all come back with nothing lost or doubled.
    Storm(storm::StormArgs),
    /// Builds the servers and runs every scenario against ours and the
    /// baselines (tokio, mio, hyper, nats-server), alternating rep by rep;
    /// writes results.json, report.md and SVG charts.
    Compare(compare::CompareArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (result, json) = match &cli.command {
        Command::Compare(a) => {
            return match compare::run(a) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("loadgen compare: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Storm(a) => {
            return match storm::run(a) {
                Ok(report) => {
                    if a.json {
                        println!("{}", serde_json::to_string(&report).unwrap_or_default());
                    } else {
                        print!("{}", report.to_table());
                    }
                    if report.problems.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(3)
                    }
                }
                Err(e) => {
                    eprintln!("loadgen storm: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Echo(a) => (echo::run(a), a.common.json),
        Command::Idle(a) => (idle::run(a), a.common.json),
        Command::Chat(a) => (chat::run(a), a.load.common.json),
        Command::Nats(a) => (nats::run(a), a.load.common.json),
        Command::ChatHttp(a) => (chat_http::run(a), a.load.common.json),
        Command::Ws(a) => (ws::run(a), a.load.common.json),
        Command::Http(a) => (http::run(a), a.common.json),
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
