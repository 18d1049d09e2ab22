//! Opening client connections: non-blocking connects, optionally from
//! source addresses spread over 127.0.0.0/8 so that one source address's
//! ephemeral ports do not cap the number of connections.

use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Most source addresses: 127.0.0.2 to 127.0.0.250.
pub const MAX_SOURCES: usize = 249;
const FIRST_SOURCE: usize = 2;

/// Where the connections go and where they come from.
#[derive(Clone, Debug)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// More addresses of the same service (the nodes of a cluster):
    /// connection i goes to the (i mod n)-th of `addr` and these.
    pub also: Vec<SocketAddr>,
    /// Source addresses to cycle over (127.0.0.2 upwards); 0 lets the
    /// kernel choose.
    pub sources: usize,
}

impl Target {
    /// Checks that spreading sources makes sense for this server address.
    pub fn validate(&self) -> Result<(), String> {
        if self.sources > MAX_SOURCES {
            return Err(format!("--sources is at most {MAX_SOURCES} (127.0.0.2 to 127.0.0.250)"));
        }
        for addr in std::iter::once(&self.addr).chain(&self.also) {
            if self.sources > 0 && !matches!(addr.ip(), IpAddr::V4(ip) if ip.is_loopback()) {
                return Err(format!(
                    "source addresses are spread over 127.0.0.0/8, which cannot reach {addr}; pass --sources 0"
                ));
            }
        }
        Ok(())
    }

    /// The source address of connection `i`, if sources are spread.
    pub fn source_for(&self, i: usize) -> Option<SocketAddr> {
        if self.sources == 0 {
            return None;
        }
        let last = (FIRST_SOURCE + i % self.sources) as u8;
        Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0))
    }

    /// The server address of connection `i`: round robin over `addr` and
    /// `also`.
    pub fn addr_for(&self, i: usize) -> SocketAddr {
        match i % (self.also.len() + 1) {
            0 => self.addr,
            n => self.also[n - 1],
        }
    }

    /// Starts a non-blocking connect for connection `i`. It completes when
    /// the stream polls writable; then [`connect_result`] tells how.
    pub fn start_connect(&self, i: usize) -> io::Result<mio::net::TcpStream> {
        let addr = self.addr_for(i);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        if let Some(source) = self.source_for(i) {
            socket.bind(&source.into())?;
        }
        match socket.connect(&addr.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        Ok(mio::net::TcpStream::from_std(socket.into()))
    }
}

/// After a writable (or error) event on a connecting stream: `Ok(true)` if
/// connected, `Ok(false)` if not yet (a spurious wake-up), or the error.
pub fn connect_result(stream: &mio::net::TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_cycle_over_loopback() {
        let t = Target { addr: "127.0.0.1:9000".parse().unwrap(), also: vec![], sources: 3 };
        let ips: Vec<String> = (0..4).map(|i| t.source_for(i).unwrap().ip().to_string()).collect();
        assert_eq!(ips, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2"]);
        let full = Target { sources: MAX_SOURCES, ..t.clone() };
        assert_eq!(full.source_for(MAX_SOURCES - 1).unwrap().ip().to_string(), "127.0.0.250");
        assert!(Target { sources: 0, ..t.clone() }.source_for(5).is_none());
    }

    #[test]
    fn spreading_needs_a_loopback_server() {
        let ok = Target { addr: "127.0.0.1:1".parse().unwrap(), also: vec![], sources: 10 };
        assert!(ok.validate().is_ok());
        assert!(Target { addr: "10.0.0.1:1".parse().unwrap(), ..ok.clone() }.validate().is_err());
        assert!(Target { addr: "10.0.0.1:1".parse().unwrap(), also: vec![], sources: 0 }.validate().is_ok());
        assert!(Target { sources: MAX_SOURCES + 1, ..ok }.validate().is_err());
    }

    #[test]
    fn connections_spread_round_robin_over_the_nodes() {
        let a: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let one = Target { addr: a, also: vec![], sources: 0 };
        assert!((0..4).all(|i| one.addr_for(i) == a));
        let two = Target { addr: a, also: vec![b], sources: 0 };
        assert_eq!((0..4).map(|i| two.addr_for(i)).collect::<Vec<_>>(), [a, b, a, b]);
        let far = Target { addr: a, also: vec!["10.0.0.1:1".parse().unwrap()], sources: 3 };
        assert!(far.validate().is_err(), "every address is checked");
    }
}
