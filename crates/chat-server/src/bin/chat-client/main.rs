//! `chat-client`: a terminal client for the chat server, and a line-oriented
//! one for scripts.
//!
//! ```text
//! chat-client --connect 127.0.0.1:7000 --nick alice [--token T]
//! chat-client --connect chat.example.org:7443 --tls [--ca ca.pem] --nick alice
//! ```
//!
//! - **Terminal UI** ([`tui`]) when stdin is a terminal: a pane per room
//!   and per conversation, a side list with unread counts and the members
//!   of the current room, an input line with editing and history, and
//!   reconnection by itself after a restart (for `--reconnect-for`).
//! - **Script mode** ([`script`]) when stdin is not a terminal, or with
//!   `--script`: one command per line in, one event per line out, in the
//!   stable format of [`script::FORMATS`] (`chat-client --help` shows it).
//!
//! Exit status: 0 normal, 1 connection or login failure or connection
//! lost (script mode; the terminal UI reconnects), 2 usage error.

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use chat_server::client::TlsClient;
use chat_server::protocol::validate_name;
use clap::Parser;

mod command;
mod script;
mod tui;

/// Chat client: a terminal UI on a terminal, line-oriented in scripts.
#[derive(Parser, Debug)]
#[command(version, after_long_help = script::FORMATS)]
pub struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, short, value_name = "ADDR", default_value = "127.0.0.1:7000")]
    pub connect: String,
    /// Nickname: 1 to 32 of A-Z a-z 0-9 _ . -
    #[arg(long, short, value_parser = parse_name)]
    pub nick: String,
    /// Shared-secret token, if the server requires one.
    #[arg(long, short)]
    pub token: Option<String>,
    /// Script mode: how long to wait for trailing events once stdin ends (e.g. 500ms, 2s, 0).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub linger: Duration,
    /// Timeout to connect, to log in, and to wait for outstanding replies at the end.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Terminal UI: how long to keep trying to reconnect after the connection is lost
    /// (e.g. 30s, 10m; 0 never reconnects).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub reconnect_for: Duration,
    /// Script mode even when stdin is a terminal.
    #[arg(long)]
    pub script: bool,
    /// Connect with TLS (to the server's chat.tls_listen port), trusting the
    /// system's certificate authorities unless --ca is given.
    #[arg(long)]
    pub tls: bool,
    /// With --tls: trust the certificates in this PEM file (a private CA, or
    /// the server's self-signed certificate) instead of the system's.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub ca: Option<std::path::PathBuf>,
    /// With --tls: the name the server's certificate must carry (default:
    /// the host of --connect).
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub server_name: Option<String>,
}

impl Args {
    /// How to speak TLS, if asked to: `Err` says why it cannot.
    pub fn tls_client(&self) -> Result<Option<TlsClient>, String> {
        if !self.tls {
            return Ok(None);
        }
        let host = match self.connect.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => self.connect.as_str(),
        };
        let name = self.server_name.as_deref().unwrap_or(host);
        let client = match &self.ca {
            Some(ca) => TlsClient::with_ca_file(ca, name)?,
            None => TlsClient::with_system_roots(name)?,
        };
        Ok(Some(client))
    }
}

fn parse_name(s: &str) -> Result<String, String> {
    validate_name(s).map(|()| s.to_owned()).map_err(|e| e.to_string())
}

/// `500ms`, `2s`, `1.5s`, `1m`, or a bare number of milliseconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let seconds = match unit {
        "ms" | "" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("invalid duration unit {unit:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    if args.script || !io::stdin().is_terminal() || !io::stdout().is_terminal() {
        script::run(&args)
    } else {
        tui::run(&args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }
}
