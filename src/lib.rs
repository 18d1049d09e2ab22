//! Switchboard: a framework for raw TCP messaging servers, built the way chat
//! backends were built before HTTP stacks took over: non-blocking sockets,
//! one readiness event loop per core, a binary length-prefixed protocol.
//!
//! This facade re-exports the workspace's library crates:
//! - [`reactor`]: the mio readiness reactor (event loops, connections,
//!   backpressure, timers, cross-thread send, graceful shutdown);
//! - [`framing`]: length-prefixed frames on `bytes`, knowing nothing of
//!   sockets;
//! - [`http1`]: a thin HTTP/1.1 server adapter over the reactor, to serve
//!   the same operations over HTTP and compare.
//!
//! ```
//! use switchboard::framing::FrameConfig;
//! use switchboard::reactor::ServiceConfig;
//!
//! let frames = FrameConfig::default(); // 4-byte big-endian length, 1 MiB max
//! let service = ServiceConfig::new("chat");
//! assert_eq!(frames.max_frame_length(), 1 << 20);
//! assert!(service.validate().is_ok());
//! ```
#![deny(missing_docs)]

pub use framing;
pub use http1;
pub use reactor;
