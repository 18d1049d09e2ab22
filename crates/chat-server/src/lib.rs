//! A chat server and client on the `reactor` and `framing` crates, written
//! the way messaging servers were built before HTTP stacks: one binary
//! protocol (docs/PROTOCOL.md) over long-lived TCP connections.
//!
//! - [`protocol`]: the wire protocol as an I/O-free codec;
//! - [`config`]: the TOML configuration and its checks (`chat-server -t`);
//! - [`core`]: users, rooms and history shared by every event loop;
//! - [`identity`]: who holds which nickname on every door, and HTTP
//!   sessions (I/O-free), with [`login_limit`] per client address;
//! - [`cluster`]: several nodes serving the same rooms on Redis (offsets,
//!   room logs, nicknames and presence there), with [`completion`] for
//!   answers that come back from it;
//! - [`session`]: one connection's protocol state machine, a
//!   [`reactor::Handler`] over the [`reactor::FrameCodec`], shared with the
//!   WebSocket door ([`ws_session`]);
//! - [`http_api`]: the same chat over HTTP/1.1, on the `http1` adapter,
//!   with sessions, the chat page and the chat over WebSocket;
//! - [`server`]: the reactor with its chat services, and reload;
//! - [`server_tls`]: the certificate and rustls setup of the TLS doors;
//! - [`listeners`] and [`upgrade`]: inherited listening sockets (systemd,
//!   or a predecessor) and binary upgrade on the fly;
//! - [`client`]: a blocking client, used by the integration tests and the
//!   `chat-client` binary.
//!
//! ```no_run
//! use chat_server::{config::Config, server::ChatServer};
//!
//! let server = ChatServer::start(Config::builtin())?; // 127.0.0.1:7000
//! println!("chat on {:?}", server.local_addrs());
//! server.join();
//! # Ok::<(), std::io::Error>(())
//! ```
#![deny(missing_docs)]

pub mod client;
pub mod cluster;
pub mod completion;
pub mod config;
pub mod core;
pub mod delivery;
pub mod http_api;
pub mod identity;
pub mod listeners;
pub mod login_limit;
pub mod metrics;
pub mod protocol;
pub mod room;
pub mod sd_notify;
pub mod server;
pub mod server_tls;
pub mod session;
pub mod sessions_file;
pub mod store;
pub mod upgrade;
pub mod ws_session;
