//! Per-service limits and per-reactor settings.

use bytes::Bytes;
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
/// reconfigured while running with [`ReactorHandle::reconfigure`].
///
/// [`ReactorHandle::reconfigure`]: crate::ReactorHandle::reconfigure
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceConfig {
    /// Name used in logs and counters.
    pub name: String,
    /// Most connections open at once; one over it is closed at accept.
    pub max_connections: usize,
    /// Close a connection that has sent nothing for this long.
    pub idle_timeout: Option<Duration>,
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
    /// How long a closing connection waits for its peer to close after our
    /// FIN, discarding input, so that unread input does not turn the close
    /// into a reset that destroys the last replies.
    pub linger: Duration,
    /// Listen backlog.
    pub backlog: i32,
    /// Bytes written (once, best effort) to a connection refused at
    /// `max_connections` before it is closed, e.g. a "server full" frame.
    pub reject_with: Option<Bytes>,
}

impl ServiceConfig {
    /// A config with the defaults and the given name.
    pub fn new(name: impl Into<String>) -> ServiceConfig {
        ServiceConfig { name: name.into(), ..ServiceConfig::default() }
    }

    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if self.write_low_watermark > self.write_high_watermark {
            return Err(format!(
                "write_low_watermark ({}) is above write_high_watermark ({})",
                self.write_low_watermark, self.write_high_watermark
            ));
        }
        if self.write_high_watermark > self.max_write_queue {
            return Err(format!(
                "write_high_watermark ({}) is above max_write_queue ({})",
                self.write_high_watermark, self.max_write_queue
            ));
        }
        if self.read_budget == 0 {
            return Err("read_budget must be at least 1".into());
        }
        if self.max_read_buffer == 0 {
            return Err("max_read_buffer must be at least 1".into());
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            return Err("idle_timeout must be positive (omit it to disable)".into());
        }
        Ok(())
    }
}

impl Default for ServiceConfig {
    fn default() -> ServiceConfig {
        ServiceConfig {
            name: "service".into(),
            max_connections: 10_000,
            idle_timeout: None,
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
        assert!(c.validate().unwrap_err().contains("write_low_watermark"));
        let c = ServiceConfig { max_write_queue: 1, ..ServiceConfig::default() };
        assert!(c.validate().unwrap_err().contains("max_write_queue"));
    }
}
