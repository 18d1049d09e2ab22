//! Baseline: the project's chat protocol (docs/PROTOCOL.md) served the way
//! a tokio user would write a chat server.
//!
//! * A task per connection owning its state (nickname, rooms joined).
//! * A `tokio::sync::broadcast` channel per room (capacity `--capacity`,
//!   default 1024). A `Say` encodes its `Message` push **once**, length
//!   prefix included, as `bytes::Bytes`, and sends it through the room's
//!   channel; every member's task copies it into its `Framed` write buffer.
//!   The sender skips its own pushes (each event carries the sender's
//!   connection id), so it gets only its `Sent` reply.
//! * `RecvError::Lagged(n)` (a member too slow for the channel's capacity)
//!   is counted and logged, and the member carries on from the oldest
//!   message still in the channel: lag never ends the loop.
//! * Batching: after a wake-up the task drains every request that is
//!   already decodable and every push already in its channels (`try_recv`),
//!   `feed`s the replies and pushes, then `flush`es once.
//!
//! Supported: Login (token ignored, nicknames unique), Join (reply `Joined`
//! with the member count and 0 history), Leave, Say, Who, ListRooms, Ping,
//! Pong (ignored), presence pushes, strict decoding with the protocol's
//! error replies, the frame size limit, rooms per user and members per
//! room. Not implemented: history (announced as 0), Direct (answered with
//! `Internal`), rate limiting (announced as 0 = unlimited), server pings
//! and the idle timeout (announced at its default but not enforced),
//! GoingAway on shutdown.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use chat_server::protocol::{
    ClientFrameRef, ErrorCode, OkBody, PresenceKind, Push, PushRef, RequestRef, RoomInfo, ServerFrame,
    ServerLimits, MAX_NAME_LEN,
};
use clap::Parser;
use futures_util::future::select_all;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::codec::{Decoder, Encoder, Framed, LengthDelimitedCodec};

/// Chat server (switchboard chat protocol v1) on tokio: broadcast channel per room, task per connection.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Runtime flavour: `auto` is current-thread for 1 thread (the faster
    /// one there, see the README), multi-thread otherwise.
    #[arg(long, value_enum, default_value_t = Flavor::Auto)]
    runtime: Flavor,
    /// Capacity of each room's broadcast channel, in messages (tokio rounds
    /// it up to a power of two). A member more than this far behind lags.
    #[arg(long, default_value_t = 1024)]
    capacity: usize,
}

/// Most requests (and most ready pushes per room) handled before a flush.
const BATCH: usize = 256;

fn main() -> io::Result<()> {
    let args = Args::parse();
    runtime(args.threads, args.runtime)?.block_on(serve(args))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Flavor {
    Auto,
    Current,
    Multi,
}

/// `new_multi_thread().worker_threads(N)`, or `new_current_thread()` for
/// one thread (measured faster than one multi-thread worker).
fn runtime(threads: usize, flavor: Flavor) -> io::Result<tokio::runtime::Runtime> {
    match (flavor, threads) {
        (Flavor::Current, _) | (Flavor::Auto, 0 | 1) => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        _ => tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build(),
    }
}

async fn serve(args: Args) -> io::Result<()> {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        limits: ServerLimits { rate_per_sec: 0, history_len: 0, ..ServerLimits::default() },
        capacity: args.capacity.max(1),
        next_msg_id: AtomicU64::new(1),
        next_conn_id: AtomicU64::new(1),
        lag_events: AtomicU64::new(0),
        lagged_msgs: AtomicU64::new(0),
    });
    let listener = TcpListener::bind(args.listen).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    let accept_loop = async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, Arc::clone(&shared)));
                }
                Err(e) => accept_error(e).await,
            }
        }
    };
    let result = tokio::select! {
        () = accept_loop => Ok(()),
        r = shutdown_signal() => r,
    };
    eprintln!(
        "lag: {} events, {} messages skipped",
        shared.lag_events.load(Ordering::Relaxed),
        shared.lagged_msgs.load(Ordering::Relaxed)
    );
    result
}

// ---------------------------------------------------------------------------
// Shared state

struct Shared {
    state: Mutex<State>,
    limits: ServerLimits,
    capacity: usize,
    /// One global message id counter (protocol §9.1), starting at 1.
    next_msg_id: AtomicU64,
    next_conn_id: AtomicU64,
    lag_events: AtomicU64,
    lagged_msgs: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct State {
    nicks: HashSet<Arc<str>>,
    rooms: HashMap<Arc<str>, Room>,
}

struct Room {
    chan: Arc<RoomChan>,
    members: HashSet<Arc<str>>,
}

/// A room's broadcast channel. The mutex makes "take the next message id,
/// send" atomic, so that members see ids in increasing order (§9.4).
struct RoomChan {
    tx: Mutex<broadcast::Sender<Event>>,
}

impl RoomChan {
    fn sender(&self) -> MutexGuard<'_, broadcast::Sender<Event>> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What goes through a room's channel: a complete frame (length prefix
/// included), encoded once, and who caused it (not sent back to them).
#[derive(Clone)]
struct Event {
    from: u64,
    frame: Bytes,
}

// ---------------------------------------------------------------------------
// Codec: length-delimited frames in; replies (encoded straight into the write
// buffer) or shared pre-encoded frames out.

struct ChatCodec {
    frames: LengthDelimitedCodec,
}

enum Out {
    /// A reply or a connection-specific push, encoded with its prefix here.
    Frame(ServerFrame),
    /// A frame encoded once for every member, prefix included.
    Shared(Bytes),
}

impl Decoder for ChatCodec {
    type Item = BytesMut;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<BytesMut>> {
        self.frames.decode(src)
    }
}

impl Encoder<Out> for ChatCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> io::Result<()> {
        match item {
            Out::Frame(frame) => put_prefixed(dst, |b| frame.encode(b)),
            Out::Shared(bytes) => dst.extend_from_slice(&bytes),
        }
        Ok(())
    }
}

/// Appends a frame: a u32 length prefix, then what `encode` writes.
fn put_prefixed(dst: &mut BytesMut, encode: impl FnOnce(&mut BytesMut)) {
    let start = dst.len();
    dst.put_u32(0);
    encode(dst);
    let len = u32::try_from(dst.len() - start - 4).unwrap_or(u32::MAX);
    dst[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

fn prefixed(capacity: usize, encode: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + capacity);
    put_prefixed(&mut buf, encode);
    buf.freeze()
}

type Conn = Framed<TcpStream, ChatCodec>;

// ---------------------------------------------------------------------------
// Connection task

struct Session {
    id: u64,
    nick: Option<Arc<str>>,
    subs: Vec<Sub>,
    lagged: u64,
}

/// Membership of one room.
struct Sub {
    room: Arc<str>,
    chan: Arc<RoomChan>,
    rx: broadcast::Receiver<Event>,
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let max_payload = shared.limits.max_payload as usize;
    let codec =
        ChatCodec { frames: LengthDelimitedCodec::builder().max_frame_length(max_payload).new_codec() };
    let mut framed = Framed::new(stream, codec);
    let mut session = Session {
        id: shared.next_conn_id.fetch_add(1, Ordering::Relaxed),
        nick: None,
        subs: Vec::new(),
        lagged: 0,
    };
    let _ = run(&mut framed, &mut session, &shared).await;
    session.close(&shared);
}

async fn run(framed: &mut Conn, session: &mut Session, shared: &Shared) -> io::Result<()> {
    loop {
        tokio::select! {
            request = framed.next() => {
                let mut request = request;
                let mut handled = 0;
                // This request, then every other one already decodable.
                loop {
                    match request {
                        Some(Ok(payload)) => {
                            let (reply, flow) = session.handle(&payload, shared);
                            if let Some(reply) = reply {
                                framed.feed(Out::Frame(reply)).await?;
                            }
                            if flow.is_break() {
                                return framed.flush().await;
                            }
                        }
                        Some(Err(e)) => {
                            if e.kind() == io::ErrorKind::InvalidData {
                                // Over max_payload (the codec's only data error).
                                let push = Push::Error {
                                    code: ErrorCode::FrameTooLarge,
                                    message: format!("frame larger than {} bytes", shared.limits.max_payload),
                                };
                                framed.feed(Out::Frame(ServerFrame::Push(push))).await?;
                                framed.flush().await?;
                            }
                            return Err(e);
                        }
                        None => return framed.flush().await,
                    }
                    handled += 1;
                    if handled == BATCH {
                        break;
                    }
                    match poll_fn(|cx| Poll::Ready(framed.poll_next_unpin(cx))).await {
                        Poll::Ready(next) => request = next,
                        Poll::Pending => break,
                    }
                }
            }
            (i, event) = recv_any(&mut session.subs), if !session.subs.is_empty() => {
                session.deliver(i, event, framed, shared).await?;
            }
        }
        // Every push already waiting, then one write for the whole batch.
        session.drain_pushes(framed, shared).await?;
        framed.flush().await?;
    }
}

/// The next event of any room joined.
async fn recv_any(subs: &mut [Sub]) -> (usize, Result<Event, RecvError>) {
    if let [sub] = subs {
        return (0, sub.rx.recv().await);
    }
    let (event, i, _) = select_all(subs.iter_mut().map(|s| Box::pin(s.rx.recv()))).await;
    (i, event)
}

impl Session {
    async fn deliver(
        &mut self,
        i: usize,
        event: Result<Event, RecvError>,
        framed: &mut Conn,
        shared: &Shared,
    ) -> io::Result<()> {
        match event {
            Ok(event) => {
                if event.from != self.id {
                    framed.feed(Out::Shared(event.frame)).await?;
                }
            }
            Err(RecvError::Lagged(n)) => self.on_lag(i, n, shared),
            Err(RecvError::Closed) => {
                self.subs.swap_remove(i);
            }
        }
        Ok(())
    }

    async fn drain_pushes(&mut self, framed: &mut Conn, shared: &Shared) -> io::Result<()> {
        let mut i = 0;
        while i < self.subs.len() {
            let mut closed = false;
            for _ in 0..BATCH {
                match self.subs[i].rx.try_recv() {
                    Ok(event) => {
                        if event.from != self.id {
                            framed.feed(Out::Shared(event.frame)).await?;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(n)) => self.on_lag(i, n, shared),
                    Err(TryRecvError::Closed) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed {
                self.subs.swap_remove(i);
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// A lag is counted and reported; the receiver stays subscribed and
    /// resumes at the oldest message still in the channel.
    fn on_lag(&mut self, i: usize, skipped: u64, shared: &Shared) {
        shared.lag_events.fetch_add(1, Ordering::Relaxed);
        shared.lagged_msgs.fetch_add(skipped, Ordering::Relaxed);
        if self.lagged == 0 {
            eprintln!(
                "connection {} ({}) lagged in room {}: {skipped} messages skipped (reported once per connection)",
                self.id,
                self.nick.as_deref().unwrap_or("-"),
                self.subs[i].room
            );
        }
        self.lagged += skipped;
    }

    /// Handles one request payload: the reply to send (if any) and whether
    /// to close the connection after it.
    fn handle(&mut self, payload: &[u8], shared: &Shared) -> (Option<ServerFrame>, ControlFlow<()>) {
        let frame = match ClientFrameRef::decode(payload) {
            Ok(frame) => frame,
            Err(e) => {
                // UnsupportedVersion closes; so does an error without a
                // request id (a push: the stream is no longer trusted).
                let close = e.request_id.is_none() || e.code() == ErrorCode::UnsupportedVersion;
                let flow = if close { ControlFlow::Break(()) } else { ControlFlow::Continue(()) };
                return (Some(e.response()), flow);
            }
        };
        let id = frame.request_id;
        let reply = match (frame.request, &self.nick) {
            (RequestRef::Ping { nonce }, _) => ok(id, OkBody::Pong { nonce }),
            (RequestRef::Pong { .. }, _) => return (None, ControlFlow::Continue(())),
            (RequestRef::Login { nick, .. }, None) => self.login(id, nick, shared),
            (RequestRef::Login { .. }, Some(_)) => err(id, ErrorCode::AlreadyLoggedIn, "already logged in"),
            (_, None) => err(id, ErrorCode::NotLoggedIn, "log in first"),
            (RequestRef::Join { room }, Some(_)) => self.join(id, room, shared),
            (RequestRef::Leave { room }, Some(_)) => self.leave(id, room, shared),
            (RequestRef::Say { room, text }, Some(nick)) => {
                let nick = Arc::clone(nick);
                self.say(id, room, &nick, text, shared)
            }
            (RequestRef::Who { room }, Some(_)) => who(id, room, shared),
            (RequestRef::ListRooms, Some(_)) => list_rooms(id, shared),
            (RequestRef::Direct { .. }, Some(_)) => {
                err(id, ErrorCode::Internal, "Direct is not implemented by this baseline")
            }
        };
        (Some(reply), ControlFlow::Continue(()))
    }

    fn login(&mut self, id: u32, nick: &str, shared: &Shared) -> ServerFrame {
        let nick: Arc<str> = nick.into();
        if !shared.state().nicks.insert(Arc::clone(&nick)) {
            return err(id, ErrorCode::NicknameTaken, "nickname in use");
        }
        self.nick = Some(nick);
        ok(id, OkBody::Welcome(shared.limits))
    }

    fn join(&mut self, id: u32, room: &str, shared: &Shared) -> ServerFrame {
        let Some(nick) = self.nick.clone() else { return err(id, ErrorCode::NotLoggedIn, "log in first") };
        if self.subs.iter().any(|s| &*s.room == room) {
            return err(id, ErrorCode::AlreadyMember, "already a member");
        }
        if self.subs.len() >= shared.limits.max_rooms_per_user as usize {
            return err(id, ErrorCode::TooManyRooms, "too many rooms");
        }
        let mut state = shared.state();
        let room_entry = state.rooms.entry(room.into()).or_insert_with_key(|_| Room {
            chan: Arc::new(RoomChan { tx: Mutex::new(broadcast::channel(shared.capacity).0) }),
            members: HashSet::new(),
        });
        if room_entry.members.len() >= shared.limits.max_members_per_room as usize {
            return err(id, ErrorCode::RoomFull, "room is full");
        }
        room_entry.members.insert(Arc::clone(&nick));
        let members = u32::try_from(room_entry.members.len()).unwrap_or(u32::MAX);
        let chan = Arc::clone(&room_entry.chan);
        let room: Arc<str> = room.into();
        let rx = {
            let tx = chan.sender();
            let rx = tx.subscribe();
            let presence = PushRef::Presence { room: &room, nick: &nick, kind: PresenceKind::Joined };
            let _ = tx.send(Event {
                from: self.id,
                frame: prefixed(presence.encoded_len(), |b| presence.encode(b)),
            });
            rx
        };
        drop(state);
        self.subs.push(Sub { room, chan, rx });
        ok(id, OkBody::Joined { members, history: 0 })
    }

    fn leave(&mut self, id: u32, room: &str, shared: &Shared) -> ServerFrame {
        let Some(i) = self.subs.iter().position(|s| &*s.room == room) else {
            return not_member(id, room, shared);
        };
        let sub = self.subs.swap_remove(i);
        self.leave_room(&sub, shared);
        ok(id, OkBody::Empty)
    }

    /// Leaves a room: presence to the others, room dropped when empty.
    fn leave_room(&self, sub: &Sub, shared: &Shared) {
        let Some(nick) = &self.nick else { return };
        let mut state = shared.state();
        let Some(room) = state.rooms.get_mut(&sub.room) else { return };
        room.members.remove(nick);
        if room.members.is_empty() {
            state.rooms.remove(&sub.room);
        } else {
            let presence = PushRef::Presence { room: &sub.room, nick, kind: PresenceKind::Left };
            let frame = prefixed(presence.encoded_len(), |b| presence.encode(b));
            let _ = sub.chan.sender().send(Event { from: self.id, frame });
        }
    }

    fn say(&mut self, id: u32, room: &str, nick: &str, text: &str, shared: &Shared) -> ServerFrame {
        if text.len() > shared.limits.max_text_len() {
            return err(id, ErrorCode::TextTooLong, "text too long");
        }
        let Some(sub) = self.subs.iter().find(|s| &*s.room == room) else {
            return not_member(id, room, shared);
        };
        let ts_us = now_us();
        let tx = sub.chan.sender();
        let msg_id = shared.next_msg_id.fetch_add(1, Ordering::Relaxed);
        // Encoded once; every member's task gets a clone of the same Bytes.
        let frame = prefixed(2 + 16 + 2 + room.len() + nick.len() + text.len(), |b| {
            Push::encode_message(room, msg_id, ts_us, nick, text, false, b)
        });
        let _ = tx.send(Event { from: self.id, frame });
        drop(tx);
        ok(id, OkBody::Sent { id: msg_id, ts_us })
    }

    /// On disconnect: leave every room, free the nickname.
    fn close(&mut self, shared: &Shared) {
        for sub in std::mem::take(&mut self.subs) {
            self.leave_room(&sub, shared);
        }
        if let Some(nick) = self.nick.take() {
            shared.state().nicks.remove(&nick);
        }
    }
}

fn not_member(id: u32, room: &str, shared: &Shared) -> ServerFrame {
    if shared.state().rooms.contains_key(room) {
        err(id, ErrorCode::NotMember, "not a member of this room")
    } else {
        err(id, ErrorCode::UnknownRoom, "no such room")
    }
}

fn who(id: u32, room: &str, shared: &Shared) -> ServerFrame {
    let state = shared.state();
    let Some(room) = state.rooms.get(room) else { return err(id, ErrorCode::UnknownRoom, "no such room") };
    // Reply header 6 + list header 8; each entry 1 + name.
    let mut space = (shared.limits.max_payload as usize).saturating_sub(14);
    let nicks: Vec<String> = room
        .members
        .iter()
        .take_while(|n| {
            let fits = n.len() < space;
            space = space.saturating_sub(1 + n.len());
            fits
        })
        .map(|n| n.to_string())
        .collect();
    ok(id, OkBody::Members { total: u32::try_from(room.members.len()).unwrap_or(u32::MAX), nicks })
}

fn list_rooms(id: u32, shared: &Shared) -> ServerFrame {
    let state = shared.state();
    let fit = (shared.limits.max_payload as usize).saturating_sub(14) / (1 + MAX_NAME_LEN + 4);
    let rooms = state
        .rooms
        .iter()
        .take(fit)
        .map(|(name, r)| RoomInfo {
            name: name.to_string(),
            members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
        })
        .collect();
    ok(id, OkBody::Rooms { total: u32::try_from(state.rooms.len()).unwrap_or(u32::MAX), rooms })
}

fn ok(id: u32, body: OkBody) -> ServerFrame {
    ServerFrame::ok(id, body)
}

fn err(id: u32, code: ErrorCode, message: &str) -> ServerFrame {
    ServerFrame::error(id, code, message)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

// ---------------------------------------------------------------------------

/// Per-connection failures (reset or aborted before accept) do not delay
/// the next accept; anything else (EMFILE, ENFILE, ENOBUFS...) backs off
/// briefly instead of spinning.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if !matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        eprintln!("accept: {e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn shutdown_signal() -> io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
