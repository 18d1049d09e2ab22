//! HTTP/1.1 as a reactor [`Codec`]: request heads and bodies decoded from a
//! connection's input, responses encoded straight into its output. The
//! request/response pairing (pipelining in order, long polls, deadlines) is
//! [`HttpService`](crate::HttpService)'s, on top.

use crate::config::HttpConfig;
use crate::date::DateCache;
use crate::decoder::Decoder;
use crate::parse::Reject;
use crate::request::Request;
use crate::response::{encode, Persistence, Response, CONTINUE};
use bytes::{Bytes, BytesMut};
use reactor::{Codec, Encoder, Output, Refused};
use std::convert::Infallible;
use std::time::Instant;

/// The HTTP/1.1 codec of an [`HttpService`](crate::HttpService): one per
/// loop, with the limits of its [`HttpConfig`] and the loop's cached date.
pub struct HttpCodec {
    config: HttpConfig,
    date: DateCache,
}

impl HttpCodec {
    /// A codec with the limits of `config`.
    pub fn new(config: HttpConfig) -> HttpCodec {
        HttpCodec { config, date: DateCache::new() }
    }

    /// The limits in force.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }
}

/// Where a connection's request stream is.
pub struct HttpStream {
    pub(crate) decoder: Decoder,
    /// Input is no longer parsed (a bad request, a closing response, too
    /// many queued): what arrives is discarded.
    pub(crate) stopped: bool,
}

/// What the codec hands the service: a whole request, or one it must
/// refuse (answered in its turn, then the connection closes).
pub struct Incoming(pub(crate) Result<Request, Reject>);

impl Codec for HttpCodec {
    type Conn = HttpStream;
    type Item<'a> = Incoming;
    type DecodeError = Infallible;

    fn open(&mut self) -> HttpStream {
        HttpStream { decoder: Decoder::new(), stopped: false }
    }

    fn decode(
        &mut self,
        conn: &mut HttpStream,
        input: &mut BytesMut,
    ) -> Result<Option<(Incoming, usize)>, Infallible> {
        if conn.stopped {
            input.clear();
            return Ok(None);
        }
        Ok(match conn.decoder.decode(input, &self.config) {
            Ok(Some(req)) => Some((Incoming(Ok(req)), 0)),
            Ok(None) => None,
            Err(reject) => {
                // No request boundary is known after a bad one.
                conn.stopped = true;
                Some((Incoming(Err(reject)), 0))
            }
        })
    }

    fn encode_payload(&mut self, _: &mut HttpStream, _: &Bytes, _: &mut Output<'_>) -> Result<(), Refused> {
        Err(Refused("an HTTP/1.1 connection takes no message but a response to its request"))
    }
}

/// A response as the service sends it: for the adapter's own use.
#[doc(hidden)]
pub struct Reply<'r> {
    pub(crate) response: &'r Response,
    pub(crate) head_only: bool,
    pub(crate) persistence: Persistence,
    pub(crate) now: Instant,
}

impl Encoder<Reply<'_>> for HttpCodec {
    type Error = Infallible;

    fn encode(
        &mut self,
        _: &mut HttpStream,
        reply: Reply<'_>,
        out: &mut Output<'_>,
    ) -> Result<(), Infallible> {
        let date = self.date.get(reply.now);
        let body =
            out.append_with(|buf| encode(reply.response, reply.head_only, reply.persistence, date, buf));
        if let Some(body) = body {
            out.push(&body);
        }
        Ok(())
    }
}

/// An interim `100 Continue`: for the adapter's own use.
#[doc(hidden)]
pub struct Continue;

impl Encoder<Continue> for HttpCodec {
    type Error = Infallible;

    fn encode(&mut self, _: &mut HttpStream, _: Continue, out: &mut Output<'_>) -> Result<(), Infallible> {
        out.append(CONTINUE);
        Ok(())
    }
}
