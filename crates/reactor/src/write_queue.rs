//! A connection's unsent output: shared `Bytes` segments plus a tail buffer
//! that small replies are encoded into, written with vectored writes.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// Most slices handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Shared buffers up to this size are copied into the tail rather than
/// queued as segments of their own: a memcpy of a chat message costs less
/// than the reference count's atomic increment and decrement, and a
/// connection receiving many small broadcasts in one turn then writes one
/// contiguous buffer (the kernel's per-iovec copy was 15 % of a 1,000-member
/// room's server CPU when each message was its own slice).
pub(crate) const COPY_MAX: usize = 1024;

/// Capacity of a new tail buffer: a turn's replies to one connection
/// usually fit; it grows when they do not.
pub(crate) const POOL_BUFFER_SIZE: usize = 4 << 10;

/// Most bytes of free buffers one loop keeps.
pub(crate) const POOL_MAX_BYTES: usize = 8 << 20;

/// A pooled buffer that grew past this is dropped rather than kept.
const MAX_POOLED_CAPACITY: usize = 64 << 10;

/// Free tail buffers kept by one loop, so that a connection owns heap memory
/// only while it has unsent output, without paying an allocation per reply.
///
/// The pool holds as many buffers as were in use at once (a broadcast to a
/// thousand connections fills a thousand tails before the turn flushes
/// them), up to `max_free_bytes`: handing them back to the allocator each
/// turn made glibc grow and trim the heap every turn, and the page faults
/// cost 9 % of an echo server's CPU.
pub(crate) struct BufferPool {
    free: Vec<BytesMut>,
    free_bytes: usize,
    buffer_size: usize,
    max_free_bytes: usize,
}

impl BufferPool {
    pub(crate) fn new(buffer_size: usize, max_free_bytes: usize) -> BufferPool {
        BufferPool { free: Vec::new(), free_bytes: 0, buffer_size, max_free_bytes }
    }

    pub(crate) fn take(&mut self) -> BytesMut {
        match self.free.pop() {
            Some(buf) => {
                self.free_bytes -= buf.capacity();
                buf
            }
            None => BytesMut::with_capacity(self.buffer_size),
        }
    }

    pub(crate) fn give(&mut self, mut buf: BytesMut) {
        // Written-out bytes were advanced past, not freed: take the whole
        // buffer back (no allocation; fails if a sealed segment still
        // shares it, and then the buffer is just dropped).
        buf.clear();
        if !buf.try_reclaim(self.buffer_size) {
            return;
        }
        let cap = buf.capacity();
        if cap <= MAX_POOLED_CAPACITY && self.free_bytes + cap <= self.max_free_bytes {
            self.free_bytes += cap;
            self.free.push(buf);
        }
    }
}

/// Output waiting to be written to one connection, in order.
///
/// Large `Bytes` pushed with [`WriteQueue::push`] are queued as they are (a
/// broadcast shares one buffer among all recipients); small ones, and bytes
/// written through [`WriteQueue::append_with`], are appended to a tail buffer
/// the queue owns, so that many small replies leave in one contiguous write.
#[derive(Default)]
pub(crate) struct WriteQueue {
    segments: VecDeque<Bytes>,
    tail: BytesMut,
    len: usize,
}

impl WriteQueue {
    /// Bytes queued and not yet written.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a shared buffer: copied into the tail if it is small (see
    /// [`COPY_MAX`]), else shared without copying.
    pub(crate) fn push(&mut self, pool: &mut BufferPool, data: &Bytes) {
        if data.is_empty() {
            return;
        }
        if data.len() <= COPY_MAX {
            return self.append_with(pool, |tail| tail.extend_from_slice(data));
        }
        self.seal_tail();
        self.len += data.len();
        self.segments.push_back(data.clone());
    }

    /// Runs `f` on the tail buffer (taking one from `pool` if the queue has
    /// none); `f` must only append.
    pub(crate) fn append_with<R>(&mut self, pool: &mut BufferPool, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        if self.tail.capacity() == 0 {
            self.tail = pool.take();
        }
        let before = self.tail.len();
        let r = f(&mut self.tail);
        // `f` is meant to append; a truncation is still accounted right.
        self.len = (self.len + self.tail.len()).saturating_sub(before);
        r
    }

    /// Ends the tail as a segment, so that a segment pushed next goes after it.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            self.segments.push_back(self.tail.split().freeze());
        }
    }

    /// Writes as much as the socket takes. Returns the bytes written; stops
    /// at `WouldBlock` (returned as `Ok`) or when the queue is empty. When it
    /// empties, the queue's buffers go back to `pool` so that an idle
    /// connection holds no heap memory for output.
    pub(crate) fn write_to<W: Write>(&mut self, w: &mut W, pool: &mut BufferPool) -> io::Result<usize> {
        let mut written = 0;
        while self.len > 0 {
            if self.segments.is_empty() {
                // Only the tail (the usual case: replies encoded in place):
                // one plain write, no slice array to fill.
                match w.write(&self.tail) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.advance(n);
                        written += n;
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            let n = {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for seg in self.segments.iter().take(MAX_IOVECS - 1) {
                    slices[count] = IoSlice::new(seg);
                    count += 1;
                }
                // The tail goes last, so only after every segment is in.
                if self.segments.len() < MAX_IOVECS && !self.tail.is_empty() {
                    slices[count] = IoSlice::new(&self.tail);
                    count += 1;
                }
                let res = if count == 1 { w.write(&slices[0]) } else { w.write_vectored(&slices[..count]) };
                match res {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            self.advance(n);
            written += n;
        }
        if self.len == 0 {
            self.release(pool);
        }
        Ok(written)
    }

    /// The first queued chunk (empty if nothing is queued).
    pub(crate) fn front(&self) -> &[u8] {
        match self.segments.front() {
            Some(seg) => seg,
            None => &self.tail,
        }
    }

    /// Drops the first `n` queued bytes (a transport took them); the
    /// buffers go back to `pool` once the queue is empty.
    pub(crate) fn consume(&mut self, n: usize, pool: &mut BufferPool) {
        self.advance(n.min(self.len));
        if self.len == 0 {
            self.release(pool);
        }
    }

    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            match self.segments.front_mut() {
                Some(seg) if n >= seg.len() => {
                    n -= seg.len();
                    self.segments.pop_front();
                }
                Some(seg) => {
                    seg.advance(n);
                    return;
                }
                None => {
                    self.tail.advance(n);
                    return;
                }
            }
        }
    }

    /// Gives the buffers back (the queue must be empty).
    fn release(&mut self, pool: &mut BufferPool) {
        if self.segments.capacity() > 0 {
            self.segments = VecDeque::new();
        }
        if self.tail.capacity() > 0 {
            pool.give(std::mem::take(&mut self.tail));
        }
    }

    /// Drops everything queued (the connection is gone).
    pub(crate) fn clear(&mut self, pool: &mut BufferPool) {
        self.segments.clear();
        self.tail.clear();
        self.len = 0;
        self.release(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call and then blocks.
    struct Trickle {
        out: Vec<u8>,
        per_call: usize,
        calls_left: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let n = buf.len().min(self.per_call);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let mut left = self.per_call;
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(left);
                self.out.extend_from_slice(&b[..k]);
                left -= k;
                n += k;
                if left == 0 {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_order_across_segments_and_tail_with_partial_writes() {
        let mut pool = BufferPool::new(64, 1 << 20);
        let mut q = WriteQueue::default();
        let mut expected = Vec::new();
        for i in 0..200u32 {
            if i % 3 == 0 {
                // Small ones are copied into the tail, large ones shared.
                let len = if i % 2 == 0 { (i % 17) as usize + 1 } else { COPY_MAX + i as usize };
                let b = Bytes::from(vec![i as u8; len]);
                expected.extend_from_slice(&b);
                q.push(&mut pool, &b);
            } else {
                let v = vec![(i * 7) as u8; (i % 5) as usize + 1];
                expected.extend_from_slice(&v);
                q.append_with(&mut pool, |t| t.extend_from_slice(&v));
            }
        }
        assert_eq!(q.len(), expected.len());
        let mut w = Trickle { out: Vec::new(), per_call: 700, calls_left: 3 };
        let mut total = q.write_to(&mut w, &mut pool).unwrap();
        assert_eq!(total, 2100, "stops at WouldBlock after three partial writes");
        while !q.is_empty() {
            w.calls_left = 5;
            total += q.write_to(&mut w, &mut pool).unwrap();
        }
        assert_eq!(total, expected.len());
        assert_eq!(w.out, expected);
        assert_eq!(q.tail.capacity(), 0, "an empty queue holds no tail buffer");
        assert_eq!(q.segments.capacity(), 0, "an empty queue holds no segment ring");
    }

    #[test]
    fn pooled_buffers_come_back_whole_after_many_small_writes() {
        let mut pool = BufferPool::new(4096, 1 << 20);
        let mut q = WriteQueue::default();
        let mut sink = Trickle { out: Vec::new(), per_call: usize::MAX, calls_left: usize::MAX };
        for _ in 0..1000 {
            q.append_with(&mut pool, |t| t.extend_from_slice(&[7u8; 100]));
            q.write_to(&mut sink, &mut pool).unwrap();
            assert_eq!(pool.free.len(), 1, "the tail buffer went back to the pool");
            assert!(pool.free[0].capacity() >= 4096, "and whole: {}", pool.free[0].capacity());
        }
        assert_eq!(sink.out.len(), 100_000);
    }

    #[test]
    fn write_zero_is_an_error() {
        struct Zero;
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut pool = BufferPool::new(64, 1 << 20);
        let mut q = WriteQueue::default();
        q.push(&mut pool, &Bytes::from_static(b"abc"));
        assert_eq!(q.write_to(&mut Zero, &mut pool).unwrap_err().kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn more_segments_than_iovecs() {
        let mut pool = BufferPool::new(64, 1 << 20);
        let mut q = WriteQueue::default();
        let mut expected = Vec::new();
        for i in 0..300u32 {
            let b = Bytes::from(vec![i as u8; COPY_MAX + 1]);
            expected.extend_from_slice(&b);
            q.push(&mut pool, &b);
        }
        assert_eq!(q.segments.len(), 300);
        q.append_with(&mut pool, |t| t.extend_from_slice(b"end"));
        expected.extend_from_slice(b"end");
        let mut w = Trickle { out: Vec::new(), per_call: usize::MAX, calls_left: usize::MAX };
        q.write_to(&mut w, &mut pool).unwrap();
        assert_eq!(w.out, expected);
    }

    #[test]
    fn small_shared_buffers_are_copied_and_large_ones_shared() {
        let mut pool = BufferPool::new(4096, 1 << 20);
        let mut q = WriteQueue::default();
        let small = Bytes::from(vec![1u8; COPY_MAX]);
        let large = Bytes::from(vec![2u8; COPY_MAX + 1]);
        q.push(&mut pool, &small);
        q.push(&mut pool, &small);
        assert!(q.segments.is_empty(), "two small messages share the tail");
        assert_eq!(q.tail.len(), 2 * COPY_MAX);
        q.push(&mut pool, &large);
        assert_eq!(q.segments.len(), 2, "the tail was sealed before the large one");
        assert_eq!(q.segments[1].as_ptr(), large.as_ptr(), "the large one is shared, not copied");
        assert_eq!(q.len(), 3 * COPY_MAX + 1);
    }

    #[test]
    fn the_pool_keeps_what_was_in_use_at_once_up_to_its_byte_limit() {
        let mut pool = BufferPool::new(4096, 10 * 4096);
        let mut queues: Vec<WriteQueue> = (0..16).map(|_| WriteQueue::default()).collect();
        let mut sink = Trickle { out: Vec::new(), per_call: usize::MAX, calls_left: usize::MAX };
        for _ in 0..3 {
            for q in &mut queues {
                q.push(&mut pool, &Bytes::from_static(b"hello"));
            }
            for q in &mut queues {
                q.write_to(&mut sink, &mut pool).unwrap();
            }
            assert_eq!(pool.free.len(), 10, "kept up to the byte limit");
            assert_eq!(pool.free_bytes, pool.free.iter().map(BytesMut::capacity).sum::<usize>());
        }
        // A buffer that grew huge is not kept.
        let mut q = WriteQueue::default();
        let mut pool = BufferPool::new(4096, 1 << 30);
        q.append_with(&mut pool, |t| t.extend_from_slice(&vec![0u8; MAX_POOLED_CAPACITY * 2]));
        q.write_to(&mut sink, &mut pool).unwrap();
        assert!(pool.free.is_empty());
    }
}
