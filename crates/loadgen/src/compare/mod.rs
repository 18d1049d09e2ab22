//! `loadgen compare`: builds the servers, runs every scenario against ours
//! and the baselines in turn (rep by rep, alternating), and writes
//! `results.json`, `report.md` and SVG charts.
//!
//! `plan` says what runs, `servers` starts and stops them, `stats` holds
//! the records and the arithmetic, `render` the Markdown, `charts` the SVG.

mod charts;
mod plan;
mod render;
mod room_log;
mod servers;
mod stats;

use crate::report::grouped;
use clap::Args;
use plan::{Case, Windows};
use render::{Machine, Results};
use servers::{Env, Server};
use stats::{Figures, RunRecord};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `compare`.
#[derive(Args, Clone, Debug)]
pub struct CompareArgs {
    /// Short windows, fewer connections and rates, one rep: under a minute.
    #[arg(long)]
    pub quick: bool,
    /// Repetitions, servers alternating within each (default 3; 1 with --quick).
    #[arg(long)]
    pub reps: Option<usize>,
    /// Where results.json, report.md and the charts go (default target/compare
    /// under the workspace root).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Scenarios, comma-separated: echo, idle, chat, nats, http, tcp-vs-http,
    /// room-log (default: all).
    #[arg(long, value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// As root, apt-get install nats-server if it is not on PATH.
    #[arg(long)]
    pub install_peers: bool,
    /// Do not run cargo build first (the binaries must exist).
    #[arg(long)]
    pub no_build: bool,
    /// Run nothing: render report.md and the charts again from this
    /// results.json (into --out, default beside it).
    #[arg(long, value_name = "RESULTS_JSON")]
    pub render_only: Option<PathBuf>,
}

const SCENARIOS: [&str; 7] = ["echo", "idle", "chat", "nats", "http", "tcp-vs-http", "room-log"];

/// Runs the comparison; the path of the report.
pub fn run(args: &CompareArgs) -> Result<PathBuf, String> {
    let started = Instant::now();
    if let Some(json) = &args.render_only {
        let text = fs::read_to_string(json).map_err(|e| format!("{}: {e}", json.display()))?;
        let results: Results = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
        let out = args.out.clone().or_else(|| json.parent().map(Path::to_path_buf)).unwrap_or_default();
        return write_outputs(&results, &out);
    }
    if let Some(bad) = args.scenarios.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
        return Err(format!("--scenarios: unknown '{bad}' (known: {})", SCENARIOS.join(", ")));
    }
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 3 });
    if reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let root = servers::workspace_root()?;
    let out = args.out.clone().unwrap_or_else(|| root.join("target/compare"));
    let scratch = out.join("servers");
    fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    servers::install_signal_handler()?;
    let mut notes = Vec::new();
    let wants_nats = args.scenarios.is_empty() || args.scenarios.iter().any(|s| s == "nats");
    let nats = if wants_nats {
        servers::find_nats(args.install_peers)
            .map_err(|e| notes.push(format!("nats-server skipped: {e}")))
            .ok()
    } else {
        None
    };
    if !args.no_build {
        let r = ["--release"];
        servers::cargo_build(
            &root,
            &[&r[..], &["-p", "switchboard", "--example", "echo_server", "--example", "http_hello"]].concat(),
        )?;
        servers::cargo_build(&root, &[&r[..], &["-p", "chat-server", "--bin", "chat-server"]].concat())?;
        servers::cargo_build(
            &root,
            &[&r[..], &["--manifest-path", "benches/baselines/Cargo.toml"]].concat(),
        )?;
    }
    crate::sys::raise_fd_limit().map_err(|e| format!("descriptor limit: {e}"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cores >= 2;
    if pin {
        // Every load thread is started from here on, and inherits CPU 1.
        servers::pin_current(1).map_err(|e| format!("pinning the generator to CPU 1: {e}"))?;
    } else {
        notes.push("one CPU only: nothing pinned; server and generator share it".into());
    }
    let env = Env { root: root.clone(), nats: nats.clone(), scratch: scratch.clone(), pin };
    let windows = Windows::new(args.quick);
    let only: Vec<String> = if args.scenarios.is_empty() {
        SCENARIOS.iter().map(|s| s.to_string()).collect()
    } else {
        args.scenarios.clone()
    };
    let cases = plan::cases(args.quick, &only, nats.is_some());
    let mut results = Results {
        date: now(),
        command: command_line(args),
        machine: machine(cores),
        reps,
        windows: format!(
            "warm-up {:.1} s, measured {:.1} s (+ up to 2 s drain); idle: {} connections held {:.1} s",
            windows.warmup.as_secs_f64(),
            windows.measure.as_secs_f64(),
            grouped(windows.idle_connections as u64),
            windows.idle_hold.as_secs_f64()
        ),
        servers: server_lines(&cases),
        notes,
        runs: Vec::new(),
    };
    let total: usize = cases.iter().map(|c| c.entries.len() * reps).sum();
    let mut done = 0;
    for case in &cases {
        for rep in 0..reps {
            for entry in &case.entries {
                done += 1;
                let mut record = RunRecord {
                    group: case.group.into(),
                    case: case.label.clone(),
                    server: entry.name.clone(),
                    ours: entry.server.ours() && entry.name == case.entries[0].name,
                    rep,
                    rate: case.rate,
                    unit: case.unit.into(),
                    ..RunRecord::default()
                };
                eprint!(
                    "[{:>4.0}s {done}/{total}] {} · {} · rep {}/{reps} · {}: ",
                    started.elapsed().as_secs_f64(),
                    case.group,
                    case.label,
                    rep + 1,
                    entry.name
                );
                if let Some(why) = skip(&results.runs, case, entry.server) {
                    eprintln!("skipped ({why})");
                    record.note = Some(why);
                    results.runs.push(record);
                    continue;
                }
                let room_log = room_log::is_room_log(case.group);
                let with_http = room_log || matches!(entry.load, plan::Load::ChatHttp { .. });
                let outcome = env.start(entry.server, with_http).and_then(|mut server| {
                    // The room log's counters around the run (warm-up and window).
                    let before = room_log.then(|| server.log_counters()).transpose();
                    let r = plan::drive(entry, &server, &windows);
                    let after = room_log.then(|| server.log_counters()).transpose();
                    server.stop();
                    let log = match (before, after) {
                        (Ok(Some(b)), Ok(Some(a))) => Some(stats::LogRates::new(
                            a.appends.saturating_sub(b.appends),
                            a.fsyncs.saturating_sub(b.fsyncs),
                            (windows.warmup + windows.measure).as_secs_f64(),
                        )),
                        (Err(e), _) | (_, Err(e)) => return Err(format!("/metrics: {e}")),
                        _ => None,
                    };
                    r.map(|report| (report, log))
                });
                match outcome {
                    Ok((report, log)) => {
                        let mut f = Figures::of(&report, case.unit);
                        f.log = log;
                        eprintln!("{}", progress_line(&f, case));
                        record.figures = Some(f);
                        record.report = Some(report);
                    }
                    Err(e) => {
                        eprintln!("failed: {e}");
                        record.note = Some(e);
                    }
                }
                results.runs.push(record);
            }
        }
    }
    let report = write_outputs(&results, &out)?;
    eprintln!("compare: done in {:.0} s; report in {}", started.elapsed().as_secs_f64(), report.display());
    Ok(report)
}

/// Why a fan-out server is not run at this rate: it sustained no lower
/// rate in any rep, so a higher one would only cost time.
fn skip(runs: &[RunRecord], case: &Case, server: Server) -> Option<String> {
    let rate = case.rate?;
    if case.group != "chat-room" && case.group != room_log::ROOM {
        return None;
    }
    let lower: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.group == case.group && r.server == server.name() && r.rate.is_some_and(|x| x < rate))
        .collect();
    let max_lower = lower.iter().filter_map(|r| r.rate).max()?;
    let failed = lower
        .iter()
        .filter(|r| r.rate == Some(max_lower))
        .all(|r| r.figures.as_ref().is_none_or(|f| !stats::sustained(f)));
    failed.then(|| format!("not sustained at {} msgs/s", grouped(max_lower)))
}

/// `delivery` → `deliveries`, `frame` → `frames`.
fn plural(unit: &str) -> String {
    match unit.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{unit}s"),
    }
}

fn progress_line(f: &Figures, case: &Case) -> String {
    let mut s = if case.group == "idle" {
        format!("{:.0} B RSS per connection", f.rss_per_conn.unwrap_or(0.0))
    } else {
        format!(
            "{} {}/s, p50 {}, p99 {}",
            grouped(f.throughput.round() as u64),
            plural(case.unit),
            render::time(f.p50_us),
            render::time(f.p99_us)
        )
    };
    if let Some(c) = f.cpu_us_per {
        s += &format!(", server {c:.3} µs/{}", case.unit);
    }
    if let Some(a) = f.acked_per_s {
        s += &format!(", {} acked/s", grouped(a.round() as u64));
    }
    if let Some(l) = f.log {
        s += &format!(
            ", log {} appends/s, {:.0} fsyncs/s",
            grouped(l.appends_per_s.round() as u64),
            l.fsyncs_per_s
        );
    }
    s += &format!(", generator CPU {:.0} %", f.generator_cpu_percent);
    if f.errors > 0 {
        s += &format!(", {} errors", grouped(f.errors));
    }
    s
}

/// Writes results.json, report.md and the charts into `out`; the report's path.
fn write_outputs(results: &Results, out: &Path) -> Result<PathBuf, String> {
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    servers::create(&out.join("results.json"))?.write_all(json.as_bytes()).map_err(|e| e.to_string())?;
    let mut md = render::markdown(results);
    match charts::write_all(&results.runs, out) {
        Ok(files) if !files.is_empty() => {
            md += "### Charts\n\n";
            for f in files {
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                md += &format!("![{name}]({name})\n");
            }
        }
        Ok(_) => {}
        Err(e) => md += &format!("> charts could not be drawn: {e}\n"),
    }
    let path = out.join("report.md");
    servers::create(&path)?.write_all(md.as_bytes()).map_err(|e| e.to_string())?;
    Ok(path)
}

fn server_lines(cases: &[Case]) -> Vec<String> {
    let mut seen: Vec<Server> = Vec::new();
    for c in cases {
        for e in &c.entries {
            if !seen.contains(&e.server) {
                seen.push(e.server);
            }
        }
    }
    seen.into_iter()
        .map(|s| match s {
            Server::EchoOurs => {
                "taskset -c 0 target/release/examples/echo_server --listen ADDR --threads 1".into()
            }
            Server::HttpOurs => {
                "taskset -c 0 target/release/examples/http_hello --listen ADDR --threads 1".into()
            }
            Server::ChatOurs => "taskset -c 0 target/release/chat-server --threads 1 -c CONF (threads = 1, \
                                 rate_per_sec = 0, max_members_per_room = 2000, history_len = 10000, [http] listen = [] but for \
                                 tcp-vs-http and room-log, [store] data_dir = \"none\")"
                .into(),
            Server::ChatInterval | Server::ChatAlways => format!(
                "taskset -c 0 target/release/chat-server --threads 1 -c CONF (as chat-server, with [store] \
                 data_dir = a new empty directory under the compare output's servers/data, fsync = \"{}\")",
                s.fsync().unwrap_or_default()
            ),
            Server::EchoBare => {
                "taskset -c 0 benches/baselines/target/release/mio-echo-bare --listen ADDR".into()
            }
            Server::Nats => "taskset -c 0 nats-server -c CONF (listen: ADDR)".into(),
            other => format!(
                "taskset -c 0 benches/baselines/target/release/{} --listen ADDR --threads 1",
                other.name()
            ),
        })
        .collect()
}

fn command_line(args: &CompareArgs) -> String {
    let mut s = "cargo run --release -p loadgen -- compare".to_string();
    if args.quick {
        s += " --quick";
    }
    if let Some(r) = args.reps {
        s += &format!(" --reps {r}");
    }
    if !args.scenarios.is_empty() {
        s += &format!(" --scenarios {}", args.scenarios.join(","));
    }
    s
}

fn now() -> String {
    let out = std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
}

fn machine(cores: usize) -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown".into(), |(_, v)| v.trim().to_string());
    let kernel = std::process::Command::new("uname")
        .arg("-sr")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    Machine { cores, model, kernel, memory_gib: kib / 1048576.0 }
}
