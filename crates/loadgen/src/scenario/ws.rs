//! `ws`: the `chat` fan-out over WebSocket (`GET /ws` on the chat
//! server's HTTP listener, docs/PROTOCOL.md §1.1): the same clients, rooms,
//! logins, joins, stamps and schedule, each payload one binary WebSocket
//! message instead of a length-prefixed frame. Run against the same server
//! as `chat` to see what the WebSocket door costs per delivery.

use crate::fanout::{self, FanoutArgs};
use crate::report::Report;
use crate::scenario::chat::{ChatWire, RATE_LIMIT_HINT};
use clap::Args;
use std::net::SocketAddr;

/// Arguments of `ws`.
#[derive(Args, Clone, Debug)]
pub struct WsArgs {
    /// The chat server's HTTP address (where `/ws` is).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Login token, for a server configured with a shared secret.
    #[arg(long, default_value = "")]
    pub token: String,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub load: FanoutArgs,
}

/// Runs the chat scenario over WebSocket.
pub fn run(args: &WsArgs) -> Result<Report, String> {
    let (token, host) = (args.token.clone(), args.addr.to_string());
    let mut report = fanout::run("ws", args.addr, &args.load, move |i, layout, run| {
        let (nick, room) = (format!("lg{run:08x}_{i}"), format!("room{}", layout.room_of(i)));
        ChatWire::websocket(nick, room, token.clone(), host.clone(), i as u32 ^ run)
    })?;
    if report.errors.kinds.contains_key("RateLimited") {
        report.errors.hints.push(RATE_LIMIT_HINT.into());
    }
    Ok(report)
}
