//! `chat-server`: the chat protocol server.
//!
//! Signals: SIGHUP reloads the config file; SIGTERM and SIGINT shut down
//! gracefully (going-away push, flush, close within the grace period).

use chat_server::config::{Config, ConfigError};
use chat_server::server::{check_bind, ChatServer};
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::path::PathBuf;
use std::process::ExitCode;

/// Chat server speaking the binary protocol of docs/PROTOCOL.md.
///
/// Without -c it runs on the built-in default configuration (127.0.0.1:7000;
/// the same as crates/chat-server/chat-server.toml). Signals: HUP reloads
/// the config file without dropping connections (an invalid file is logged
/// and ignored); TERM or INT shuts down gracefully. Logging: RUST_LOG
/// (default "info").
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Configuration file (TOML). Default: the built-in configuration.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen address; overrides chat.listen. Repeat for several listeners.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Event-loop threads; overrides `threads` (0: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Check the configuration (values, and that listen addresses can be
    /// bound) and exit: status 0 and "configuration ok", or 1 and the reason.
    #[arg(short = 't', long = "test")]
    test: bool,
}

impl Args {
    /// The config named on the command line with the overrides applied.
    fn load(&self) -> Result<Config, ConfigError> {
        let (mut config, source) = match &self.config {
            Some(path) => (Config::load(path)?, path.display().to_string()),
            None => (Config::builtin(), "built-in default".to_string()),
        };
        if !self.listen.is_empty() {
            config.chat.listen = self.listen.clone();
        }
        if let Some(n) = self.threads {
            config.threads = n;
        }
        config.validate().map_err(|message| ConfigError { source, message })?;
        Ok(config)
    }

    fn source(&self) -> String {
        self.config.as_ref().map_or_else(|| "built-in default".to_string(), |p| p.display().to_string())
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let config = match args.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chat-server: {e}");
            if args.test {
                eprintln!("chat-server: configuration test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    if args.test {
        return match check_bind(&config) {
            Ok(()) => {
                println!("chat-server: {}: configuration ok", args.source());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("chat-server: {}: {e}", args.source());
                eprintln!("chat-server: configuration test failed");
                ExitCode::FAILURE
            }
        };
    }
    // Registered before any thread starts, so every thread has them blocked
    // from the default action and the iterator sees them.
    let mut signals = match Signals::new([SIGHUP, SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat-server: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut server = match ChatServer::start(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chat-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    for addr in server.local_addrs() {
        log::info!("chat-server listening on {addr}");
    }
    for signal in signals.forever() {
        match signal {
            SIGHUP => match args.load() {
                Ok(new) => match server.reload(new) {
                    Ok(ignored) => {
                        for why in ignored {
                            log::warn!("reload: {why}");
                        }
                        log::info!("reloaded configuration from {}", args.source());
                    }
                    Err(e) => log::error!("reload rejected, keeping the running configuration: {e}"),
                },
                Err(e) => log::error!("reload rejected, keeping the running configuration: {e}"),
            },
            _ => {
                log::info!("shutting down (signal {signal})");
                break;
            }
        }
    }
    server.shutdown();
    log::info!("stopped");
    ExitCode::SUCCESS
}
