//! Who is logged in, on which door: nicknames and HTTP sessions (the
//! I/O-free table is `identity.rs`; this is the driver around it, with
//! the cluster's nickname claims when there is one).

use super::*;

impl ChatCore {
    /// Claims a nickname for a connection (a login without a session):
    /// refused if anyone holds it, on any door.
    pub fn login(&self, nick: &str, id: ConnId) -> Result<Arc<str>, ErrorCode> {
        lock(&self.identity).claim(nick, id).map_err(|_| ErrorCode::NicknameTaken)
    }

    /// Logs the current connection in as `nick` with the session named by
    /// `credential`; the connection that spoke for the session until now is
    /// told and closed. `BadToken` if there is no such live session for
    /// `nick`.
    pub fn login_session(
        &self,
        cx: &mut Context<'_>,
        nick: &str,
        credential: &str,
    ) -> Result<Arc<str>, ErrorCode> {
        let attached = lock(&self.identity).attach(nick, &secret_hash(credential), cx.id(), now_ms());
        let (nick, displaced) = attached.map_err(|_| ErrorCode::BadToken)?;
        if let Some(old) = displaced {
            self.kick(&mut Waker::Context(cx), old, ErrorCode::NicknameTaken);
        }
        Ok(nick)
    }

    /// Releases a nickname (only if `id` still holds it; a session stays);
    /// in a cluster, the node's claim goes once nothing here holds it.
    pub fn logout(&self, nick: &str, id: ConnId) {
        let held = {
            let mut identity = lock(&self.identity);
            identity.release(nick, id, now_ms());
            identity.holds(nick)
        };
        if let (false, Some(c)) = (held, self.cluster()) {
            c.release(nick);
        }
    }

    /// In a cluster: gives back the node's claim on `nick` once nothing on
    /// this node holds it.
    pub(super) fn release_if_free(&self, nick: &str) {
        if let Some(c) = self.cluster() {
            if !lock(&self.identity).holds(nick) {
                c.release(nick);
            }
        }
    }

    /// Releases a nickname on this node only (a claim the cluster refused).
    pub(crate) fn logout_local(&self, nick: &str, id: ConnId) {
        lock(&self.identity).release(nick, id, now_ms());
    }

    /// Every nickname held on this node (connections and sessions), with
    /// the connection that speaks for it now, if any.
    pub(crate) fn local_users(&self) -> Vec<(Arc<str>, Option<ConnId>)> {
        let identity = lock(&self.identity);
        identity.nicks().map(|(n, _)| (n.clone(), identity.conn_of(n))).collect()
    }

    /// The connection a user is logged in on.
    pub fn user(&self, nick: &str) -> Option<ConnId> {
        lock(&self.identity).conn_of(nick)
    }

    /// Number of nicknames held (connections and sessions).
    pub fn user_count(&self) -> usize {
        lock(&self.identity).len()
    }

    /// Number of HTTP sessions open.
    pub fn session_count(&self) -> usize {
        lock(&self.identity).sessions()
    }

    /// Every nickname held, sorted, with whether a chat connection speaks
    /// for it now; at most `limit`, and the total.
    pub fn online(&self, limit: usize) -> (usize, Vec<(String, bool)>) {
        let id = lock(&self.identity);
        let mut all: Vec<(String, bool)> = id.nicks().map(|(n, live)| (n.to_string(), live)).collect();
        drop(id);
        all.sort();
        let total = all.len();
        all.truncate(limit);
        (total, all)
    }

    /// Whether a login attempt from `ip` may be checked now; `Err(ms)`: no,
    /// for that long. Failed attempts are counted with
    /// [`ChatCore::login_failed`].
    pub fn login_allowed(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
        lock(&self.logins).check(ip, now_ms())
    }

    /// Counts a failed login attempt (a wrong token) from `ip`.
    pub fn login_failed(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            let _ = lock(&self.logins).take(ip, now_ms());
        }
    }

    /// Opens an HTTP session for `nick` (`POST /session`): checks the rate
    /// from `ip` and the shared token, and returns the new credential.
    pub fn open_session(
        &self,
        nick: &str,
        token: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<(String, Arc<str>), SessionError> {
        if let Some(ip) = ip {
            lock(&self.logins).take(ip, now_ms()).map_err(SessionError::RateLimited)?;
        }
        if let Some(expected) = &self.settings().token {
            if token != Some(expected.as_str()) {
                return Err(SessionError::BadToken);
            }
        }
        let mut secret = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut secret) {
            log::error!("sessions: no random bytes from the system: {e}");
            return Err(SessionError::Full);
        }
        let credential: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let opened = lock(&self.identity).open_session(nick, secret_hash(&credential), now_ms());
        match opened {
            Ok(nick) => Ok((credential, nick)),
            Err(Refusal::Full) => Err(SessionError::Full),
            Err(_) => Err(SessionError::Taken),
        }
    }

    /// The nickname of the live session `credential` names, marking it used.
    pub fn authenticate(&self, credential: &str) -> Option<Arc<str>> {
        lock(&self.identity).authenticate(&secret_hash(credential), now_ms())
    }

    /// Logs a session out (its connection, if any, is told and closed).
    /// False if there was no such session.
    pub fn end_session(&self, cx: &mut Context<'_>, credential: &str) -> bool {
        let ended = lock(&self.identity).end_session(&secret_hash(credential));
        match ended {
            Some((nick, conn)) => {
                self.release_if_free(&nick);
                if let Some(conn) = conn {
                    self.kick(&mut Waker::Context(cx), conn, ErrorCode::BadToken);
                }
                true
            }
            None => false,
        }
    }

    /// Ends expired sessions (telling and closing their connections) and
    /// saves the table if it changed (from the ticker thread).
    pub(super) fn sweep_sessions(&self) {
        let ended = lock(&self.identity).sweep(now_ms());
        if !ended.is_empty() {
            let handle = self.delivery.handle();
            for (nick, conn) in ended {
                log::debug!("session of {nick} expired");
                self.release_if_free(&nick);
                if let Some(conn) = conn {
                    self.kick(&mut Waker::Handle(handle), conn, ErrorCode::BadToken);
                }
            }
        }
        self.save_sessions(false);
    }

    /// Writes the session table to its file if it changed (or `always`).
    pub(super) fn save_sessions(&self, always: bool) {
        let Some(path) = &self.sessions_file else { return };
        let saved = {
            let mut id = lock(&self.identity);
            if !id.take_dirty() && !always {
                return;
            }
            id.save()
        };
        if let Err(e) = crate::sessions_file::store(path, &saved) {
            log::error!("sessions: {e}");
        }
    }

    /// Tells connection `id` (on any loop) that it no longer speaks for
    /// its nickname: its session answers the notify with an error push
    /// `code` and closes (see [`KICK`]).
    pub(crate) fn kick(&self, waker: &mut Waker<'_, '_>, id: ConnId, code: ErrorCode) {
        self.delivery.notify(waker, id, KICK | u64::from(code.as_u16()));
    }
}
