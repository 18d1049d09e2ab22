//! What an idle TLS session keeps on the heap, server side, counted by a
//! global allocator: a regression guard for bytes per idle connection
//! (docs/BENCHMARKS.md has the whole server's figure).
//!
//! Client and server run in memory on one thread; only allocations made
//! inside server-side calls are counted, so the client's own memory does not
//! show. After the handshake and the tickets, and one message each way,
//! what the server still holds is the session's idle cost.

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use tls::test_cert;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is passed to the system allocator unchanged; the
// counter is only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counting() {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` with the server's allocations counted.
fn server<R>(f: impl FnOnce() -> R) -> R {
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    r
}

/// Moves everything either side has to say to the other until both are quiet.
fn pump(client: &mut ClientConnection, srv: &mut ServerConnection) {
    loop {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let to_server = !wire.is_empty();
        if to_server {
            server(|| {
                let mut rest = &wire[..];
                while !rest.is_empty() {
                    srv.read_tls(&mut rest).unwrap();
                    srv.process_new_packets().unwrap();
                }
            });
        }
        let mut back = Vec::new();
        server(|| {
            while srv.wants_write() {
                srv.write_tls(&mut back).unwrap();
            }
        });
        if !back.is_empty() {
            let mut rest = &back[..];
            while !rest.is_empty() {
                client.read_tls(&mut rest).unwrap();
                client.process_new_packets().unwrap();
            }
        }
        if !to_server && back.is_empty() {
            return;
        }
    }
}

#[test]
fn an_idle_session_keeps_little_on_the_heap() {
    let cert = test_cert::self_signed(&["localhost"]);
    let dir = std::env::temp_dir().join(format!("tls-idle-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_file, key_file) = cert.write(&dir, "server").unwrap();
    let (certs, _) = tls::CertStore::load(&cert_file, &key_file).unwrap();
    let config = tls::server_config(certs, &[]).unwrap();
    let client_config = cert.client_config(&[]);

    const SESSIONS: usize = 50;
    let mut held = Vec::new();
    // The first session warms shared state (provider, ticketer) up.
    for i in 0..=SESSIONS {
        let before = LIVE.load(Ordering::Relaxed);
        let mut srv = server(|| Box::new(ServerConnection::new(config.clone()).unwrap()));
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = ClientConnection::new(client_config.clone(), name).unwrap();
        pump(&mut client, &mut srv);
        assert!(!srv.is_handshaking() && !client.is_handshaking());
        // One message each way, read to the end.
        client.writer().write_all(b"hello").unwrap();
        pump(&mut client, &mut srv);
        let mut got = [0u8; 5];
        server(|| srv.reader().read_exact(&mut got)).unwrap();
        server(|| srv.writer().write_all(b"world")).unwrap();
        pump(&mut client, &mut srv);
        let mut reply = [0u8; 5];
        client.reader().read_exact(&mut reply).unwrap();
        assert_eq!((&got, &reply), (b"hello", b"world"));
        if i > 0 {
            held.push(LIVE.load(Ordering::Relaxed) - before);
        }
        std::mem::forget(client); // keep the client's frees out of the count
        std::mem::forget(srv); // and the session alive
    }
    held.sort_unstable();
    let median = held[held.len() / 2];
    eprintln!(
        "server heap per idle TLS session: {median} bytes (min {}, max {})",
        held[0],
        held[held.len() - 1]
    );
    // rustls' 4 KiB receive buffer is most of it (the buffered API keeps
    // it); the rest is the boxed session, the keys and the TLS 1.3 state.
    assert!(median >= 4096, "the receive buffer was released? {median}");
    assert!(median <= 9 * 1024, "an idle session grew to {median} bytes");
    let _ = std::fs::remove_dir_all(dir);
}
