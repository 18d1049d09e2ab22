//! Baseline: the strongest framed echo a tokio user would write.
//!
//! Same codec (`LengthDelimitedCodec`, 4-byte big-endian length prefix, max
//! frame 1 MiB) and the same task per connection as `tokio-echo-idiomatic`,
//! but replies are *fed* (queued in the `Framed` write buffer without a
//! flush) for every frame that is decodable without pending, and flushed
//! once when the next frame would have to wait for the socket. A client that
//! pipelines N frames in one segment gets its N replies in one `write`
//! instead of N.
//!
//! "Decodable without pending" covers both frames already in the read buffer
//! and bytes a non-blocking read can still return; the first `Pending` ends
//! the batch. Polling happens with the task's real waker (`poll_fn`), so the
//! `Pending` that ends a batch also arms the wake-up for the next one, and
//! tokio's short-read optimisation (a read that does not fill the buffer
//! clears readiness) makes that last poll free of syscalls in the common case.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Length-prefixed echo server: tokio + tokio-util `Framed`, one flush per batch of ready frames.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Initial capacity of each connection's read buffer, in bytes. `Framed`
    /// reads only into spare capacity, so with `Framed::new`'s 8 KiB a batch
    /// of large frames arrives in many small reads; 16 KiB matches
    /// mio-echo-bare's buffer.
    #[arg(long, default_value_t = 16 * 1024)]
    read_buffer: usize,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Runtime flavour: `auto` is current-thread for 1 thread (the faster
    /// one there, see the README), multi-thread otherwise.
    #[arg(long, value_enum, default_value_t = Flavor::Auto)]
    runtime: Flavor,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    runtime(args.threads, args.runtime)?.block_on(serve(args.listen, args.read_buffer))
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Flavor {
    Auto,
    Current,
    Multi,
}

/// `new_multi_thread().worker_threads(N)`, or `new_current_thread()` for
/// one thread (measured faster than one multi-thread worker).
fn runtime(threads: usize, flavor: Flavor) -> std::io::Result<tokio::runtime::Runtime> {
    match (flavor, threads) {
        (Flavor::Current, _) | (Flavor::Auto, 0 | 1) => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        }
        _ => tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).enable_all().build(),
    }
}

async fn serve(addr: SocketAddr, read_buffer: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    let accept_loop = async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(echo(stream, read_buffer));
                }
                Err(e) => accept_error(e).await,
            }
        }
    };
    tokio::select! {
        () = accept_loop => Ok(()),
        r = shutdown_signal() => r,
    }
}

async fn echo(stream: TcpStream, read_buffer: usize) {
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder().max_frame_length(1 << 20).new_codec();
    let mut framed = Framed::with_capacity(stream, codec, read_buffer);
    // `feed` still flushes by itself once this much is queued (default 8 KiB):
    // a larger boundary lets big pipelined batches leave in fewer writes while
    // keeping the per-connection output bounded.
    framed.set_backpressure_boundary(BACKPRESSURE_BOUNDARY);
    loop {
        // Wait (the only await that parks) for the first frame of a batch.
        let frame = match framed.next().await {
            Some(Ok(frame)) => frame,
            _ => return,
        };
        if framed.feed(frame.freeze()).await.is_err() {
            return;
        }
        // Feed every further frame that is ready now; stop at the first Pending.
        let open = loop {
            match poll_fn(|cx| Poll::Ready(framed.poll_next_unpin(cx))).await {
                Poll::Ready(Some(Ok(frame))) => {
                    if framed.feed(frame.freeze()).await.is_err() {
                        return;
                    }
                }
                Poll::Ready(_) => break false, // EOF or bad frame: flush, then close
                Poll::Pending => break true,
            }
        };
        // One write for the whole batch.
        if SinkExt::<Bytes>::flush(&mut framed).await.is_err() || !open {
            return;
        }
    }
}

const BACKPRESSURE_BOUNDARY: usize = 64 * 1024;

/// Per-connection failures (reset or aborted before accept) do not delay
/// the next accept; anything else (EMFILE, ENFILE, ENOBUFS...) backs off
/// briefly instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if !matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        eprintln!("accept: {e}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
