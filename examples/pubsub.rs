//! Step two of the ladder: a pub/sub server. What `echo_server` lacks and
//! a real server needs:
//!
//! - **state shared across loops**: a topic registry behind an `Arc`, which
//!   every loop's handler clones (each loop has its own handler value);
//! - **messages to other connections**, on any loop, by [`ConnId`]: a
//!   publish is one `broadcast`, and each subscriber's codec frames it;
//! - **cleanup on close**: `on_close` runs as soon as a connection's close
//!   is decided, so no publish addresses it after that;
//! - **graceful shutdown on signals**: SIGINT or SIGTERM tells every
//!   subscriber goodbye, flushes, and exits.
//!
//! Frames are the default layout (4-byte big-endian length); each carries a
//! text command: `SUB topic`, `UNSUB topic`, `PUB topic text`, `COUNT
//! topic`. Replies: `OK` (`OK n` to `COUNT`: the topic's subscribers), or
//! `ERR why`; a publish reaches every subscriber (the publisher included, if
//! subscribed) as `MSG topic text`.
//!
//! ```text
//! cargo run --example pubsub -- --listen 127.0.0.1:9100
//! ```

use bytes::Bytes;
use clap::Parser;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use switchboard::reactor::{
    CloseReason, ConnId, Context, Frame, FrameCodec, FramedContext, Handler, Reactor, Service, ServiceConfig,
    ServiceId,
};

/// Pub/sub over length-prefixed frames.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0: any; the address is printed).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Event-loop threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Most topics one connection may subscribe to.
    #[arg(long, default_value_t = 64)]
    max_topics: usize,
}

/// Who listens to what, for every loop.
#[derive(Default)]
struct Registry {
    topics: HashMap<String, Vec<ConnId>>,
}

/// One loop's handler: a clone of the shared registry.
#[derive(Clone)]
struct PubSub {
    registry: Arc<Mutex<Registry>>,
    max_topics: usize,
}

/// A connection's own state: its topics, to clean up on close.
#[derive(Default)]
struct Subscriber {
    topics: Vec<String>,
}

impl PubSub {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A handler that panicked while holding the lock closed only its own
        // connection; the registry is still consistent.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unsubscribe(&self, id: ConnId, topic: &str) {
        let mut reg = self.registry();
        if let Some(ids) = reg.topics.get_mut(topic) {
            ids.retain(|&i| i != id);
            if ids.is_empty() {
                reg.topics.remove(topic);
            }
        }
    }

    fn command(
        &self,
        cx: &mut FramedContext<'_, '_>,
        sub: &mut Subscriber,
        line: &str,
    ) -> Result<String, String> {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "SUB" if !rest.is_empty() && !rest.contains(' ') => {
                if sub.topics.iter().any(|t| t == rest) {
                    return Ok("OK".into());
                }
                if sub.topics.len() >= self.max_topics {
                    return Err(format!("at most {} topics", self.max_topics));
                }
                sub.topics.push(rest.to_string());
                self.registry().topics.entry(rest.to_string()).or_default().push(cx.id());
                Ok("OK".into())
            }
            "UNSUB" => {
                sub.topics.retain(|t| t != rest);
                self.unsubscribe(cx.id(), rest);
                Ok("OK".into())
            }
            "COUNT" => Ok(format!("OK {}", self.registry().topics.get(rest).map_or(0, Vec::len))),
            "PUB" => {
                let (topic, text) = rest.split_once(' ').ok_or("PUB topic text")?;
                // Copy the ids out: never send while holding the lock.
                let ids = self.registry().topics.get(topic).cloned().unwrap_or_default();
                cx.broadcast(&ids, &Bytes::from(format!("MSG {topic} {text}")));
                Ok("OK".into())
            }
            _ => Err(format!("unknown command {verb:?}")),
        }
    }
}

impl Handler for PubSub {
    type Codec = FrameCodec;
    type Conn = Subscriber;

    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) -> Subscriber {
        Subscriber::default()
    }

    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, sub: &mut Subscriber, frame: Frame<'_>) {
        let reply = match std::str::from_utf8(&frame) {
            Ok(line) => self.command(cx, sub, line),
            Err(_) => Err("not UTF-8".into()),
        };
        let reply = reply.unwrap_or_else(|why| format!("ERR {why}"));
        // The frame limit is the codec's: a short reply always fits.
        let _ = cx.send_frame(reply.as_bytes());
    }

    fn on_shutdown(&mut self, cx: &mut FramedContext<'_, '_>, _sub: &mut Subscriber) {
        let _ = cx.send_frame(b"BYE server shutting down");
    }

    fn on_close(&mut self, cx: &mut Context<'_>, sub: Subscriber, reason: &CloseReason) {
        for topic in &sub.topics {
            self.unsubscribe(cx.id(), topic);
        }
        log::debug!("{} left ({reason}), {} topics dropped", cx.id(), sub.topics.len());
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let handler = PubSub { registry: Arc::default(), max_topics: args.max_topics };
    let reactor = Reactor::builder()
        .threads(args.threads)
        .service(ServiceConfig::new("pubsub"), args.listen, move |_loop| {
            Service::new(FrameCodec::default(), handler.clone())
        })
        .build();
    let reactor = match reactor {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pubsub: {e}");
            std::process::exit(1);
        }
    };
    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pubsub: cannot handle signals: {e}");
            std::process::exit(1);
        }
    };
    if let Some(addr) = reactor.local_addr(ServiceId::from_index(0)) {
        println!("listening on {addr}");
    }
    // The handle is safe from any thread: this one waits for a signal.
    let handle = reactor.handle();
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            log::info!("signal {signal}: shutting down");
            handle.shutdown(Duration::from_secs(5));
        }
    });
    reactor.join();
    println!("stopped");
}
