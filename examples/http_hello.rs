//! The plaintext benchmark shape: `GET /` answers `Hello, World!` as
//! text/plain; anything else is a 404 (405 for `/` with another method).
//!
//! ```text
//! cargo run --release --example http_hello -- --listen 127.0.0.1:8080 --threads 1
//! curl -v http://127.0.0.1:8080/
//! wrk -t1 -c100 -d5s http://127.0.0.1:8080/
//! ```

use clap::Parser;
use std::net::SocketAddr;
use switchboard::http1::{
    HttpConfig, HttpContext, HttpHandler, HttpService, Method, Outcome, Request, Response,
};
use switchboard::reactor::{Reactor, ServiceConfig};

/// HTTP/1.1 hello-world server on the switchboard reactor.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Event-loop threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Most connections open at once.
    #[arg(long, default_value_t = 19_000)]
    max_connections: usize,
}

struct Hello;

impl HttpHandler for Hello {
    type Pending = ();

    fn on_request(&mut self, _cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<()> {
        match (req.method(), req.path()) {
            (Method::Get | Method::Head, "/") => Response::text(200, "Hello, World!").into(),
            (_, "/") => Response::method_not_allowed("GET, HEAD").into(),
            _ => Response::not_found().into(),
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let config = ServiceConfig { max_connections: args.max_connections, ..ServiceConfig::new("http") };
    let mut builder = Reactor::builder();
    if let Some(n) = args.threads {
        builder = builder.threads(n);
    }
    let reactor = match builder
        .service(config, args.listen, |_| HttpService::new(HttpConfig::default(), Hello))
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("http_hello: {e}");
            std::process::exit(1);
        }
    };
    log::info!("http_hello listening on {}", args.listen);
    reactor.join();
}
