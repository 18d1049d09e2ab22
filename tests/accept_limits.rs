//! Accepting with no descriptors left: RLIMIT_NOFILE is lowered and the
//! free descriptors are used up, so that the server's `accept()` fails with
//! EMFILE while clients keep connecting into the backlog. The acceptor must
//! back off instead of spinning, close the connection at the head of the
//! backlog rather than leave it hanging, go on serving open connections,
//! and accept everything left once descriptors are free again.
//!
//! A test binary of its own: the limit applies to the whole process, so no
//! other test may run beside this one.

mod common;

use common::{init_logs, wait_until, Client};
use socket2::{Domain, Socket, Type};
use std::fs::File;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};
use switchboard::framing::FrameConfig;
use switchboard::reactor::{
    Frame, FrameCodec, FramedContext, Handler, Reactor, ReactorHandle, Service, ServiceConfig, ServiceId,
};

/// Connections queued while descriptors are out: more than the acceptor
/// takes per readiness event (256), so that resuming after the back-off must
/// come back for the rest by itself.
const PENDING: usize = 300;
/// How long the server runs out of descriptors while we watch it.
const WINDOW: Duration = Duration::from_secs(1);
/// Each failed accept pauses the listener (10 ms doubling to 1 s), so a few
/// seconds allow about a dozen failures; a loop that spins on EMFILE makes
/// hundreds of thousands.
const MAX_ACCEPT_ERRORS: u64 = 40;

struct Echo;

impl Handler for Echo {
    type Codec = FrameCodec;
    type Conn = ();
    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {}
    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        cx.send_frame(&frame).unwrap();
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("list /proc/self/fd").count()
}

fn nofile() -> libc::rlimit {
    let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0, "getrlimit");
    r
}

fn set_nofile(r: libc::rlimit) {
    // SAFETY: setrlimit only reads the struct.
    assert_eq!(
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) },
        0,
        "setrlimit: {}",
        io::Error::last_os_error()
    );
}

/// User plus system CPU time of the whole process (every thread). Uses no
/// descriptor, unlike reading /proc/self/stat.
fn cpu_time() -> Duration {
    // SAFETY: a zeroed rusage is a valid value for getrusage to overwrite.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Leaves the process with no free descriptor: a low soft limit, and every
/// descriptor under it taken. Undone on drop, so a failing assertion does
/// not leave the process crippled.
struct Exhausted {
    original: libc::rlimit,
    fillers: Vec<File>,
}

impl Exhausted {
    fn new() -> Exhausted {
        let original = nofile();
        // A little headroom over what is open, then fill it: holes in the
        // descriptor table below the limit would otherwise stay usable.
        let limit = (open_fds() + 32) as libc::rlim_t;
        assert!(limit <= original.rlim_max, "hard limit {} too low for this test", original.rlim_max);
        set_nofile(libc::rlimit { rlim_cur: limit, rlim_max: original.rlim_max });
        let mut fillers = Vec::new();
        for _ in 0..limit {
            match File::open("/dev/null") {
                Ok(f) => fillers.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "filling descriptors: {e}");
                    return Exhausted { original, fillers };
                }
            }
        }
        panic!("descriptors did not run out under a limit of {limit}");
    }

    fn release(&mut self) {
        // Limit first: that ends the shortage in one step. Dropping the
        // fillers first would free a few descriptors under the low limit,
        // and a retry in between could fail again part-way through.
        set_nofile(self.original);
        self.fillers.clear();
    }
}

impl Drop for Exhausted {
    fn drop(&mut self) {
        self.release();
    }
}

/// True if the peer closed (EOF or reset); false if the read timed out.
fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected {n} bytes from a connection that sent nothing"),
        Err(e) => !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
    }
}

fn errors(h: &ReactorHandle) -> u64 {
    h.stats(ServiceId::from_index(0)).expect("service 0").accept_errors
}

#[test]
fn emfile_backs_off_sheds_the_head_and_keeps_the_listener() {
    init_logs();
    let test_started = Instant::now();
    let reactor = Reactor::builder()
        .threads(1)
        .service(ServiceConfig::new("echo"), "127.0.0.1:0", |_| {
            Service::new(FrameCodec::new(FrameConfig::default()), Echo)
        })
        .build()
        .expect("start reactor");
    let addr = reactor.local_addr(ServiceId::from_index(0)).unwrap();
    let h = reactor.handle();
    let mut early = Client::connect(addr);
    early.send(b"before");
    assert_eq!(early.recv().unwrap(), b"before");

    // Client sockets are made while descriptors are free: connect() needs
    // none, so clients still reach the backlog once the server has none.
    let sockets: Vec<Socket> =
        (0..PENDING).map(|_| Socket::new(Domain::IPV4, Type::STREAM, None).unwrap()).collect();
    let mut exhausted = Exhausted::new();
    assert_eq!(File::open("/dev/null").unwrap_err().raw_os_error(), Some(libc::EMFILE));

    let mut clients: Vec<Client> = sockets
        .into_iter()
        .map(|s| {
            s.connect(&addr.into()).expect("connect into the backlog");
            let stream: TcpStream = s.into();
            stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            stream.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
            Client { stream }
        })
        .collect();
    wait_until("the first accept error", || errors(&h) >= 1);

    // The head of the backlog is accepted on the spare descriptor and closed.
    assert!(closed(&mut clients[0].stream), "the connection at the head of the backlog was left hanging");
    // Connections accepted before go on being served.
    early.send(b"during");
    assert_eq!(early.recv().unwrap(), b"during");

    let (errors_before, cpu_before, started) = (errors(&h), cpu_time(), Instant::now());
    thread::sleep(WINDOW);
    let (errors_after, cpu_after, elapsed) = (errors(&h), cpu_time(), started.elapsed());
    let cpu_share = (cpu_after - cpu_before).as_secs_f64() / elapsed.as_secs_f64();
    assert!(
        errors_after > errors_before,
        "accepts were not retried in {elapsed:?} (errors {errors_before} -> {errors_after})"
    );
    assert!(errors_after <= MAX_ACCEPT_ERRORS, "{errors_after} accept errors: the acceptor spins on EMFILE");
    assert!(cpu_share < 0.5, "the process used {:.0}% of a core while out of descriptors", cpu_share * 100.0);
    assert_eq!(
        h.stats(ServiceId::from_index(0)).unwrap().accepted,
        1,
        "nothing can have been accepted without descriptors"
    );
    eprintln!(
        "out of descriptors: {errors_after} accept errors so far, {} in {elapsed:?}, CPU {:.1}% of a core",
        errors_after - errors_before,
        cpu_share * 100.0
    );

    exhausted.release();
    // Each failed accept shed one queued connection; the next retry (at most
    // one back-off, 1 s, away) must take every other one, though no new
    // connection arrives to make the listener readable again.
    let resume_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = h.stats(ServiceId::from_index(0)).unwrap();
        if s.accepted + s.accept_errors == 1 + PENDING as u64 {
            break;
        }
        assert!(
            Instant::now() < resume_deadline,
            "after descriptors came back only {} of {PENDING} queued connections were accepted \
             ({} shed); the rest are stranded in the backlog",
            s.accepted - 1,
            s.accept_errors
        );
        thread::sleep(Duration::from_millis(10));
    }
    let shed = errors(&h) as usize;
    assert!(shed < PENDING);
    // The backlog is first in, first out: the shed ones are its head.
    for (i, c) in clients.iter_mut().enumerate() {
        if i < shed {
            assert!(closed(&mut c.stream), "client {i} should have been shed");
        } else {
            let payload = format!("client {i}");
            c.send(payload.as_bytes());
            assert_eq!(c.recv().unwrap(), payload.as_bytes(), "client {i}");
        }
    }
    // The listener survived: a new connection is accepted and served.
    let mut late = Client::connect(addr);
    late.send(b"after");
    assert_eq!(late.recv().unwrap(), b"after");
    assert_eq!(errors(&h) as usize, shed, "no accept errors once descriptors are back");
    drop(clients);
    reactor.shutdown(Duration::from_secs(5));
    assert!(test_started.elapsed() < Duration::from_secs(15), "took {:?}", test_started.elapsed());
}
