//! `idle`: many connections that each echo one frame and then sit idle for
//! `--hold`. Source addresses are spread over 127.0.0.0/8 so that one
//! address's ephemeral ports do not cap the count. With `--server-pid`, the
//! server's resident memory is read before connecting and at the end of the
//! hold, giving what an idle connection costs it.

use super::echo::{EchoSession, Load};
use super::Common;
use crate::net::{Target, MAX_SOURCES};
use crate::parse;
use crate::report::{Errors, GeneratorFigures, IdleFigures, Report};
use crate::runner::{self, RunSpec};
use crate::session::Phases;
use crate::stats::{CpuMeter, ServerMeter};
use crate::sys;
use crate::wire::MIN_PAYLOAD;
use clap::Args;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Arguments of `idle`.
#[derive(Args, Clone, Debug)]
pub struct IdleArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub addr: SocketAddr,
    /// Connections (19000, 10k). Each takes a descriptor here; this
    /// process's hard limit caps them.
    #[arg(long, short, default_value = "19000", value_parser = parse::count_usize)]
    pub connections: usize,
    /// Payload bytes of the one frame each connection echoes (at least 16).
    #[arg(long, default_value = "16", value_parser = parse::size)]
    pub size: usize,
    /// How long to hold the connections once all have echoed.
    #[arg(long, default_value = "10s", value_parser = parse::duration)]
    pub hold: Duration,
    /// Load threads, each with its own event loop.
    #[arg(long, short, default_value_t = 1)]
    pub threads: usize,
    /// Source addresses to spread connections over (127.0.0.2 upwards);
    /// 0 lets the kernel choose.
    #[arg(long, default_value_t = MAX_SOURCES)]
    pub sources: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: Common,
}

/// Runs the idle scenario.
pub fn run(args: &IdleArgs) -> Result<Report, String> {
    if !(MIN_PAYLOAD..=64 << 10).contains(&args.size) {
        return Err(format!("--size must be {MIN_PAYLOAD} to 65536 bytes"));
    }
    let mut spec = RunSpec {
        target: Target { addr: args.addr, also: vec![], sources: args.sources },
        connections: args.connections,
        threads: args.threads,
        connect_timeout: args.common.connect_timeout,
        // Everything from the start is measured, until we stop it.
        phases: Phases { warmup: Duration::ZERO, measure: None, drain: Duration::ZERO },
        show_progress: !args.common.quiet,
    };
    spec.prepare()?;
    let rss = |pid: u32| sys::rss_bytes(pid).map_err(|e| format!("server pid {pid}: {e}"));
    let rss_before = args.common.server_pid.map(rss).transpose()?;
    let tcp_before = sys::kernel_tcp_bytes();
    let cpu = CpuMeter::start();
    let server_cpu = args.common.server_pid.map(|p| ServerMeter::start(&[p])).transpose()?;
    let size = args.size;
    let hello = Load::Closed { depth: 1 };
    let mut running = runner::start(&spec, move |i| EchoSession::new(i, size, hello, Some(1)))?;
    // Every connection echoes its one frame before the hold begins.
    let echo_deadline = Instant::now() + args.common.connect_timeout;
    running.wait_for(echo_deadline, "echo", |p| {
        p.replies.load(Relaxed) + p.dropped.load(Relaxed) >= p.connected.load(Relaxed)
    });
    let hold_started = Instant::now();
    running.wait_until(hold_started + args.hold, "hold");
    // Read while every connection is still open.
    let rss_held = args.common.server_pid.map(rss).transpose();
    let tcp_held = sys::kernel_tcp_bytes();
    let hold_s = hold_started.elapsed().as_secs_f64();
    let cpu_percent = cpu.percent();
    let server = server_cpu.map(|m| m.finish());
    let connect_s = running.connect_time.as_secs_f64();
    let mut tally = running.finish(Duration::ZERO);
    let server = server.and_then(|r| r.map_err(|e| tally.note(e)).ok());
    let rss_held = rss_held.unwrap_or_else(|e| {
        tally.note(format!("{e} (at the end of the hold)"));
        None
    });
    let held = tally.connected.saturating_sub(tally.closed + tally.io_errors);
    let bytes_per_connection = match (rss_before, rss_held) {
        (Some(before), Some(after)) if held > 0 => Some((after as f64 - before as f64) / held as f64),
        _ => None,
    };
    let kernel_tcp_delta = match (tcp_before, tcp_held) {
        (Some(b), Some(a)) => Some(a as i64 - b as i64),
        _ => None,
    };
    Ok(Report {
        scenario: "idle".into(),
        target: args.addr.to_string(),
        mode: format!("idle, one {size}-byte echo each, then held"),
        connections: args.connections,
        connected: tally.connected,
        threads: spec.threads,
        payload_bytes: size,
        depth: None,
        rate: None,
        warmup_s: 0.0,
        duration_s: hold_s,
        connect_s,
        handshake_s: 0.0,
        frames: tally.replies,
        frames_per_s: 0.0,
        mb_per_s: 0.0,
        sent_per_s: 0.0,
        latency: tally.latency.summary(),
        generator: GeneratorFigures::from_tally(&tally),
        errors: Errors::from_tally(&tally),
        cpu_percent,
        // Over the connecting, echo and hold: what holding costs.
        server: server.map(|s| s.per("connection", held)),
        fanout: None,
        http: None,
        idle: Some(IdleFigures {
            hold_s,
            held,
            server_pid: args.common.server_pid,
            rss_before,
            rss_held,
            bytes_per_connection,
            kernel_tcp_delta,
        }),
    })
}
