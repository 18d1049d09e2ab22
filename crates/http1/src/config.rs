//! Limits and timeouts of an HTTP service.

use std::time::Duration;

/// Most header fields [`HttpConfig::max_headers`] may allow: httparse parses
/// into an array of this size on the stack.
pub const MAX_HEADERS_LIMIT: usize = 256;

/// Largest [`HttpConfig::max_head_size`] allowed (offsets into a request
/// head are kept as `u32`, and a head is re-parsed while it is incomplete).
pub const MAX_HEAD_SIZE_LIMIT: usize = 1 << 20;

/// Limits and timeouts of an [`HttpService`](crate::HttpService).
///
/// Every limit answers with its status code and then closes the connection
/// (after that response is written), since the rest of the input cannot be
/// trusted to be framed right. `max_body_size` must stay below the reactor's
/// [`ServiceConfig::max_read_buffer`](reactor::ServiceConfig::max_read_buffer),
/// which holds a `Content-Length` body until it is whole. Leave the
/// reactor's own [`ServiceConfig::idle_timeout`](reactor::ServiceConfig::idle_timeout)
/// unset: it would cut long polls; `keep_alive_timeout` does its job here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Largest request head (request line and header fields): 431, or 414
    /// when the request line alone is longer. Also bounds chunked trailers.
    pub max_head_size: usize,
    /// Most header fields in a request head (or trailer section): 431.
    pub max_headers: usize,
    /// Largest request body, `Content-Length` or chunked: 413.
    pub max_body_size: usize,
    /// Time a client has to send a whole request head, counted from its first
    /// byte (or from the accept, for the first request): 408. Not reset by
    /// progress, so that a client dribbling a byte at a time is cut off.
    pub head_timeout: Duration,
    /// Time a client may send nothing in the middle of a body: 408.
    pub body_timeout: Duration,
    /// Time a keep-alive connection may wait, idle, between requests; then
    /// it is closed without a response.
    pub keep_alive_timeout: Duration,
    /// Most requests parsed and queued behind a response that is not given
    /// yet (a long poll). Past it the connection takes no more requests: the
    /// queued ones are answered, then it is closed.
    pub max_pipelined: usize,
    /// Largest WebSocket message, fragments reassembled (and largest
    /// frame): past it the connection is closed with 1009.
    pub ws_max_message: usize,
    /// Time an upgraded WebSocket connection may send nothing (not even a
    /// pong) before the adapter closes it with 1001.
    pub ws_idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            max_head_size: 16 << 10,
            max_headers: 64,
            max_body_size: 1 << 20,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(60),
            max_pipelined: 64,
            ws_max_message: 64 << 10,
            ws_idle_timeout: Duration::from_secs(120),
        }
    }
}

impl HttpConfig {
    /// Checks that every limit is in range.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_HEADERS_LIMIT).contains(&self.max_headers) {
            return Err(format!("max_headers must be in 1..={MAX_HEADERS_LIMIT}"));
        }
        // A request line and a Host field need some room.
        if !(64..=MAX_HEAD_SIZE_LIMIT).contains(&self.max_head_size) {
            return Err(format!("max_head_size must be in 64..={MAX_HEAD_SIZE_LIMIT}"));
        }
        if self.max_pipelined == 0 {
            return Err("max_pipelined must be at least 1".into());
        }
        if self.ws_max_message == 0 {
            return Err("ws_max_message must be at least 1".into());
        }
        for (name, d) in [
            ("ws_idle_timeout", self.ws_idle_timeout),
            ("head_timeout", self.head_timeout),
            ("body_timeout", self.body_timeout),
            ("keep_alive_timeout", self.keep_alive_timeout),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be positive"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_as_documented() {
        let c = HttpConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!((c.max_head_size, c.max_headers, c.max_body_size), (16384, 64, 1 << 20));
        assert_eq!((c.head_timeout.as_secs(), c.keep_alive_timeout.as_secs(), c.max_pipelined), (10, 60, 64));
    }

    #[test]
    fn out_of_range_limits_are_refused() {
        let bad = [
            HttpConfig { max_headers: 0, ..HttpConfig::default() },
            HttpConfig { max_headers: MAX_HEADERS_LIMIT + 1, ..HttpConfig::default() },
            HttpConfig { max_head_size: 10, ..HttpConfig::default() },
            HttpConfig { max_pipelined: 0, ..HttpConfig::default() },
            HttpConfig { head_timeout: Duration::ZERO, ..HttpConfig::default() },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
