//! Per-service limits and per-reactor settings.

use bytes::Bytes;
use std::fmt;
use std::time::Duration;

/// What a service does with a connection whose queued output passes
/// [`ServiceConfig::write_high_watermark`].
///
/// Whatever the policy, a connection whose queue passes
/// [`ServiceConfig::max_write_queue`] is closed as a slow consumer: that is
/// what keeps a connection's memory bounded when others keep sending to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// Stop reading from the connection until its queue drains below the low
    /// watermark: a client that pipelines requests but never reads replies is
    /// held back by TCP flow control.
    PauseReading,
    /// Close the connection at once with [`CloseReason::SlowConsumer`]
    /// (as nats-server does with its pending-bytes limit).
    ///
    /// [`CloseReason::SlowConsumer`]: crate::CloseReason::SlowConsumer
    Disconnect,
}

/// Limits and behaviour of one service (one listener and its handler).
///
/// Every field has a default fit for a chat-like service; a service can be
/// reconfigured while running with [`ReactorHandle::reconfigure`] (all but
/// `name` and `backlog`, which belong to the listener).
///
/// | field | default | what it bounds |
/// | --- | --- | --- |
/// | `max_connections` | 10,000 | sockets at once, closing ones included; one more is closed at accept (after `reject_with`) |
/// | `idle_timeout` | none | silence before the reactor closes a connection ([`CloseReason::IdleTimeout`]) |
/// | `handshake_timeout` | none | time a transport may take to finish its handshake (TLS) before the connection is closed ([`CloseReason::HandshakeTimeout`]) |
/// | `write_high_watermark` | 1 MiB | queued output past which `slow_consumer` applies |
/// | `write_low_watermark` | 256 KiB | queued output below which a paused connection reads again (and `on_drained` runs) |
/// | `max_write_queue` | 16 MiB | queued output past which the connection is closed as a slow consumer, whatever the policy |
/// | `slow_consumer` | [`SlowConsumerPolicy::PauseReading`] | what passing the high watermark does |
/// | `max_read_buffer` | 16 MiB | input a connection may hold undecoded (an unfinished message) |
/// | `read_budget` | 256 KiB | bytes read from one connection per event before the loop serves others |
/// | `nodelay` | true | TCP_NODELAY on accepted sockets |
/// | `send_buffer_size`, `recv_buffer_size` | kernel's | SO_SNDBUF, SO_RCVBUF |
/// | `linger` | 2 s | the whole close: flushing queued output, then waiting for the peer's FIN |
/// | `backlog` | 1024 | the listen backlog |
/// | `reject_with` | none | bytes written (best effort) to a connection refused at `max_connections` |
///
/// [`ReactorHandle::reconfigure`]: crate::ReactorHandle::reconfigure
/// [`CloseReason::IdleTimeout`]: crate::CloseReason::IdleTimeout
/// [`CloseReason::HandshakeTimeout`]: crate::CloseReason::HandshakeTimeout
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// Name used in logs and counters.
    pub name: String,
    /// Most sockets open at once (connections still flushing or lingering
    /// after their close count too: each holds a descriptor); one over it is
    /// closed at accept.
    pub max_connections: usize,
    /// Close a connection that has sent nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose transport has not finished its handshake
    /// this long after the accept (see
    /// [`Transport::is_handshaking`](crate::Transport::is_handshaking)): a
    /// peer that stalls a TLS handshake, or trickles it, is gone by then
    /// whatever bytes it sends. Plain TCP has no handshake.
    pub handshake_timeout: Option<Duration>,
    /// Queued output above which the slow-consumer policy applies.
    pub write_high_watermark: usize,
    /// Queued output below which a paused connection is read again.
    pub write_low_watermark: usize,
    /// Queued output above which the connection is closed as a slow consumer.
    pub max_write_queue: usize,
    /// What happens past the high watermark.
    pub slow_consumer: SlowConsumerPolicy,
    /// Unconsumed input a connection may hold (an unfinished frame, say);
    /// past it the connection is closed. Protocols with a smaller limit
    /// (a max frame size) enforce theirs first.
    pub max_read_buffer: usize,
    /// Bytes read from one connection per readiness event before the loop
    /// turns to the others, so that one busy peer cannot starve the rest.
    pub read_budget: usize,
    /// Set TCP_NODELAY on accepted sockets.
    pub nodelay: bool,
    /// SO_SNDBUF for accepted sockets (the kernel's default if `None`).
    pub send_buffer_size: Option<usize>,
    /// SO_RCVBUF for accepted sockets (the kernel's default if `None`).
    pub recv_buffer_size: Option<usize>,
    /// How long a close may take once decided: queued output is written,
    /// then FIN sent and input discarded until the peer closes too (so that
    /// unread input does not turn the close into a reset that destroys the
    /// last replies). Past it the socket is closed whatever is left.
    pub linger: Duration,
    /// Listen backlog.
    pub backlog: i32,
    /// Bytes written (once, best effort, as they are: no codec or transport
    /// is involved) to a connection refused at `max_connections` before it
    /// is closed, e.g. an encoded "server full" frame.
    pub reject_with: Option<Bytes>,
}

impl ServiceConfig {
    /// A config with the defaults and the given name.
    pub fn new(name: impl Into<String>) -> ServiceConfig {
        ServiceConfig { name: name.into(), ..ServiceConfig::default() }
    }

    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroMaxConnections);
        }
        if self.write_low_watermark > self.write_high_watermark {
            return Err(ConfigError::LowAboveHigh {
                low: self.write_low_watermark,
                high: self.write_high_watermark,
            });
        }
        if self.write_high_watermark > self.max_write_queue {
            return Err(ConfigError::HighAboveMax {
                high: self.write_high_watermark,
                max: self.max_write_queue,
            });
        }
        if self.read_budget == 0 {
            return Err(ConfigError::ZeroReadBudget);
        }
        if self.max_read_buffer == 0 {
            return Err(ConfigError::ZeroMaxReadBuffer);
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroIdleTimeout);
        }
        if self.handshake_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroHandshakeTimeout);
        }
        if self.backlog <= 0 {
            return Err(ConfigError::Backlog(self.backlog));
        }
        Ok(())
    }
}

/// A [`ServiceConfig`] whose limits do not make sense together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `max_connections` is 0.
    ZeroMaxConnections,
    /// `write_low_watermark` is above `write_high_watermark`.
    LowAboveHigh {
        /// The low watermark.
        low: usize,
        /// The high watermark.
        high: usize,
    },
    /// `write_high_watermark` is above `max_write_queue`.
    HighAboveMax {
        /// The high watermark.
        high: usize,
        /// The queue limit.
        max: usize,
    },
    /// `read_budget` is 0.
    ZeroReadBudget,
    /// `max_read_buffer` is 0.
    ZeroMaxReadBuffer,
    /// `idle_timeout` is `Some(0)` (use `None` to disable it).
    ZeroIdleTimeout,
    /// `handshake_timeout` is `Some(0)` (use `None` to disable it).
    ZeroHandshakeTimeout,
    /// `backlog` is not positive.
    Backlog(i32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroMaxConnections => f.write_str("max_connections must be at least 1"),
            ConfigError::LowAboveHigh { low, high } => {
                write!(f, "write_low_watermark ({low}) is above write_high_watermark ({high})")
            }
            ConfigError::HighAboveMax { high, max } => {
                write!(f, "write_high_watermark ({high}) is above max_write_queue ({max})")
            }
            ConfigError::ZeroReadBudget => f.write_str("read_budget must be at least 1"),
            ConfigError::ZeroMaxReadBuffer => f.write_str("max_read_buffer must be at least 1"),
            ConfigError::ZeroIdleTimeout => f.write_str("idle_timeout must be positive (omit it to disable)"),
            ConfigError::ZeroHandshakeTimeout => {
                f.write_str("handshake_timeout must be positive (omit it to disable)")
            }
            ConfigError::Backlog(n) => write!(f, "backlog must be positive, not {n}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            name: "service".into(),
            max_connections: 10_000,
            idle_timeout: None,
            handshake_timeout: None,
            write_high_watermark: 1 << 20,
            write_low_watermark: 256 << 10,
            max_write_queue: 16 << 20,
            slow_consumer: SlowConsumerPolicy::PauseReading,
            max_read_buffer: 16 << 20,
            read_budget: 256 << 10,
            nodelay: true,
            send_buffer_size: None,
            recv_buffer_size: None,
            linger: Duration::from_secs(2),
            backlog: 1024,
            reject_with: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert_eq!(ServiceConfig::default().validate(), Ok(()));
    }

    #[test]
    fn inverted_watermarks_are_rejected() {
        let c =
            ServiceConfig { write_low_watermark: 10, write_high_watermark: 5, ..ServiceConfig::default() };
        assert_eq!(c.validate(), Err(ConfigError::LowAboveHigh { low: 10, high: 5 }));
        assert!(c.validate().unwrap_err().to_string().contains("write_low_watermark"));
        let c = ServiceConfig { max_write_queue: 1, ..ServiceConfig::default() };
        assert!(matches!(c.validate(), Err(ConfigError::HighAboveMax { .. })));
    }
}
