//! Allocations per frame on the framed hot path: pipelined echo through
//! the real reactor over loopback, counted by a global allocator over every
//! thread of this test binary. Frames are lent to the handler from the read
//! buffer and replies encoded into the connection's pooled output buffer,
//! so a frame costs no allocation.

use reactor::{Frame, FrameCodec, FramedContext, Handler, Reactor, Service, ServiceConfig, ServiceId};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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

struct Echo;

impl Handler for Echo {
    type Codec = FrameCodec;
    type Conn = ();
    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {}
    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        cx.send_frame(&frame).unwrap();
    }
}

/// Sends `depth` 64-byte frames in one write and reads their echoes.
fn round_trip(stream: &mut TcpStream, batch: &[u8], buf: &mut [u8]) {
    stream.write_all(batch).unwrap();
    stream.read_exact(&mut buf[..batch.len()]).unwrap();
    assert_eq!(&buf[..batch.len()], batch);
}

#[test]
fn pipelined_frames_allocate_nothing() {
    let reactor = Reactor::builder()
        .threads(1)
        .service(ServiceConfig::new("echo"), "127.0.0.1:0", |_| Service::new(FrameCodec::default(), Echo))
        .build()
        .unwrap();
    let mut stream = TcpStream::connect(reactor.local_addr(ServiceId::from_index(0)).unwrap()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.set_nodelay(true).unwrap();
    let depth = 16;
    let mut batch = Vec::new();
    for i in 0..depth {
        batch.extend_from_slice(&64u32.to_be_bytes());
        batch.extend_from_slice(&[i as u8; 64]);
    }
    let mut buf = vec![0u8; batch.len()];
    for _ in 0..200 {
        round_trip(&mut stream, &batch, &mut buf);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    const ROUNDS: u64 = 1000;
    for _ in 0..ROUNDS {
        round_trip(&mut stream, &batch, &mut buf);
    }
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let frames = ROUNDS * depth as u64;
    eprintln!("{allocated} allocations for {frames} frames");
    assert!(allocated <= frames / 1000, "{allocated} allocations for {frames} frames");
    drop(stream);
    reactor.shutdown(Duration::from_secs(5));
}
