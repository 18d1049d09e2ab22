//! A framed echo server: every frame received is sent back unchanged.
//!
//! ```text
//! cargo run --release --example echo_server -- --listen 127.0.0.1:9000
//! ```

use clap::Parser;
use std::net::SocketAddr;
use switchboard::framing::FrameConfig;
use switchboard::reactor::{Frame, FrameCodec, FramedContext, Handler, Reactor, Service, ServiceConfig};

/// Framed echo server (4-byte big-endian length prefix).
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Event-loop threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Largest frame payload accepted, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_frame: usize,
    /// Most connections open at once.
    #[arg(long, default_value_t = 19_000)]
    max_connections: usize,
}

struct Echo;

impl Handler for Echo {
    type Codec = FrameCodec;
    type Conn = ();

    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {}

    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        // The frame came in under the same maximum, so it always fits.
        let _ = cx.send_frame(&frame);
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let frames = match FrameConfig::builder().max_frame_length(args.max_frame).build() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("echo_server: bad --max-frame: {e}");
            std::process::exit(2);
        }
    };
    let config = ServiceConfig { max_connections: args.max_connections, ..ServiceConfig::new("echo") };
    let mut builder = Reactor::builder();
    if let Some(n) = args.threads {
        builder = builder.threads(n);
    }
    let reactor = match builder
        .service(config, args.listen, move |_| Service::new(FrameCodec::new(frames), Echo))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echo_server: {e}");
            std::process::exit(1);
        }
    };
    log::info!("echo server listening on {}", args.listen);
    reactor.join();
}
