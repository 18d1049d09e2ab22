//! The examples' ladder, run as a user would run them: each binary is
//! started on a free port and driven over loopback.

mod common;

use common::{Client, DEADLINE};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// A running example, killed if the test fails before it exits.
struct Example {
    child: Child,
    addr: SocketAddr,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Example {
    fn start(name: &str, args: &[&str]) -> Example {
        // cargo test builds the examples next to the test binaries.
        let mut path: PathBuf = std::env::current_exe().unwrap();
        path.pop();
        if path.ends_with("deps") {
            path.pop();
        }
        path.push("examples");
        path.push(name);
        let mut child = Command::new(&path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}")).parse().unwrap();
        Example { child, addr, stdout }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ask(c: &mut Client, cmd: &str) -> String {
    c.send(cmd.as_bytes());
    String::from_utf8(c.recv().unwrap()).unwrap()
}

#[test]
fn pubsub_shares_topics_across_loops_cleans_up_on_close_and_stops_on_sigterm() {
    let mut ex = Example::start("pubsub", &["--listen", "127.0.0.1:0", "--threads", "2"]);
    // Four subscribers: connections go round-robin to both loops.
    let mut subs: Vec<Client> = (0..4).map(|_| Client::connect(ex.addr)).collect();
    for s in &mut subs {
        assert_eq!(ask(s, "SUB news"), "OK");
    }
    let mut publisher = Client::connect(ex.addr);
    assert_eq!(ask(&mut publisher, "COUNT news"), "OK 4");
    assert_eq!(ask(&mut publisher, "PUB news hello world"), "OK");
    for s in &mut subs {
        assert_eq!(s.recv().unwrap(), b"MSG news hello world");
    }
    // A subscriber goes away: its close is decided when its EOF is read,
    // and on_close takes it out of the registry then.
    drop(subs.pop());
    let end = Instant::now() + DEADLINE;
    while ask(&mut publisher, "COUNT news") != "OK 3" {
        assert!(Instant::now() < end, "the closed subscriber stayed registered");
    }
    assert!(ask(&mut publisher, "PUB").starts_with("ERR"));
    // SIGTERM: every connection is told, flushed and closed; the process
    // exits by itself.
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(ex.child.id() as i32, libc::SIGTERM) }, 0);
    for s in subs.iter_mut().chain([&mut publisher]) {
        assert_eq!(s.recv().unwrap(), b"BYE server shutting down");
        assert!(s.closed_by_server());
    }
    let status = ex.child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    ex.stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest.trim(), "stopped");
}

/// A LOCO packet: the 18 bytes before the length, the length, the body.
fn packet(id: u32, method: &str, body: &[u8]) -> Vec<u8> {
    let mut p = id.to_le_bytes().to_vec();
    p.extend_from_slice(&0u16.to_le_bytes());
    let mut m = [0u8; 11];
    m[..method.len()].copy_from_slice(method.as_bytes());
    p.extend_from_slice(&m);
    p.push(0);
    p.extend_from_slice(&(body.len() as u32).to_le_bytes());
    p.extend_from_slice(body);
    p
}

/// Reads one packet: (id, status, method, body).
fn read_packet(s: &mut TcpStream) -> (u32, u16, String, Vec<u8>) {
    let mut h = [0u8; 22];
    s.read_exact(&mut h).unwrap();
    let id = u32::from_le_bytes(h[..4].try_into().unwrap());
    let status = u16::from_le_bytes(h[4..6].try_into().unwrap());
    let method = String::from_utf8(h[6..17].iter().copied().take_while(|&b| b != 0).collect()).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(h[18..22].try_into().unwrap()) as usize];
    s.read_exact(&mut body).unwrap();
    (id, status, method, body)
}

#[test]
fn loco_reads_and_writes_a_header_before_the_length() {
    let ex = Example::start("loco", &["--listen", "127.0.0.1:0", "--max-body", "1024"]);
    let connect = || {
        let s = TcpStream::connect(ex.addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s
    };
    let (mut sub, mut publisher) = (connect(), connect());
    sub.write_all(&packet(7, "SUB", b"t")).unwrap();
    assert_eq!(read_packet(&mut sub), (7, 0, "SUB".into(), vec![]));
    publisher.write_all(&packet(9, "PUB", b"t\0hello")).unwrap();
    assert_eq!(read_packet(&mut publisher), (9, 0, "PUB".into(), vec![]));
    assert_eq!(read_packet(&mut sub), (0, 0, "MSG".into(), b"t\0hello".to_vec()));
    publisher.write_all(&packet(11, "PING", b"abc")).unwrap();
    assert_eq!(read_packet(&mut publisher), (11, 0, "PING".into(), b"abc".to_vec()));
    // Over the limit: refused at its header, answered with its packet id.
    let mut huge = packet(42, "PUB", b"");
    huge[18..22].copy_from_slice(&(1u32 << 20).to_le_bytes());
    publisher.write_all(&huge).unwrap();
    let (id, status, method, _) = read_packet(&mut publisher);
    assert_eq!((id, status, method.as_str()), (42, 413, "ERR"));
    let mut rest = Vec::new();
    assert_eq!(publisher.read_to_end(&mut rest).unwrap(), 0, "closed after the error");
}
