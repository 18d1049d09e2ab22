//! Baseline: framed echo the way most tokio users write it.
//!
//! `Framed<TcpStream, LengthDelimitedCodec>` (4-byte big-endian length
//! prefix, max frame 1 MiB), one task per connection, and
//! `framed.send(frame)` for every frame: `SinkExt::send` feeds *and flushes*,
//! so every echoed frame costs one `write` syscall even when the client
//! pipelines many frames in one segment.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Length-prefixed echo server: tokio + tokio-util `Framed`, one flush per frame.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
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
    runtime(args.threads, args.runtime)?.block_on(serve(args.listen))
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

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    let accept_loop = async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(echo(stream));
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

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let codec = LengthDelimitedCodec::builder().max_frame_length(1 << 20).new_codec();
    let mut framed = Framed::new(stream, codec);
    while let Some(Ok(frame)) = framed.next().await {
        if framed.send(frame.freeze()).await.is_err() {
            break;
        }
    }
}

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
