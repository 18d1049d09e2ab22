//! Allocations per request on the hot path: keep-alive `GET /` with a short
//! text response, through the real reactor over loopback, counted by a
//! global allocator over every thread of this test binary.

use http1::{HttpConfig, HttpContext, HttpHandler, HttpService, Method, Outcome, Request, Response};
use reactor::{Reactor, ServiceConfig};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Hello;

impl HttpHandler for Hello {
    type Pending = ();
    fn on_request(&mut self, _cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<()> {
        match (req.method(), req.path()) {
            (Method::Get, "/") => Response::text(200, "Hello, World!").into(),
            _ => Response::not_found().into(),
        }
    }
}

const REQUEST: &[u8] =
    b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n";

/// Sends one request and reads its whole response into `buf`.
fn round_trip(stream: &mut TcpStream, buf: &mut [u8]) -> usize {
    stream.write_all(REQUEST).unwrap();
    let mut got = 0;
    loop {
        got += stream.read(&mut buf[got..]).unwrap();
        if buf[..got].ends_with(b"Hello, World!") {
            return got;
        }
        assert!(got > 0 && got < buf.len(), "unexpected response: {:?}", &buf[..got]);
    }
}

#[test]
fn keep_alive_get_allocates_no_more_than_the_reactor_does() {
    let reactor = Reactor::builder()
        .threads(1)
        .service(ServiceConfig::new("http"), "127.0.0.1:0", |_| {
            HttpService::new(HttpConfig::default(), Hello)
        })
        .build()
        .unwrap();
    let mut stream =
        TcpStream::connect(reactor.local_addr(reactor::ServiceId::from_index(0)).unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    // Warm up: buffers, pools and timers reach their steady state.
    for _ in 0..200 {
        round_trip(&mut stream, &mut buf);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    const N: u64 = 2000;
    for _ in 0..N {
        round_trip(&mut stream, &mut buf);
    }
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    eprintln!("{allocated} allocations for {N} keep-alive requests");
    // Neither the reactor (its lists, buffers and pools are kept from turn
    // to turn) nor the adapter (see the unit test `hot_path` in the crate)
    // allocates per request; a few may come from the loop growing a list
    // or the timer heap.
    assert!(allocated <= N / 100, "{allocated} allocations for {N} requests");
    drop(stream);
    reactor.shutdown(Duration::from_secs(5));
}
