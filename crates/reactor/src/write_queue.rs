//! A connection's unsent output: shared `Bytes` segments plus a tail buffer
//! that small replies are encoded into, written with vectored writes.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

/// Most slices handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Free tail and read buffers kept by one loop, so that a connection owns
/// heap memory only while it has unsent output or an unfinished input frame,
/// without paying an allocation per reply.
pub(crate) struct BufferPool {
    free: Vec<BytesMut>,
    buffer_size: usize,
    max_free: usize,
}

impl BufferPool {
    pub(crate) fn new(buffer_size: usize, max_free: usize) -> BufferPool {
        BufferPool { free: Vec::new(), buffer_size, max_free }
    }

    pub(crate) fn take(&mut self) -> BytesMut {
        self.free.pop().unwrap_or_else(|| BytesMut::with_capacity(self.buffer_size))
    }

    pub(crate) fn give(&mut self, mut buf: BytesMut) {
        if self.free.len() >= self.max_free {
            return;
        }
        // Written-out bytes were advanced past, not freed: take the whole
        // buffer back (no allocation; fails if a sealed segment still
        // shares it, and then the buffer is just dropped).
        buf.clear();
        if buf.try_reclaim(self.buffer_size) {
            self.free.push(buf);
        }
    }
}

/// Output waiting to be written to one connection, in order.
///
/// `Bytes` pushed with [`WriteQueue::push`] are queued as they are (a
/// broadcast shares one buffer among all recipients); bytes written through
/// [`WriteQueue::tail`] are appended to a buffer the queue owns, so that many
/// small replies leave in one contiguous write.
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

    /// Queues a shared buffer without copying it.
    pub(crate) fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.seal_tail();
        self.len += data.len();
        self.segments.push_back(data);
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
        let mut pool = BufferPool::new(64, 4);
        let mut q = WriteQueue::default();
        let mut expected = Vec::new();
        for i in 0..200u32 {
            if i % 3 == 0 {
                let b = Bytes::from(vec![i as u8; (i % 17) as usize + 1]);
                expected.extend_from_slice(&b);
                q.push(b);
            } else {
                let v = vec![(i * 7) as u8; (i % 5) as usize + 1];
                expected.extend_from_slice(&v);
                q.append_with(&mut pool, |t| t.extend_from_slice(&v));
            }
        }
        assert_eq!(q.len(), expected.len());
        let mut w = Trickle { out: Vec::new(), per_call: 7, calls_left: 3 };
        let mut total = q.write_to(&mut w, &mut pool).unwrap();
        assert_eq!(total, 21, "stops at WouldBlock after three partial writes");
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
        let mut pool = BufferPool::new(4096, 4);
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
        let mut pool = BufferPool::new(64, 4);
        let mut q = WriteQueue::default();
        q.push(Bytes::from_static(b"abc"));
        assert_eq!(q.write_to(&mut Zero, &mut pool).unwrap_err().kind(), io::ErrorKind::WriteZero);
    }

    #[test]
    fn more_segments_than_iovecs() {
        let mut pool = BufferPool::new(64, 4);
        let mut q = WriteQueue::default();
        let mut expected = Vec::new();
        for i in 0..300u32 {
            let b = Bytes::from(vec![i as u8; 3]);
            expected.extend_from_slice(&b);
            q.push(b);
        }
        q.append_with(&mut pool, |t| t.extend_from_slice(b"end"));
        expected.extend_from_slice(b"end");
        let mut w = Trickle { out: Vec::new(), per_call: usize::MAX, calls_left: usize::MAX };
        q.write_to(&mut w, &mut pool).unwrap();
        assert_eq!(w.out, expected);
    }
}
