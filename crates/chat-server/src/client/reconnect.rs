//! Coming back after `GoingAway` or a dropped connection: when to try
//! again ([`Backoff`], [`RetrySchedule`], I/O-free), and one attempt to
//! connect, log in and join every room again ([`Reconnector`]).
//!
//! The schedule is kept apart from the blocking attempt so that an
//! interactive client can show a countdown and stay responsive while it
//! waits: it asks the schedule when to try, runs
//! [`Reconnector::connect`] on a thread of its own when the time comes,
//! and tells the schedule how it went. [`Reconnector::run`] does all of it
//! in a blocking loop, for programs without a user to keep informed.
//!
//! # Resume
//!
//! Each room to join again comes with the position of the last message
//! the client saw in it ([`Rejoin::position`]: the room log's epoch and
//! offset). The join sends it, and the server replays exactly the messages
//! after it ([`Joined::recovered`]), or, when it cannot (another epoch,
//! older than it keeps), the recent history with `recovered` false: the
//! caller then knows it has a gap.
//!
//! ```no_run
//! use std::time::Duration;
//! use chat_server::client::reconnect::{Backoff, Rejoin, Reconnector, RetrySchedule};
//!
//! let reconnector = Reconnector::new("127.0.0.1:7000", "alice", None, Duration::from_secs(5));
//! let first = reconnector.connect(&[Rejoin::new("lobby")])?;
//! # let _ = first;
//! // ... the connection drops ...
//! let backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
//! let mut schedule = RetrySchedule::new(backoff, Duration::from_secs(300));
//! let again = reconnector.run(&mut schedule, &[Rejoin::new("lobby")], None)?;
//! for room in &again.rooms {
//!     println!("{}: {:?}", room.room, room.result.as_ref().map(|j| j.members));
//! }
//! # Ok::<(), chat_server::client::ClientError>(())
//! ```

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use super::{ChatClient, ClientError, Joined, TlsClient};
use crate::protocol::{ErrorCode, Position, ServerLimits};

/// Exponential back-off with "equal jitter": the n-th delay in a row is
/// drawn uniformly from `[b/2, b]` where `b = min(max, initial * 2^n)`.
/// The jitter spreads the clients of a restarted server over time instead
/// of having them all knock at once; the lower half keeps a client from
/// retrying too eagerly by bad luck.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// Delays handed out since the last [`reset`](Self::reset).
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// A back-off starting around `initial` and growing up to `max`. A
    /// `max` below `initial` is raised to it.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff { initial, max: max.max(initial), failures: 0, rng: fastrand::Rng::new() }
    }

    /// The same back-off with a fixed random seed, for reproducible tests.
    pub fn with_seed(mut self, seed: u64) -> Backoff {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// The delay before the next attempt, and counts one more failure.
    ///
    /// `hint` is the server's suggestion (`GoingAway`'s `retry_after_ms`):
    /// the delay is then at least the hint, plus the usual jitter so that
    /// clients told the same hint do not come back at the same instant.
    pub fn next_delay(&mut self, hint: Option<Duration>) -> Duration {
        let doublings = self.failures.min(31);
        let base = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let half = base / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jittered = half + Duration::from_nanos(self.rng.u64(0..=nanos));
        hint.map_or(jittered, |hint| hint + jittered)
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Delays handed out since the last reset: the number of the attempt
    /// about to be made.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// When to try again, and when to stop trying: a [`Backoff`] and a time
/// limit counted from the loss of the connection. I/O-free: the caller
/// passes the time in.
#[derive(Debug, Clone)]
pub struct RetrySchedule {
    backoff: Backoff,
    give_up_after: Duration,
    /// When the connection was lost; `None` while connected.
    lost_at: Option<Instant>,
}

impl RetrySchedule {
    /// A schedule that keeps trying for `give_up_after` after a loss
    /// (`Duration::ZERO`: never reconnect).
    pub fn new(backoff: Backoff, give_up_after: Duration) -> RetrySchedule {
        RetrySchedule { backoff, give_up_after, lost_at: None }
    }

    /// The connection was lost, or an attempt failed, at `now`: when to
    /// make the next attempt, or `None` to give up. The first loss starts
    /// the clock; the last attempt is made at the deadline at the latest.
    pub fn next_attempt(&mut self, now: Instant, hint: Option<Duration>) -> Option<Instant> {
        let lost_at = *self.lost_at.get_or_insert(now);
        let deadline = lost_at.checked_add(self.give_up_after)?;
        if now >= deadline {
            return None;
        }
        let at = now.checked_add(self.backoff.next_delay(hint)).unwrap_or(deadline);
        Some(at.min(deadline))
    }

    /// An attempt succeeded: the next loss starts afresh.
    pub fn connected(&mut self) {
        self.lost_at = None;
        self.backoff.reset();
    }

    /// When the schedule gives up, while disconnected.
    pub fn deadline(&self) -> Option<Instant> {
        self.lost_at.and_then(|at| at.checked_add(self.give_up_after))
    }

    /// Attempts scheduled since the connection was lost.
    pub fn attempts(&self) -> u32 {
        self.backoff.failures()
    }

    /// How long the schedule keeps trying after a loss.
    pub fn give_up_after(&self) -> Duration {
        self.give_up_after
    }
}

/// A room to join again, and where the client was in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejoin {
    /// Room name.
    pub room: String,
    /// The position of the last message seen in it, if any: the join
    /// resumes from there.
    pub position: Option<Position>,
}

impl Rejoin {
    /// A room with nothing seen yet.
    pub fn new(room: impl Into<String>) -> Rejoin {
        Rejoin { room: room.into(), position: None }
    }
}

/// The outcome of joining one room again.
#[derive(Debug)]
pub struct RoomRejoined {
    /// Room name.
    pub room: String,
    /// The join: member count and history replayed (older messages the
    /// caller has seen included), or why the server refused it (e.g.
    /// [`ErrorCode::TooManyRooms`] after a configuration change).
    pub result: Result<Joined, ClientError>,
}

/// A fresh connection, logged in, with its rooms joined again.
pub struct Reconnected {
    /// The connection. Frames that arrived during the joins (messages of
    /// rooms joined first, presence) wait in its event queue.
    pub client: ChatClient,
    /// The limits announced at login.
    pub limits: ServerLimits,
    /// One entry per room asked for, in the same order.
    pub rooms: Vec<RoomRejoined>,
}

impl fmt::Debug for Reconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reconnected").field("client", &self.client).field("rooms", &self.rooms).finish()
    }
}

/// Connects, logs in and joins a list of rooms, again and again: what a
/// client needs to come back after a restart. Cheap to clone and `Send`,
/// so an attempt can run on a thread of its own.
#[derive(Debug, Clone)]
pub struct Reconnector {
    addr: String,
    nick: String,
    token: Option<String>,
    timeout: Duration,
    tls: Option<TlsClient>,
}

impl Reconnector {
    /// Attempts will connect to `addr` (`HOST:PORT`) and log in as `nick`
    /// with `token`, with `timeout` as in [`ChatClient::connect`].
    pub fn new(
        addr: impl Into<String>,
        nick: impl Into<String>,
        token: Option<String>,
        timeout: Duration,
    ) -> Self {
        Reconnector { addr: addr.into(), nick: nick.into(), token, timeout, tls: None }
    }

    /// Connects over TLS, as `tls` says.
    pub fn with_tls(mut self, tls: TlsClient) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The nickname.
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// One attempt: connect, log in, join each of `rooms` in order. Fails
    /// if the connection or the login fails, or if the connection breaks
    /// during the joins; a join the server refuses is reported in
    /// [`Reconnected::rooms`] and the others go on.
    pub fn connect(&self, rooms: &[Rejoin]) -> Result<Reconnected, ClientError> {
        let mut client = ChatClient::connect_with(self.addr.as_str(), self.timeout, self.tls.as_ref())?;
        let limits = client.login(&self.nick, self.token.as_deref())?;
        let mut rejoined = Vec::with_capacity(rooms.len());
        for rejoin in rooms {
            let result = match client.join_from(&rejoin.room, rejoin.position) {
                Err(e @ ClientError::Server { .. }) => Err(e),
                Err(e) => return Err(e),
                Ok(joined) => Ok(joined),
            };
            rejoined.push(RoomRejoined { room: rejoin.room.clone(), result });
        }
        Ok(Reconnected { client, limits, rooms: rejoined })
    }

    /// Tries [`connect`](Self::connect) on `schedule` until it succeeds,
    /// sleeping between attempts, starting after `hint` (`GoingAway`'s
    /// suggestion) if any. Returns the last error when the schedule gives
    /// up, or at once if the error is one that retrying cannot fix
    /// ([`is_permanent`]).
    pub fn run(
        &self,
        schedule: &mut RetrySchedule,
        rooms: &[Rejoin],
        hint: Option<Duration>,
    ) -> Result<Reconnected, ClientError> {
        let mut hint = hint;
        let mut last_error = ClientError::Closed;
        while let Some(at) = schedule.next_attempt(Instant::now(), hint.take()) {
            thread::sleep(at.saturating_duration_since(Instant::now()));
            match self.connect(rooms) {
                Ok(reconnected) => {
                    schedule.connected();
                    return Ok(reconnected);
                }
                Err(e) if is_permanent(&e) => return Err(e),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }
}

/// Whether retrying cannot fix `error`: the server refused the login for
/// a reason that will not change by itself (bad token, invalid nickname,
/// protocol version). A taken nickname is not permanent: after a restart
/// the old session may not be gone yet.
pub fn is_permanent(error: &ClientError) -> bool {
    matches!(
        error.code(),
        Some(
            ErrorCode::BadToken
                | ErrorCode::InvalidName
                | ErrorCode::UnsupportedVersion
                | ErrorCode::Malformed
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::server::ChatServer;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(100 * MS, 1000 * MS).with_seed(7);
        let bases = [100, 200, 400, 800, 1000, 1000, 1000];
        for base in bases {
            let d = b.next_delay(None);
            assert!(d >= base * MS / 2 && d <= base * MS, "{d:?} outside [{}, {base}] ms", base / 2);
        }
        assert_eq!(b.failures(), 7);
        b.reset();
        assert!(b.next_delay(None) <= 100 * MS);
    }

    #[test]
    fn backoff_jitter_spreads_clients() {
        let delays: Vec<_> =
            (0..50).map(|seed| Backoff::new(MS * 1000, MS * 1000).with_seed(seed).next_delay(None)).collect();
        let (min, max) = (delays.iter().min().unwrap(), delays.iter().max().unwrap());
        assert!(*max - *min > 200 * MS, "50 clients within {:?}", *max - *min);
    }

    #[test]
    fn backoff_waits_at_least_the_hint() {
        let mut b = Backoff::new(100 * MS, MS * 1000).with_seed(1);
        let d = b.next_delay(Some(2000 * MS));
        assert!(d >= 2050 * MS && d <= 2100 * MS, "{d:?}");
    }

    #[test]
    fn schedule_gives_up_after_the_limit_counted_from_the_loss() {
        let t0 = Instant::now();
        let backoff = Backoff::new(400 * MS, 400 * MS).with_seed(3);
        let mut s = RetrySchedule::new(backoff, 1000 * MS);
        let first = s.next_attempt(t0, None).unwrap();
        assert!(first >= t0 + 200 * MS && first <= t0 + 400 * MS);
        assert_eq!(s.deadline(), Some(t0 + 1000 * MS));
        // An attempt close to the deadline is moved to the deadline.
        assert_eq!(s.next_attempt(t0 + 900 * MS, None), Some(t0 + 1000 * MS));
        assert_eq!(s.next_attempt(t0 + 1000 * MS, None), None);
        // Connected again: the next loss has a full window and a short delay.
        s.connected();
        assert_eq!(s.deadline(), None);
        let t1 = t0 + 5000 * MS;
        assert!(s.next_attempt(t1, None).unwrap() <= t1 + 400 * MS);
        assert_eq!(s.attempts(), 1);
    }

    #[test]
    fn a_zero_window_never_reconnects() {
        let mut s = RetrySchedule::new(Backoff::new(MS, MS), Duration::ZERO);
        assert_eq!(s.next_attempt(Instant::now(), None), None);
    }

    #[test]
    fn permanent_errors() {
        let server = |code| ClientError::Server { code, message: String::new() };
        assert!(is_permanent(&server(ErrorCode::BadToken)));
        assert!(!is_permanent(&server(ErrorCode::NicknameTaken)));
        assert!(!is_permanent(&server(ErrorCode::ServerFull)));
        assert!(!is_permanent(&ClientError::Closed));
    }

    fn start_server(addr: &str) -> ChatServer {
        let mut c = Config::builtin();
        c.threads = 1;
        c.shutdown_grace_ms = 200;
        c.chat.listen = vec![addr.into()];
        c.http.listen = vec![];
        c.chat.rate_per_sec = 0;
        c.store.data_dir = "none".into();
        ChatServer::start(c).unwrap()
    }

    #[test]
    fn reconnector_logs_in_and_rejoins_every_room_across_a_restart() {
        let server = start_server("127.0.0.1:0");
        let addr = server.local_addrs()[0].to_string();
        let alice = Reconnector::new(addr.as_str(), "alice", None, Duration::from_secs(5));
        let rooms = [Rejoin::new("lobby"), Rejoin::new("rust")];
        let mut first = alice.connect(&rooms).unwrap();
        let epoch = first.rooms[0].result.as_ref().unwrap().epoch;
        let sent = first.client.say("lobby", "before the restart").unwrap();
        let seen = Position { epoch, offset: sent.offset };
        let rooms = [Rejoin { room: "lobby".into(), position: Some(seen) }, Rejoin::new("rust")];

        // Messages posted while alice is away come back exactly, nothing else.
        drop(first);
        let mut bob = ChatClient::connect(addr.as_str(), Duration::from_secs(5)).unwrap();
        bob.login("bob0", None).unwrap();
        bob.join("lobby").unwrap();
        let missed = bob.say("lobby", "while you were away").unwrap();
        drop(bob);
        let mut schedule = RetrySchedule::new(Backoff::new(10 * MS, 50 * MS), Duration::from_secs(5));
        let again = alice.run(&mut schedule, &rooms, None).unwrap();
        let names: Vec<_> = again.rooms.iter().map(|r| r.room.as_str()).collect();
        assert_eq!(names, ["lobby", "rust"]);
        let lobby = again.rooms[0].result.as_ref().unwrap();
        assert!(lobby.recovered);
        let history: Vec<u64> = lobby.history.iter().map(|m| m.offset).collect();
        assert_eq!(history, [missed.offset], "exactly what was missed");

        // A restart on the same port: the rejoin recreates the rooms.
        drop(again);
        server.shutdown();
        let bob = Reconnector::new(addr.as_str(), "bob", None, Duration::from_secs(5));
        let mut schedule = RetrySchedule::new(Backoff::new(20 * MS, 100 * MS), Duration::from_secs(5));
        let restarter = thread::spawn(move || {
            thread::sleep(150 * MS);
            start_server(&addr)
        });
        let back = bob.run(&mut schedule, &rooms, None).unwrap();
        assert!(schedule.attempts() == 0, "reset after success");
        for room in &back.rooms {
            assert_eq!(room.result.as_ref().unwrap().members, 1, "{room:?}");
        }
        drop(back);
        restarter.join().unwrap().shutdown();
    }

    #[test]
    fn a_refused_join_is_reported_and_the_others_go_on() {
        let server = start_server("127.0.0.1:0");
        let addr = server.local_addrs()[0].to_string();
        let r = Reconnector::new(addr, "carol", None, Duration::from_secs(5));
        let rooms = [Rejoin::new("ok"), Rejoin::new("bad name"), Rejoin::new("ok2")];
        let back = r.connect(&rooms).unwrap();
        assert!(back.rooms[0].result.is_ok());
        assert_eq!(back.rooms[1].result.as_ref().unwrap_err().code(), Some(ErrorCode::InvalidName));
        assert!(back.rooms[2].result.is_ok());
        drop(back);
        server.shutdown();
    }

    #[test]
    fn run_stops_at_once_on_a_permanent_error() {
        let mut c = Config::builtin();
        c.threads = 1;
        c.chat.listen = vec!["127.0.0.1:0".into()];
        c.http.listen = vec![];
        c.chat.token = "secret".into();
        c.store.data_dir = "none".into();
        let server = ChatServer::start(c).unwrap();
        let addr = server.local_addrs()[0].to_string();
        let r = Reconnector::new(addr, "dave", Some("wrong".into()), Duration::from_secs(5));
        let mut schedule = RetrySchedule::new(Backoff::new(10 * MS, 10 * MS), Duration::from_secs(60));
        let started = Instant::now();
        let err = r.run(&mut schedule, &[], None).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BadToken));
        assert!(started.elapsed() < Duration::from_secs(5));
        server.shutdown();
    }
}
