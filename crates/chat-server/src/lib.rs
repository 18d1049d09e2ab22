//! Chat server.
pub mod protocol;
