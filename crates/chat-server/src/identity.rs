//! Who holds which nickname, whatever the door: a chat connection (TCP or
//! WebSocket) that logged in with it, or an HTTP session. I/O-free: times
//! are passed in (unix milliseconds), secrets arrive hashed, and the
//! driver (`core/identity.rs`) does the sending, closing and saving. One table, so a
//! nickname is unique across every door; kept behind this small type so
//! that it can later live in a shared store for several nodes.
//!
//! A session is created by `POST /session` and named by a random secret
//! (its credential); only the secret's SHA-256 is kept. A chat connection
//! that logs in with the credential attaches to the session and speaks as
//! its nickname: one connection at a time (a newer one takes over, the
//! older is told and closed). A session ends when logged out, after
//! `idle_ms` without use (no request, no attached connection), or
//! `max_age_ms` after it was created.

use reactor::ConnId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// The SHA-256 of a session's secret.
pub type SecretHash = [u8; 32];

/// Bounds of the session table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Most sessions at once.
    pub max_sessions: usize,
    /// A session unused for this long ends.
    pub idle_ms: u64,
    /// A session ends this long after it was created, used or not.
    pub max_age_ms: u64,
}

/// Why a nickname or a session was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Another connection or session holds the nickname.
    Taken,
    /// The session table is full.
    Full,
    /// No live session has this secret (never had, logged out, expired),
    /// or it belongs to another nickname.
    NoSession,
}

/// An HTTP session.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    secret: SecretHash,
    created_ms: u64,
    last_used_ms: u64,
    /// The chat connection speaking for it now.
    conn: Option<ConnId>,
}

/// What holds a nickname.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Holder {
    /// A chat connection that logged in without a session.
    Connection(ConnId),
    /// An HTTP session.
    Session(Session),
}

/// A session as saved across restarts (without any connection).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SavedSession {
    /// The nickname.
    pub nick: String,
    /// Hex SHA-256 of the secret.
    pub secret_sha256: String,
    /// Creation time, unix ms.
    pub created_ms: u64,
    /// Last use, unix ms.
    pub last_used_ms: u64,
}

/// A session that ended, and the connection that spoke for it (to close).
pub type Ended = (Arc<str>, Option<ConnId>);

/// The nickname table. Not thread-safe by itself: the core keeps it under
/// a lock.
pub struct Identity {
    limits: SessionLimits,
    holders: HashMap<Arc<str>, Holder>,
    by_secret: HashMap<SecretHash, Arc<str>>,
    /// Changed since the last [`Identity::take_dirty`] (sessions only).
    dirty: bool,
}

fn expired(limits: &SessionLimits, s: &Session, now_ms: u64) -> bool {
    let idle = s.conn.is_none() && now_ms.saturating_sub(s.last_used_ms) >= limits.idle_ms;
    idle || now_ms.saturating_sub(s.created_ms) >= limits.max_age_ms
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<SecretHash> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Identity {
    /// An empty table.
    pub fn new(limits: SessionLimits) -> Identity {
        Identity { limits, holders: HashMap::new(), by_secret: HashMap::new(), dirty: false }
    }

    /// Applies new bounds (a reload); sessions over them end at the next sweep.
    pub fn set_limits(&mut self, limits: SessionLimits) {
        self.limits = limits;
    }

    fn expired(&self, s: &Session, now_ms: u64) -> bool {
        expired(&self.limits, s, now_ms)
    }

    /// A connection logs in as `nick` without a session.
    pub fn claim(&mut self, nick: &str, conn: ConnId) -> Result<Arc<str>, Refusal> {
        if self.holders.contains_key(nick) {
            return Err(Refusal::Taken);
        }
        let nick: Arc<str> = Arc::from(nick);
        self.holders.insert(nick.clone(), Holder::Connection(conn));
        Ok(nick)
    }

    /// Opens a session for `nick`, named by `secret`'s hash.
    pub fn open_session(&mut self, nick: &str, secret: SecretHash, now_ms: u64) -> Result<Arc<str>, Refusal> {
        if self.holders.contains_key(nick) {
            return Err(Refusal::Taken);
        }
        if self.by_secret.len() >= self.limits.max_sessions {
            return Err(Refusal::Full);
        }
        let nick: Arc<str> = Arc::from(nick);
        let s = Session { secret, created_ms: now_ms, last_used_ms: now_ms, conn: None };
        self.holders.insert(nick.clone(), Holder::Session(s));
        self.by_secret.insert(secret, nick.clone());
        self.dirty = true;
        Ok(nick)
    }

    fn session_mut(&mut self, secret: &SecretHash) -> Option<(&Arc<str>, &mut Session)> {
        let nick = self.by_secret.get(secret)?;
        match self.holders.get_mut(nick) {
            Some(Holder::Session(s)) => Some((nick, s)),
            _ => None,
        }
    }

    /// The nickname of the live session named by `secret`, marking it used.
    /// An expired session is no longer valid here already; the next
    /// [`Identity::sweep`] ends it.
    pub fn authenticate(&mut self, secret: &SecretHash, now_ms: u64) -> Option<Arc<str>> {
        let limits = self.limits;
        let (nick, s) = self.session_mut(secret)?;
        if expired(&limits, s, now_ms) {
            return None;
        }
        s.last_used_ms = now_ms;
        Some(nick.clone())
    }

    /// A chat connection logs in as `nick` with the session named by
    /// `secret`. Returns the connection that spoke for it until now (to be
    /// told and closed), if any.
    pub fn attach(
        &mut self,
        nick: &str,
        secret: &SecretHash,
        conn: ConnId,
        now_ms: u64,
    ) -> Result<(Arc<str>, Option<ConnId>), Refusal> {
        let found = self.authenticate(secret, now_ms).ok_or(Refusal::NoSession)?;
        if &*found != nick {
            return Err(Refusal::NoSession);
        }
        let Some((_, s)) = self.session_mut(secret) else { return Err(Refusal::NoSession) };
        let before = s.conn.replace(conn).filter(|&c| c != conn);
        Ok((found, before))
    }

    /// A chat connection that logged in as `nick` closed: a nickname it
    /// claimed is free again; a session it spoke for stays (used now).
    pub fn release(&mut self, nick: &str, conn: ConnId, now_ms: u64) {
        match self.holders.get_mut(nick) {
            Some(Holder::Connection(c)) if *c == conn => {
                self.holders.remove(nick);
            }
            Some(Holder::Session(s)) if s.conn == Some(conn) => {
                s.conn = None;
                s.last_used_ms = now_ms;
            }
            _ => {}
        }
    }

    fn end(&mut self, nick: &str) -> Option<Ended> {
        match self.holders.remove_entry(nick) {
            Some((nick, Holder::Session(s))) => {
                self.by_secret.remove(&s.secret);
                self.dirty = true;
                Some((nick, s.conn))
            }
            Some((nick, other)) => {
                self.holders.insert(nick, other);
                None
            }
            None => None,
        }
    }

    /// Logs a session out: its nickname is free again.
    pub fn end_session(&mut self, secret: &SecretHash) -> Option<Ended> {
        let nick = self.by_secret.get(secret)?.clone();
        self.end(&nick)
    }

    /// Ends every expired session; returns them.
    pub fn sweep(&mut self, now_ms: u64) -> Vec<Ended> {
        let expired: Vec<Arc<str>> = self
            .holders
            .iter()
            .filter_map(|(n, h)| match h {
                Holder::Session(s) if self.expired(s, now_ms) => Some(n.clone()),
                _ => None,
            })
            .collect();
        expired.iter().filter_map(|n| self.end(n)).collect()
    }

    /// True if a connection or a session holds `nick`.
    pub fn holds(&self, nick: &str) -> bool {
        self.holders.contains_key(nick)
    }

    /// The chat connection speaking as `nick`, if any.
    pub fn conn_of(&self, nick: &str) -> Option<ConnId> {
        match self.holders.get(nick)? {
            Holder::Connection(c) => Some(*c),
            Holder::Session(s) => s.conn,
        }
    }

    /// Every nickname held, with whether a chat connection speaks for it.
    pub fn nicks(&self) -> impl Iterator<Item = (&Arc<str>, bool)> {
        self.holders.iter().map(|(n, h)| {
            (n, matches!(h, Holder::Connection(_) | Holder::Session(Session { conn: Some(_), .. })))
        })
    }

    /// Nicknames held.
    pub fn len(&self) -> usize {
        self.holders.len()
    }

    /// True if no nickname is held.
    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }

    /// Sessions open.
    pub fn sessions(&self) -> usize {
        self.by_secret.len()
    }

    /// True (once) if sessions changed since the last call: time to save.
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// The sessions, to save.
    pub fn save(&self) -> Vec<SavedSession> {
        self.holders
            .iter()
            .filter_map(|(n, h)| match h {
                Holder::Session(s) => Some(SavedSession {
                    nick: n.to_string(),
                    secret_sha256: hex(&s.secret),
                    created_ms: s.created_ms,
                    last_used_ms: s.last_used_ms,
                }),
                _ => None,
            })
            .collect()
    }

    /// Takes back saved sessions (at start): expired ones, malformed ones
    /// and those over the bound are dropped. Returns how many came back.
    pub fn restore(&mut self, saved: Vec<SavedSession>, now_ms: u64) -> usize {
        let mut n = 0;
        for s in saved {
            let Some(secret) = unhex(&s.secret_sha256) else { continue };
            if crate::protocol::validate_name(&s.nick).is_err() || self.holders.contains_key(s.nick.as_str())
            {
                continue;
            }
            let session =
                Session { secret, created_ms: s.created_ms, last_used_ms: s.last_used_ms, conn: None };
            if self.expired(&session, now_ms) || self.by_secret.len() >= self.limits.max_sessions {
                continue;
            }
            let nick: Arc<str> = Arc::from(s.nick);
            self.by_secret.insert(secret, nick.clone());
            self.holders.insert(nick, Holder::Session(session));
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SessionLimits = SessionLimits { max_sessions: 2, idle_ms: 1_000, max_age_ms: 10_000 };

    fn conn(n: usize) -> ConnId {
        ConnId::from_u64(n as u64 + 1)
    }

    #[test]
    fn one_nickname_one_holder_whatever_the_door() {
        let mut t = Identity::new(LIMITS);
        t.claim("alice", conn(1)).unwrap();
        assert_eq!(t.claim("alice", conn(2)), Err(Refusal::Taken));
        assert_eq!(t.open_session("alice", [1; 32], 0), Err(Refusal::Taken));
        t.open_session("bob", [2; 32], 0).unwrap();
        assert_eq!(t.claim("bob", conn(3)), Err(Refusal::Taken));
        assert_eq!(t.open_session("bob", [3; 32], 0), Err(Refusal::Taken));
        t.release("alice", conn(2), 0); // not the holder: nothing changes
        assert_eq!(t.conn_of("alice"), Some(conn(1)));
        t.release("alice", conn(1), 0);
        assert_eq!(t.conn_of("alice"), None);
        t.claim("alice", conn(2)).unwrap();
    }

    #[test]
    fn a_session_is_used_by_its_secret_only_and_one_connection_at_a_time() {
        let mut t = Identity::new(LIMITS);
        t.open_session("bob", [2; 32], 0).unwrap();
        assert_eq!(t.authenticate(&[2; 32], 10).unwrap().as_ref(), "bob");
        assert!(t.authenticate(&[9; 32], 10).is_none());
        assert_eq!(t.attach("bob", &[9; 32], conn(1), 10), Err(Refusal::NoSession));
        assert_eq!(
            t.attach("carol", &[2; 32], conn(1), 10),
            Err(Refusal::NoSession),
            "another nick's secret"
        );
        assert_eq!(t.attach("bob", &[2; 32], conn(1), 10).unwrap().1, None);
        assert_eq!(t.attach("bob", &[2; 32], conn(2), 20).unwrap().1, Some(conn(1)), "the newer takes over");
        assert_eq!(t.conn_of("bob"), Some(conn(2)));
        t.release("bob", conn(1), 30); // the displaced one closing changes nothing
        assert_eq!(t.conn_of("bob"), Some(conn(2)));
        assert_eq!(t.end_session(&[2; 32]), Some((Arc::from("bob"), Some(conn(2)))));
        assert!(t.authenticate(&[2; 32], 40).is_none());
        t.claim("bob", conn(3)).unwrap();
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let mut t = Identity::new(LIMITS);
        t.open_session("a", [1; 32], 0).unwrap();
        t.open_session("b", [2; 32], 0).unwrap();
        assert_eq!(t.open_session("c", [3; 32], 0), Err(Refusal::Full));
        t.attach("b", &[2; 32], conn(1), 500).unwrap();
        // a: idle past 1 s; b: has a connection, so it is not idle.
        let ended = t.sweep(1_500);
        assert_eq!(ended, vec![(Arc::from("a"), None)]);
        assert!(t.authenticate(&[1; 32], 1_500).is_none());
        t.open_session("c", [3; 32], 1_500).unwrap();
        // Used sessions stay; the connection leaving marks the use.
        t.release("b", conn(1), 5_000);
        assert_eq!(t.sweep(5_900), vec![(Arc::from("c"), None)], "c idle since 1.5 s");
        assert_eq!(t.sweep(6_000), vec![(Arc::from("b"), None)], "b idle since 5 s");
        // Max age ends even a session in use.
        t.open_session("d", [4; 32], 6_000).unwrap();
        t.attach("d", &[4; 32], conn(2), 6_000).unwrap();
        assert_eq!(t.sweep(16_000), vec![(Arc::from("d"), Some(conn(2)))]);
        assert!(t.is_empty());
    }

    #[test]
    fn saved_sessions_come_back_without_their_connections() {
        let mut t = Identity::new(LIMITS);
        t.open_session("a", [1; 32], 0).unwrap();
        t.attach("a", &[1; 32], conn(1), 100).unwrap();
        t.claim("tcp", conn(2)).unwrap();
        assert!(t.take_dirty() && !t.take_dirty());
        let saved = t.save();
        assert_eq!(saved.len(), 1, "connections are not saved");
        let mut u = Identity::new(LIMITS);
        let mut bad = saved.clone();
        bad.push(SavedSession { nick: "x y".into(), ..saved[0].clone() });
        bad.push(SavedSession { nick: "z".into(), secret_sha256: "zz".into(), ..saved[0].clone() });
        assert_eq!(u.restore(bad, 200), 1);
        assert_eq!(u.conn_of("a"), None);
        assert_eq!(u.authenticate(&[1; 32], 300).unwrap().as_ref(), "a");
        let mut late = Identity::new(LIMITS);
        assert_eq!(late.restore(saved, 5_000), 0, "expired while the server was down");
    }
}
