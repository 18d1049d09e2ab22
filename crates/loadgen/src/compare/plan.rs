//! What the comparison runs: the scenarios as cases (a table row),
//! each with its entries (the columns: ours first, then the baselines),
//! and how one entry is driven by calling the scenario code in-process.

use super::servers::{Running, Server};
use crate::fanout::FanoutArgs;
use crate::report::Report;
use crate::scenario::{chat, chat_http, echo, http, idle, nats, Common, TimedRun};
use std::time::Duration;

/// Warm-up and measured window of every run, and the sizes that `--quick`
/// shrinks.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    /// Load before measuring.
    pub warmup: Duration,
    /// Measured time.
    pub measure: Duration,
    /// Connections held by `idle`.
    pub idle_connections: usize,
    /// How long `idle` holds them.
    pub idle_hold: Duration,
}

impl Windows {
    /// The windows of a `--quick` run or of a full one.
    pub fn new(quick: bool) -> Windows {
        if quick {
            Windows {
                warmup: Duration::from_millis(300),
                measure: Duration::from_millis(700),
                idle_connections: 2_000,
                idle_hold: Duration::from_millis(500),
            }
        } else {
            Windows {
                warmup: Duration::from_millis(700),
                measure: Duration::from_secs(2),
                idle_connections: 19_000,
                idle_hold: Duration::from_secs(2),
            }
        }
    }
}

/// The load of one entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// Closed-loop framed echo.
    Echo {
        /// Payload bytes.
        size: usize,
        /// Connections.
        connections: usize,
        /// Frames in flight per connection.
        depth: usize,
    },
    /// Connections held idle.
    Idle,
    /// Fan-out in the chat protocol, or in NATS for nats-server.
    Fanout {
        /// Clients.
        clients: usize,
        /// Rooms.
        rooms: usize,
        /// Publishing clients.
        senders: usize,
        /// Messages per second in all.
        rate: u64,
    },
    /// `GET /`, keep-alive, closed loop.
    Http {
        /// Connections.
        connections: usize,
        /// Requests in flight per connection.
        pipeline: usize,
    },
    /// The chat fan-out through the HTTP endpoints: one sender posting,
    /// `members` long-polling (`chat-http`).
    ChatHttp {
        /// Members polling the room.
        members: usize,
        /// Posts per second.
        rate: u64,
    },
}

/// One column of a case.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The column heading.
    pub name: String,
    /// The server it starts.
    pub server: Server,
    /// The load it applies.
    pub load: Load,
}

/// One row of a table.
#[derive(Clone, Debug)]
pub struct Case {
    /// The table (`echo`, `idle`, `chat-room`, `chat-rooms`, `http`,
    /// `tcp-vs-http`, `room-log-room`, `room-log-rooms`).
    pub group: &'static str,
    /// The row label.
    pub label: String,
    /// Ours first, then the baselines.
    pub entries: Vec<Entry>,
    /// The unit of work that CPU time is divided by.
    pub unit: &'static str,
    /// Fan-out: the rate, for the rising-rate chart.
    pub rate: Option<u64>,
}

fn same(servers: &[Server], load: Load) -> Vec<Entry> {
    servers.iter().map(|&server| Entry { name: server.name().into(), server, load }).collect()
}

/// The cases of the scenarios named in `only` (all if empty), leaving out
/// entries on nats-server when it is missing.
pub fn cases(quick: bool, only: &[String], nats: bool) -> Vec<Case> {
    let wanted = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    let mut out = Vec::new();
    if wanted("echo") {
        let echo_servers = [Server::EchoOurs, Server::EchoIdiomatic, Server::EchoTuned, Server::EchoBare];
        let (sizes, conns): (&[usize], &[usize]) =
            if quick { (&[64], &[100]) } else { (&[64, 1024], &[100, 1000]) };
        for &size in sizes {
            for &connections in conns {
                for depth in [1, 16] {
                    let size_label =
                        if size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{size} B") };
                    out.push(Case {
                        group: "echo",
                        label: format!("{size_label}, {connections} conns, depth {depth}"),
                        entries: same(&echo_servers, Load::Echo { size, connections, depth }),
                        unit: "frame",
                        rate: None,
                    });
                }
            }
        }
    }
    if wanted("idle") {
        out.push(Case {
            group: "idle",
            label: "idle connections held".into(),
            entries: same(&[Server::EchoOurs, Server::EchoIdiomatic, Server::EchoBare], Load::Idle),
            unit: "connection",
            rate: None,
        });
    }
    if wanted("chat") || wanted("nats") {
        let mut fanout_servers = vec![Server::ChatOurs];
        if wanted("chat") {
            fanout_servers.push(Server::TokioChat);
        }
        if wanted("nats") && nats {
            fanout_servers.push(Server::Nats);
        }
        // nats-server tops out near 2,000 msgs/s here, tokio-chat and ours
        // between 4,000 and 9,000; a server is not tried above a rate it
        // failed at.
        let rates: &[u64] = if quick {
            &[1000, 6000]
        } else {
            &[500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000]
        };
        for &rate in rates {
            out.push(Case {
                group: "chat-room",
                label: format!("{rate} msgs/s"),
                entries: same(&fanout_servers, Load::Fanout { clients: 1000, rooms: 1, senders: 1, rate }),
                unit: "delivery",
                rate: Some(rate),
            });
        }
        let rate = if quick { 5_000 } else { 10_000 };
        out.push(Case {
            group: "chat-rooms",
            label: format!("100 rooms × 10, 100 senders, {rate} msgs/s"),
            entries: same(&fanout_servers, Load::Fanout { clients: 1000, rooms: 100, senders: 100, rate }),
            unit: "delivery",
            rate: Some(rate),
        });
    }
    if wanted("room-log") {
        out.extend(super::room_log::cases(quick));
    }
    if wanted("http") {
        for pipeline in [1, 16] {
            out.push(Case {
                group: "http",
                label: format!("100 conns, pipeline {pipeline}"),
                entries: same(&[Server::HttpOurs, Server::Hyper], Load::Http { connections: 100, pipeline }),
                unit: "request",
                rate: None,
            });
        }
    }
    if wanted("tcp-vs-http") {
        let (members, rate) = (10, 5_000);
        out.push(Case {
            group: "tcp-vs-http",
            label: format!("1 room of {members} members, 1 sender, {rate} msgs/s"),
            entries: vec![
                Entry {
                    name: "chat protocol".into(),
                    server: Server::ChatOurs,
                    load: Load::Fanout { clients: members + 1, rooms: 1, senders: 1, rate },
                },
                Entry {
                    name: "HTTP (POST + long poll)".into(),
                    server: Server::ChatOurs,
                    load: Load::ChatHttp { members, rate },
                },
            ],
            unit: "delivery",
            rate: Some(rate),
        });
    }
    out
}

fn common(server: &Running) -> Common {
    Common {
        json: false,
        connect_timeout: Duration::from_secs(10),
        quiet: true,
        server_pid: Some(server.pid),
        also_pids: Vec::new(),
    }
}

fn fanout_args(
    server: &Running,
    w: &Windows,
    clients: usize,
    rooms: usize,
    senders: usize,
    rate: u64,
) -> FanoutArgs {
    FanoutArgs {
        clients,
        rooms,
        senders,
        rate,
        size: 64,
        also: Vec::new(),
        run: TimedRun::new(w.warmup, w.measure),
        common: common(server),
    }
}

/// Drives `entry`'s load against `server` (already accepting); its report.
pub fn drive(entry: &Entry, server: &Running, w: &Windows) -> Result<Report, String> {
    let addr = server.addr;
    match entry.load {
        Load::Echo { size, connections, depth } => echo::run(&echo::EchoArgs {
            addr,
            connections,
            size,
            depth,
            rate: None,
            run: TimedRun::new(w.warmup, w.measure),
            common: common(server),
        }),
        Load::Idle => idle::run(&idle::IdleArgs {
            addr,
            connections: w.idle_connections,
            size: 16,
            hold: w.idle_hold,
            threads: 1,
            sources: crate::net::MAX_SOURCES,
            common: common(server),
        }),
        Load::Fanout { clients, rooms, senders, rate } => {
            let load = fanout_args(server, w, clients, rooms, senders, rate);
            if entry.server == Server::Nats {
                nats::run(&nats::NatsArgs { addr, load })
            } else {
                chat::run(&chat::ChatArgs { addr, token: String::new(), load })
            }
        }
        Load::Http { connections, pipeline } => http::run(&http_args(server, w, addr, connections, pipeline)),
        Load::ChatHttp { members, rate } => {
            let addr = server.http.ok_or("the chat server was started without HTTP")?;
            let load = fanout_args(server, w, members + 1, 1, 1, rate);
            chat_http::run(&chat_http::ChatHttpArgs { addr, load })
        }
    }
}

fn http_args(
    server: &Running,
    w: &Windows,
    addr: std::net::SocketAddr,
    connections: usize,
    pipeline: usize,
) -> http::HttpArgs {
    http::HttpArgs {
        url: format!("http://{addr}/"),
        connections,
        pipeline,
        rate: None,
        method: "GET".into(),
        body: None,
        headers: Vec::new(),
        run: TimedRun::new(w.warmup, w.measure),
        common: common(server),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_puts_ours_first() {
        for quick in [true, false] {
            let cases = cases(quick, &[], true);
            assert!(cases.iter().all(|c| c.entries[0].server.ours()), "ours first");
            let groups: Vec<&str> = cases.iter().map(|c| c.group).collect();
            for g in ["echo", "idle", "chat-room", "chat-rooms", "http", "tcp-vs-http", "room-log-room"] {
                assert!(groups.contains(&g), "{g} missing (quick {quick})");
            }
        }
        assert_eq!(cases(false, &[], true).iter().filter(|c| c.group == "echo").count(), 8);
    }

    #[test]
    fn scenarios_can_be_chosen_and_nats_left_out() {
        let only = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let echo = cases(true, &only(&["echo"]), true);
        assert!(echo.iter().all(|c| c.group == "echo"));
        let chat = cases(true, &only(&["chat"]), false);
        assert!(chat.iter().all(|c| c.entries.iter().all(|e| e.server != Server::Nats)));
        let nats = cases(true, &only(&["chat", "nats"]), true);
        assert!(nats.iter().any(|c| c.entries.iter().any(|e| e.server == Server::Nats)));
    }
}
