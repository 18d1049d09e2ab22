//! A framed echo server on two listeners of one reactor: plain TCP and TLS
//! (the same handler and codec), for benchmarks of what TLS costs.
//!
//! ```text
//! cargo run --release -p tls --features test-cert --example tls_echo_server -- \
//!     --plain 127.0.0.1:9000 --tls 127.0.0.1:9443 --cert C --key K --threads 1
//! ```
//!
//! Without `--cert`/`--key` it makes a self-signed certificate for
//! localhost and writes it to `--write-cert DIR` (for the client to trust).

use clap::Parser;
use reactor::{Frame, FrameCodec, FramedContext, Handler, Reactor, Service, ServiceConfig};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tls::{CertStore, TlsStats, TlsTransport};

#[derive(Parser)]
struct Args {
    /// Plain listener.
    #[arg(long, default_value = "127.0.0.1:9000")]
    plain: SocketAddr,
    /// TLS listener.
    #[arg(long, default_value = "127.0.0.1:9443")]
    tls: SocketAddr,
    /// Certificate chain (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Where to write a generated certificate (without --cert/--key).
    #[arg(long, default_value = "/tmp/tls-echo")]
    write_cert: PathBuf,
    /// Event-loop threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Most connections per listener.
    #[arg(long, default_value_t = 19_000)]
    max_connections: usize,
}

struct Echo;

impl Handler for Echo {
    type Codec = FrameCodec;
    type Conn = ();
    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {}
    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        let _ = cx.send_frame(&frame);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    let (cert, key) = match (args.cert, args.key) {
        (Some(c), Some(k)) => (c, k),
        _ => {
            std::fs::create_dir_all(&args.write_cert)?;
            tls::test_cert::self_signed(&["localhost", "127.0.0.1"]).write(&args.write_cert, "echo")?
        }
    };
    let (certs, _) = CertStore::load(&cert, &key)?;
    let config = tls::server_config(certs, &[])?;
    let stats = Arc::new(TlsStats::default());
    let service = |name: &str| ServiceConfig {
        max_connections: args.max_connections,
        handshake_timeout: Some(Duration::from_secs(10)),
        ..ServiceConfig::new(name)
    };
    let reactor = Reactor::builder()
        .threads(args.threads)
        .service(service("plain"), args.plain, |_| Service::new(FrameCodec::default(), Echo))
        .service(service("tls"), args.tls, move |_| {
            Service::new(FrameCodec::default(), Echo)
                .with_transport(TlsTransport::new(config.clone(), stats.clone()))
        })
        .build()?;
    eprintln!("echo: plain {} tls {} (certificate {})", args.plain, args.tls, cert.display());
    reactor.join();
    Ok(())
}
