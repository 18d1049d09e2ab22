//! The I/O-free hot path allocates nothing per request: parse a keep-alive
//! `GET /` from a reused read buffer, build a text response, encode it into
//! a reused output buffer. Counted per thread by a global allocator, so the
//! other unit tests running alongside do not disturb the count.

use crate::config::HttpConfig;
use crate::date::DateCache;
use crate::decoder::Decoder;
use crate::response::{encode, Persistence, Response};
use crate::Method;
use bytes::BytesMut;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

#[test]
fn get_with_a_short_response_allocates_nothing() {
    let config = HttpConfig::default();
    let mut decoder = Decoder::new();
    let mut date = DateCache::new();
    // As the reactor does: one read buffer for the loop, one output buffer.
    let mut input = BytesMut::with_capacity(64 << 10);
    let mut out = BytesMut::with_capacity(4096);
    let mut serve = |input: &mut BytesMut, out: &mut BytesMut| {
        input.extend_from_slice(REQUEST);
        let req = decoder.decode(input, &config).unwrap().unwrap();
        assert_eq!(
            (req.method(), req.path(), req.header("host")),
            (Method::Get, "/", Some("localhost:8080"))
        );
        let resp = Response::text(200, "Hello, World!");
        assert!(encode(&resp, false, Persistence::Default, date.get(Instant::now()), out).is_none());
        drop(req);
        out.clear();
        input.clear();
        input.reserve(64 << 10);
    };
    for _ in 0..10 {
        serve(&mut input, &mut out);
    }
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..1000 {
        serve(&mut input, &mut out);
    }
    // The date may be formatted again if a second passes: no allocation.
    assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0);
}
