//! Baseline: HTTP/1.1 "Hello, World!" on hyper 1.x, as hyper's own examples
//! write it (hyper-util `TokioIo`, `http1::Builder`, a task per connection).
//!
//! Same routes as the project's `examples/http_hello.rs`: `GET /` (and
//! `HEAD /`) answers `200 OK`, `content-type: text/plain`,
//! `content-length: 13`, body `Hello, World!`; another method on `/` gets
//! `405` with `allow: GET, HEAD`; any other path `404`, empty body. hyper
//! adds `date`. Keep-alive is on (hyper's default, set explicitly) and
//! `pipeline_flush(true)` aggregates the responses to pipelined requests
//! into one write. No timer is installed, as in hyper's examples, so there
//! is no header-read timeout.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// HTTP/1.1 hello-world server on hyper 1.x.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Runtime flavour: `auto` is current-thread for 1 thread (the faster
    /// one there, see the README), multi-thread otherwise.
    #[arg(long, value_enum, default_value_t = Flavor::Auto)]
    runtime: Flavor,
}

static BODY: &[u8] = b"Hello, World!";

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::new()));
    match (req.method(), req.uri().path()) {
        // hyper drops the body of a HEAD response itself, keeping the length.
        (&Method::GET | &Method::HEAD, "/") => {
            *res.body_mut() = Full::new(Bytes::from_static(BODY));
            res.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        }
        (_, "/") => {
            *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            res.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        _ => *res.status_mut() = StatusCode::NOT_FOUND,
    }
    Ok(res)
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
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let io = TokioIo::new(stream);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .pipeline_flush(true)
                    .serve_connection(io, service_fn(hello))
                    .await;
            });
        }
    };
    tokio::select! {
        () = accept_loop => Ok(()),
        r = shutdown_signal() => r,
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
