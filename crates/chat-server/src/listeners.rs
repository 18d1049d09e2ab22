//! Listening sockets: bound from the config, or inherited — from a previous
//! process of this server during a binary upgrade (named in one environment
//! variable, as nginx does), or from systemd socket activation
//! (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`).

use socket2::{SockRef, Type};
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

/// Names the listeners a predecessor hands over: `service:fd;service:fd`.
pub const LISTENERS_ENV: &str = "CHAT_SERVER_LISTENERS";
/// systemd's first passed descriptor.
const SD_LISTEN_FDS_START: RawFd = 3;

/// Which service a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceKind {
    /// The chat protocol.
    Chat,
    /// The chat over HTTP.
    Http,
    /// The chat protocol over TLS.
    ChatTls,
    /// The chat over HTTPS.
    HttpTls,
}

impl ServiceKind {
    /// The name used in environment variables and systemd FileDescriptorName=.
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Chat => "chat",
            ServiceKind::Http => "http",
            ServiceKind::ChatTls => "chat-tls",
            ServiceKind::HttpTls => "http-tls",
        }
    }

    /// True for the kinds that speak TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, ServiceKind::ChatTls | ServiceKind::HttpTls)
    }

    fn from_name(name: &str) -> Option<ServiceKind> {
        match name {
            "chat" => Some(ServiceKind::Chat),
            "http" => Some(ServiceKind::Http),
            "chat-tls" => Some(ServiceKind::ChatTls),
            "http-tls" => Some(ServiceKind::HttpTls),
            _ => None,
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A listening socket and the service it is for.
#[derive(Debug)]
pub struct BoundListener {
    /// The service.
    pub kind: ServiceKind,
    /// The socket.
    pub listener: TcpListener,
}

impl BoundListener {
    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }
}

/// The value of [`LISTENERS_ENV`] for these listeners.
pub fn to_env(listeners: &[BoundListener]) -> String {
    listeners.iter().map(|l| format!("{}:{}", l.kind, l.listener.as_raw_fd())).collect::<Vec<_>>().join(";")
}

/// Takes ownership of an inherited descriptor after checking that it is a
/// listening stream socket; makes it non-blocking and close-on-exec.
fn adopt(fd: RawFd) -> Result<TcpListener, String> {
    // SAFETY: the descriptor was passed to this process for it to own; it is
    // used nowhere else. A wrong one is caught by the checks below.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    let sock = SockRef::from(&listener);
    match sock.r#type() {
        Ok(t) if t == Type::STREAM => {}
        Ok(_) => return Err(format!("descriptor {fd} is not a stream socket")),
        Err(e) => return Err(format!("descriptor {fd} is not a socket: {e}")),
    }
    if listener.local_addr().is_err() {
        return Err(format!("descriptor {fd} is not a TCP socket"));
    }
    sock.set_nonblocking(true).map_err(|e| format!("descriptor {fd}: {e}"))?;
    sock.set_cloexec(true).map_err(|e| format!("descriptor {fd}: {e}"))?;
    Ok(listener)
}

/// Parses `service:fd;service:fd` (`,` and `:`-less bare fds, taken as
/// chat, are accepted too).
fn parse_listeners(value: &str) -> Result<Vec<(ServiceKind, RawFd)>, String> {
    let mut out = Vec::new();
    for item in value.split([';', ',']).map(str::trim).filter(|s| !s.is_empty()) {
        let (kind, fd) = match item.split_once(':') {
            Some((name, fd)) => (
                ServiceKind::from_name(name)
                    .ok_or_else(|| format!("unknown service {name:?} in {item:?}"))?,
                fd,
            ),
            None => (ServiceKind::Chat, item),
        };
        let fd: RawFd = fd.parse().map_err(|_| format!("bad descriptor number in {item:?}"))?;
        if fd < 3 {
            return Err(format!("descriptor {fd} in {item:?} is a standard stream"));
        }
        out.push((kind, fd));
    }
    Ok(out)
}

/// Listeners this process was given, if any: from a predecessor
/// ([`LISTENERS_ENV`]) or from systemd. Clears the variables so that
/// children do not inherit them. Call before starting any thread.
pub fn inherited() -> Result<Vec<BoundListener>, String> {
    if let Ok(value) = std::env::var(LISTENERS_ENV) {
        std::env::remove_var(LISTENERS_ENV);
        let mut out = Vec::new();
        for (kind, fd) in parse_listeners(&value).map_err(|e| format!("{LISTENERS_ENV}: {e}"))? {
            out.push(BoundListener {
                kind,
                listener: adopt(fd).map_err(|e| format!("{LISTENERS_ENV}: {e}"))?,
            });
        }
        return Ok(out);
    }
    systemd()
}

fn systemd() -> Result<Vec<BoundListener>, String> {
    let fds = std::env::var("LISTEN_FDS").ok();
    let pid = std::env::var("LISTEN_PID").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    for var in ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let Some(fds) = fds else { return Ok(Vec::new()) };
    // The descriptors are for us only if LISTEN_PID names us (sd_listen_fds(3)).
    if pid.and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id()) {
        return Ok(Vec::new());
    }
    let count: RawFd = fds.parse().map_err(|_| format!("LISTEN_FDS: {fds:?} is not a number"))?;
    let names: Vec<String> = names.map(|n| n.split(':').map(str::to_string).collect()).unwrap_or_default();
    let mut out = Vec::new();
    for i in 0..count {
        let fd = SD_LISTEN_FDS_START + i;
        // Sockets are identified by name when named (order across socket
        // units is not defined); unnamed or "unknown" ones serve chat.
        let kind = match names.get(i as usize).map(String::as_str) {
            None | Some("") | Some("unknown") => ServiceKind::Chat,
            Some(name) => ServiceKind::from_name(name)
                .ok_or_else(|| format!("LISTEN_FDNAMES: no service named {name:?} (descriptor {fd})"))?,
        };
        out.push(BoundListener { kind, listener: adopt(fd).map_err(|e| format!("systemd: {e}"))? });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_handover_list() {
        assert_eq!(
            parse_listeners("chat:3;chat:7").unwrap(),
            vec![(ServiceKind::Chat, 3), (ServiceKind::Chat, 7)]
        );
        assert_eq!(parse_listeners("5,6").unwrap(), vec![(ServiceKind::Chat, 5), (ServiceKind::Chat, 6)]);
        assert!(parse_listeners("chat:x").unwrap_err().contains("bad descriptor"));
        assert!(parse_listeners("smtp:4").unwrap_err().contains("unknown service"));
        assert_eq!(parse_listeners("http:9").unwrap(), vec![(ServiceKind::Http, 9)]);
        assert_eq!(
            parse_listeners("chat-tls:4;http-tls:5").unwrap(),
            vec![(ServiceKind::ChatTls, 4), (ServiceKind::HttpTls, 5)]
        );
        assert!(parse_listeners("chat:1").unwrap_err().contains("standard stream"));
    }

    #[test]
    fn a_passed_listener_is_adopted_and_a_non_socket_refused() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(l);
        let adopted = adopt(fd).unwrap();
        assert_eq!(adopted.local_addr().unwrap(), addr);
        let file = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        assert!(adopt(fd).unwrap_err().contains("not a socket"));
    }
}
