//! A blocking client for the chat protocol (`docs/PROTOCOL.md`), on
//! [`std::net::TcpStream`].
//!
//! [`ChatClient`] owns one connection. Its synchronous methods
//! ([`login`](ChatClient::login), [`join`](ChatClient::join),
//! [`say`](ChatClient::say), ...) send a request with a fresh request id and
//! wait for the reply carrying that id. Everything else that arrives in the
//! meantime (pushes, replies to requests sent with
//! [`send_request`](ChatClient::send_request)) is kept, in arrival order, in
//! an internal queue that [`next_event`](ChatClient::next_event) drains
//! before reading the socket again: nothing is lost and nothing is
//! reordered.
//!
//! * **Server pings** are answered with a `Pong` as soon as they are read
//!   (unless [`set_auto_pong(false)`](ChatClient::set_auto_pong)), and are
//!   still handed to the caller as events, so that they can be counted.
//! * **Timeouts**: every blocking read and write has the timeout given to
//!   [`connect`](ChatClient::connect). A synchronous call also gives up once
//!   that much time has passed without its reply while other frames keep
//!   arriving (it may then take up to twice the timeout). A timeout is
//!   [`ClientError::Io`] with [`io::ErrorKind::TimedOut`] (see
//!   [`ClientError::is_timeout`]) and is harmless: a partly read frame is
//!   kept, and a reply that comes later shows up in `next_event`.
//! * **Two threads**: [`ChatClient::sender`] returns a [`ChatSender`] that
//!   sends requests from another thread while one thread reads events.
//! * **Reconnecting**: [`reconnect`] has the back-off schedule and a
//!   [`Reconnector`](reconnect::Reconnector) that logs in again and joins
//!   a list of rooms again, after `GoingAway` or a dropped connection.
//! * Incoming frames may be up to [`MAX_INCOMING_PAYLOAD`] (1 MiB) long, the
//!   largest `max_payload` a server may announce.
//!
//! The client does not check names or text lengths: the server does, and
//! tests of the server need to send what it must reject.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use chat_server::client::ChatClient;
//! use chat_server::protocol::{Push, ServerFrame};
//!
//! let mut client = ChatClient::connect("127.0.0.1:7000", Duration::from_secs(5))?;
//! client.login("alice", None)?;
//! let joined = client.join("lobby")?;
//! println!("{} members, {} messages of history", joined.members, joined.history.len());
//! client.say("lobby", "hello")?;
//! loop {
//!     match client.next_event() {
//!         Ok(ServerFrame::Push(Push::Message { from, text, .. })) => println!("{from}: {text}"),
//!         Ok(_) => {}
//!         Err(e) if e.is_timeout() => {}
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok::<(), chat_server::client::ClientError>(())
//! ```

// Server bytes must never be able to panic the client.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::unreachable))]

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use framing::{FrameConfig, FrameDecoder};

use crate::protocol::{
    ClientFrameRef, OkBody, Position, Push, Reply, RequestRef, RoomInfo, ServerFrame, ServerLimits,
    PROTOCOL_VERSION,
};

mod error;
pub mod reconnect;
#[cfg(test)]
mod tests;
mod wire;

pub use error::ClientError;
pub use wire::TlsClient;

/// Largest frame payload accepted from the server: 1 MiB, the framing
/// layer's default and the largest `max_payload` a server may announce.
pub const MAX_INCOMING_PAYLOAD: usize = 1 << 20;

/// Default bound of the event queue (see [`ChatClient::set_queue_limit`]).
pub const DEFAULT_QUEUE_LIMIT: usize = 100_000;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// A successful join ([`ChatClient::join`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// Member count of the room, including the client.
    pub members: u32,
    /// The room's history replayed by the server, oldest first.
    pub history: Vec<HistoryMessage>,
    /// The room log's epoch.
    pub epoch: u64,
    /// Offset of the room's latest message when the client joined.
    pub last_offset: u64,
    /// The join resumed: `history` is exactly what followed the position
    /// given to [`ChatClient::join_from`].
    pub recovered: bool,
}

impl Joined {
    /// The position after the history: where live messages continue.
    pub fn position(&self) -> Position {
        Position { epoch: self.epoch, offset: self.last_offset }
    }
}

/// A message of a room's history, replayed after a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// Server-assigned message id.
    pub id: u64,
    /// Server timestamp, unix microseconds.
    pub ts_us: u64,
    /// Offset in the room's log.
    pub offset: u64,
    /// Sender nickname.
    pub from: String,
    /// Message text.
    pub text: String,
}

/// An accepted message ([`ChatClient::say`], [`ChatClient::direct`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sent {
    /// Server-assigned message id.
    pub id: u64,
    /// Server timestamp, unix microseconds.
    pub ts_us: u64,
    /// Offset in the room's log (0 for a direct message).
    pub offset: u64,
}

/// The write half shared by a [`ChatClient`] and its [`ChatSender`]s.
struct Shared {
    // One lock per frame so that frames from two threads never interleave.
    out: Mutex<Out>,
    next_id: AtomicU32,
}

struct Out {
    sink: wire::Sink,
    buf: BytesMut,
}

impl Shared {
    /// A request id; never 0, which `Pong` uses.
    fn fresh_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    fn send(&self, request: RequestRef<'_>) -> io::Result<u32> {
        let request_id = self.fresh_id();
        self.send_frame(ClientFrameRef { request_id, request })?;
        Ok(request_id)
    }

    fn send_frame(&self, frame: ClientFrameRef<'_>) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        let Out { sink, buf } = &mut *out;
        buf.clear();
        FrameConfig::default()
            .encode_header(frame.encoded_len(), buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        frame.encode(buf);
        sink.write_all(buf)
    }

    fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.sink.write_all(bytes)
    }

    fn close(&self) -> io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.sink.shutdown()
    }
}

/// A handle that sends requests on a [`ChatClient`]'s connection from
/// another thread (see [`ChatClient::sender`]). Cheap to clone.
///
/// Replies to its requests, like everything the server sends, are read by
/// the [`ChatClient`], as events.
#[derive(Clone)]
pub struct ChatSender {
    shared: Arc<Shared>,
}

impl ChatSender {
    /// Sends `request` with a fresh request id and returns the id, without
    /// waiting for the reply. See [`ChatClient::send_request`].
    pub fn send_request(&self, request: RequestRef<'_>) -> io::Result<u32> {
        self.shared.send(request)
    }

    /// Writes `bytes` as they are, with no framing. See
    /// [`ChatClient::send_raw`].
    pub fn send_raw(&self, bytes: &[u8]) -> io::Result<()> {
        self.shared.send_raw(bytes)
    }

    /// Shuts the connection down in both directions: the server sees the
    /// client leave, and a thread blocked in [`ChatClient::next_event`]
    /// wakes up with [`ClientError::Closed`].
    pub fn close(&self) -> io::Result<()> {
        self.shared.close()
    }
}

impl fmt::Debug for ChatSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatSender").finish_non_exhaustive()
    }
}

/// One connection to a chat server. See the [module documentation](self).
pub struct ChatClient {
    /// The socket (for its timeouts and address).
    stream: TcpStream,
    /// Read half; the write half is in `shared`.
    reader: wire::Reader,
    shared: Arc<Shared>,
    decoder: FrameDecoder,
    rbuf: BytesMut,
    queue: VecDeque<ServerFrame>,
    queue_limit: usize,
    timeout: Option<Duration>,
    auto_pong: bool,
    limits: Option<ServerLimits>,
}

impl fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatClient")
            .field("peer", &self.stream.peer_addr().ok())
            .field("queued_events", &self.queue.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl ChatClient {
    /// Connects to `addr` (each resolved address in turn), with `timeout`
    /// for the connection itself, then for every read and write, and as the
    /// deadline of synchronous calls. Disables Nagle's algorithm: frames are
    /// small and latency matters more than packet count.
    pub fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> io::Result<ChatClient> {
        ChatClient::connect_with(addr, timeout, None)
    }

    /// Like [`connect`](Self::connect), over TLS when `tls` is given: the
    /// handshake is done (within `timeout`) before this returns, and a
    /// server whose certificate `tls` does not trust is an error.
    pub fn connect_with(
        addr: impl ToSocketAddrs,
        timeout: Duration,
        tls: Option<&TlsClient>,
    ) -> io::Result<ChatClient> {
        let mut last_err = None;
        for addr in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => return ChatClient::from_stream_with(stream, timeout, tls),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")))
    }

    /// Wraps a stream connected elsewhere (e.g. with socket options set
    /// before connecting), with `timeout` as in [`connect`](Self::connect).
    pub fn from_stream(stream: TcpStream, timeout: Duration) -> io::Result<ChatClient> {
        ChatClient::from_stream_with(stream, timeout, None)
    }

    /// Like [`from_stream`](Self::from_stream), over TLS when `tls` is given.
    pub fn from_stream_with(
        stream: TcpStream,
        timeout: Duration,
        tls: Option<&TlsClient>,
    ) -> io::Result<ChatClient> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let (reader, sink) = match tls {
            Some(tls) => tls.handshake(&stream)?,
            None => (wire::Reader::Plain(stream.try_clone()?), wire::Sink::Plain(stream.try_clone()?)),
        };
        let out = Out { sink, buf: BytesMut::with_capacity(256) };
        let config = FrameConfig::default().with_max_frame_length(MAX_INCOMING_PAYLOAD);
        Ok(ChatClient {
            stream,
            reader,
            shared: Arc::new(Shared { out: Mutex::new(out), next_id: AtomicU32::new(1) }),
            decoder: FrameDecoder::new(config),
            rbuf: BytesMut::new(),
            queue: VecDeque::new(),
            queue_limit: DEFAULT_QUEUE_LIMIT,
            timeout: Some(timeout),
            auto_pong: true,
            limits: None,
        })
    }

    /// Logs in with protocol version [`PROTOCOL_VERSION`] and returns the
    /// server's limits (also kept, see [`limits`](Self::limits)). A refused
    /// login (e.g. [`NicknameTaken`](crate::protocol::ErrorCode::NicknameTaken)) leaves the connection open
    /// for another try.
    pub fn login(&mut self, nick: &str, token: Option<&str>) -> Result<ServerLimits, ClientError> {
        match self.call(RequestRef::Login { version: PROTOCOL_VERSION, nick, token })? {
            OkBody::Welcome(limits) => {
                self.limits = Some(limits);
                Ok(limits)
            }
            other => Err(unexpected("Welcome", &other)),
        }
    }

    /// Joins `room` (created if needed) and collects the history messages
    /// that the server replays right after its reply.
    pub fn join(&mut self, room: &str) -> Result<Joined, ClientError> {
        self.join_from(room, None)
    }

    /// Joins `room` resuming from `position` (the last message seen there,
    /// e.g. before a reconnect): the history is then exactly the messages
    /// after it when the server can recover them ([`Joined::recovered`]),
    /// else the recent history.
    pub fn join_from(&mut self, room: &str, position: Option<Position>) -> Result<Joined, ClientError> {
        let (members, count, epoch, last_offset, recovered) =
            match self.call(RequestRef::Join { room, resume: position })? {
                OkBody::Joined { members, history, epoch, last_offset, recovered } => {
                    (members, history, epoch, last_offset, recovered)
                }
                other => return Err(unexpected("Joined", &other)),
            };
        // `count` comes from the server: don't let it size the allocation.
        let mut history = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(1024));
        for n in 1..=count {
            // The protocol puts nothing between the reply and the history.
            match self.read_frame()? {
                ServerFrame::Push(Push::Message {
                    room: r,
                    id,
                    ts_us,
                    offset,
                    from,
                    text,
                    history: true,
                }) if r == room => {
                    history.push(HistoryMessage { id, ts_us, offset, from, text });
                }
                other => {
                    let what =
                        format!("expected history message {n} of {count} for {room}, got {}", kind(&other));
                    self.queue.push_back(other);
                    return Err(ClientError::Protocol(what));
                }
            }
        }
        Ok(Joined { members, history, epoch, last_offset, recovered })
    }

    /// Leaves `room`.
    pub fn leave(&mut self, room: &str) -> Result<(), ClientError> {
        match self.call(RequestRef::Leave { room })? {
            OkBody::Empty => Ok(()),
            other => Err(unexpected("Empty", &other)),
        }
    }

    /// Posts `text` to `room`. The other members get it; the client gets no
    /// echo, only the id and timestamp.
    pub fn say(&mut self, room: &str, text: &str) -> Result<Sent, ClientError> {
        self.call_sent(RequestRef::Say { room, text })
    }

    /// Sends `text` to the user `to` (which may be the client itself).
    pub fn direct(&mut self, to: &str, text: &str) -> Result<Sent, ClientError> {
        self.call_sent(RequestRef::Direct { to, text })
    }

    fn call_sent(&mut self, request: RequestRef<'_>) -> Result<Sent, ClientError> {
        match self.call(request)? {
            OkBody::Sent { id, ts_us, offset } => Ok(Sent { id, ts_us, offset }),
            other => Err(unexpected("Sent", &other)),
        }
    }

    /// Lists the rooms and their member counts. A list too long for one
    /// frame is cut by the server; [`call`](Self::call) with
    /// [`RequestRef::ListRooms`] also gives the total.
    pub fn list_rooms(&mut self) -> Result<Vec<RoomInfo>, ClientError> {
        match self.call(RequestRef::ListRooms)? {
            OkBody::Rooms { rooms, .. } => Ok(rooms),
            other => Err(unexpected("Rooms", &other)),
        }
    }

    /// Lists the members of `room` (membership not required); cut like
    /// [`list_rooms`](Self::list_rooms).
    pub fn who(&mut self, room: &str) -> Result<Vec<String>, ClientError> {
        match self.call(RequestRef::Who { room })? {
            OkBody::Members { nicks, .. } => Ok(nicks),
            other => Err(unexpected("Members", &other)),
        }
    }

    /// Pings the server and returns the round-trip time, frames queued
    /// meanwhile included.
    pub fn ping(&mut self) -> Result<Duration, ClientError> {
        let start = Instant::now();
        let request_id = self.shared.fresh_id();
        // Any nonce will do; a varying one catches a server echoing stale data.
        let nonce = u64::from(request_id) ^ 0x5eed_0000_0000;
        self.shared.send_frame(ClientFrameRef { request_id, request: RequestRef::Ping { nonce } })?;
        match self.wait_reply(request_id)? {
            OkBody::Pong { nonce: echo } if echo == nonce => Ok(start.elapsed()),
            other => Err(unexpected("Pong with our nonce", &other)),
        }
    }

    /// Sends any request and waits for its reply: the body of an OK reply,
    /// or [`ClientError::Server`] for an error reply. Unlike
    /// [`join`](Self::join), history pushes after a `Join` are left as
    /// events. `Pong` gets no reply, so it is refused here: use
    /// [`send_request`](Self::send_request).
    pub fn call(&mut self, request: RequestRef<'_>) -> Result<OkBody, ClientError> {
        if let RequestRef::Pong { .. } = request {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "Pong gets no reply: use send_request");
            return Err(ClientError::Io(e));
        }
        let request_id = self.shared.send(request)?;
        self.wait_reply(request_id)
    }

    /// Sends `request` with a fresh request id and returns the id without
    /// waiting: its reply comes later from [`next_event`](Self::next_event).
    /// A write error may leave part of a frame on the wire: drop the
    /// connection then.
    pub fn send_request(&mut self, request: RequestRef<'_>) -> io::Result<u32> {
        self.shared.send(request)
    }

    /// Writes `bytes` as they are, without a length prefix, to test how a
    /// server handles malformed input.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.shared.send_raw(bytes)
    }

    /// The next frame from the server, reply or push: the oldest queued one,
    /// or else the next one read from the socket, waiting up to the read
    /// timeout. Server pings were already answered (see
    /// [`set_auto_pong`](Self::set_auto_pong)) and are returned anyway.
    /// At the end of the stream: [`ClientError::Closed`], after every queued
    /// frame.
    pub fn next_event(&mut self) -> Result<ServerFrame, ClientError> {
        match self.queue.pop_front() {
            Some(frame) => Ok(frame),
            None => self.read_frame(),
        }
    }

    /// Like [`next_event`](Self::next_event), but waits at most `wait` and
    /// returns `Ok(None)` if nothing came, e.g. to check that some message
    /// is *not* delivered.
    pub fn poll_event(&mut self, wait: Duration) -> Result<Option<ServerFrame>, ClientError> {
        if let Some(frame) = self.queue.pop_front() {
            return Ok(Some(frame));
        }
        // A zero timeout is refused by the socket (it would mean "none").
        self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        let result = self.read_frame();
        if let Err(e) = self.stream.set_read_timeout(self.timeout) {
            if let Ok(frame) = result {
                self.queue.push_front(frame);
            }
            return Err(e.into());
        }
        match result {
            Err(e) if e.is_timeout() => Ok(None),
            other => other.map(Some),
        }
    }

    /// A handle to send requests from another thread while this one reads.
    /// The connection stays open while the client or any sender exists.
    pub fn sender(&self) -> ChatSender {
        ChatSender { shared: Arc::clone(&self.shared) }
    }

    /// The limits announced by the server at login, once logged in.
    pub fn limits(&self) -> Option<ServerLimits> {
        self.limits
    }

    /// Number of frames waiting in the event queue.
    pub fn queued_events(&self) -> usize {
        self.queue.len()
    }

    /// Changes the read timeout, which is also the deadline of synchronous
    /// calls; `None` blocks forever (for a thread that only reads events).
    /// The write timeout set by [`connect`](Self::connect) is kept.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.timeout = timeout;
        Ok(())
    }

    /// Bounds the event queue (default [`DEFAULT_QUEUE_LIMIT`]). A
    /// synchronous call that finds it full stops reading and fails with
    /// [`ClientError::QueueFull`]: unread frames stay in the socket rather
    /// than being dropped, and the server may end up closing a client that
    /// never drains its events as a slow consumer.
    pub fn set_queue_limit(&mut self, limit: usize) {
        self.queue_limit = limit;
    }

    /// Whether server pings are answered automatically (the default). Turn
    /// it off to test the server's idle timeout.
    pub fn set_auto_pong(&mut self, on: bool) {
        self.auto_pong = on;
    }

    /// Reads until the reply to `request_id`, queueing every other frame.
    fn wait_reply(&mut self, request_id: u32) -> Result<OkBody, ClientError> {
        let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
        // An error push just before the close says why the server closed.
        let mut error_push = None;
        loop {
            if self.queue.len() >= self.queue_limit {
                return Err(ClientError::QueueFull);
            }
            let frame = match self.read_frame() {
                Ok(frame) => frame,
                Err(ClientError::Closed) => {
                    return Err(match error_push {
                        Some((code, message)) => ClientError::Server { code, message },
                        None => ClientError::Closed,
                    })
                }
                Err(e) => return Err(e),
            };
            match frame {
                ServerFrame::Reply { request_id: id, reply } if id == request_id => {
                    return match reply {
                        Reply::Ok(body) => Ok(body),
                        Reply::Error { code, message } => Err(ClientError::Server { code, message }),
                    };
                }
                other => {
                    if let ServerFrame::Push(Push::Error { code, message }) = &other {
                        error_push = Some((*code, message.clone()));
                    }
                    self.queue.push_back(other);
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ClientError::from(io::Error::from(io::ErrorKind::WouldBlock)));
            }
        }
    }

    /// Reads the next frame from the socket (not the queue), answering a
    /// server ping.
    fn read_frame(&mut self) -> Result<ServerFrame, ClientError> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(payload)) => return self.on_payload(&payload),
                Ok(None) => {}
                // The decoder has dropped the oversized frame: the next call goes on.
                Err(e) => return Err(ClientError::Protocol(format!("bad frame from the server: {e}"))),
            }
            if self.fill()? == 0 {
                return match self.decoder.decode_eof(&mut self.rbuf) {
                    Ok(Some(payload)) => self.on_payload(&payload),
                    Ok(None) => Err(ClientError::Closed),
                    Err(e) => {
                        // So that the next call reports a plain close.
                        self.rbuf.clear();
                        Err(ClientError::Protocol(format!("connection closed inside a frame: {e}")))
                    }
                };
            }
        }
    }

    fn on_payload(&mut self, payload: &[u8]) -> Result<ServerFrame, ClientError> {
        // Frame boundaries survive a bad payload: the next frame still decodes.
        let frame = ServerFrame::decode(payload)
            .map_err(|e| ClientError::Protocol(format!("undecodable frame from the server: {e}")))?;
        if let ServerFrame::Push(Push::Ping { nonce }) = frame {
            if self.auto_pong {
                self.shared
                    .send_frame(ClientFrameRef { request_id: 0, request: RequestRef::Pong { nonce } })?;
            }
        }
        Ok(frame)
    }

    /// Appends one read's worth of bytes to `rbuf`; 0 at the end of stream.
    fn fill(&mut self) -> Result<usize, ClientError> {
        let start = self.rbuf.len();
        self.rbuf.resize(start + READ_CHUNK, 0);
        let result = loop {
            match self.reader.read(&mut self.rbuf[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        self.rbuf.truncate(start + result.as_ref().map_or(0, |n| *n));
        Ok(result?)
    }
}

/// A reply body of the wrong kind for the request.
fn unexpected(expected: &str, got: &OkBody) -> ClientError {
    ClientError::Protocol(format!("expected a {expected} reply, got body kind {}", got.kind()))
}

/// A short name for a frame, for error messages (texts can be long).
fn kind(frame: &ServerFrame) -> &'static str {
    match frame {
        ServerFrame::Reply { reply: Reply::Ok(_), .. } => "an OK reply",
        ServerFrame::Reply { reply: Reply::Error { .. }, .. } => "an error reply",
        ServerFrame::Push(Push::Message { history: true, .. }) => "a history message for another room",
        ServerFrame::Push(Push::Message { .. }) => "a live message",
        ServerFrame::Push(Push::Direct { .. }) => "a direct message",
        ServerFrame::Push(Push::Presence { .. }) => "a presence push",
        ServerFrame::Push(Push::Ping { .. }) => "a server ping",
        ServerFrame::Push(Push::GoingAway { .. }) => "a going-away push",
        ServerFrame::Push(Push::Error { .. }) => "an error push",
        ServerFrame::Push(Push::MemberCount { .. }) => "a member count",
    }
}
