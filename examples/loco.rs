//! Step three of the ladder: a protocol whose header comes before its
//! length field. LOCO-style packets: a 22-byte little-endian header
//!
//! ```text
//! offset  0  packet id     u32   echoed in the reply
//!         4  status        u16   0 = ok
//!         6  method        11 bytes, ASCII, NUL-padded: SUB, PUB, PING, MSG, ERR
//!        17  body type     u8
//!        18  body length   u32   bytes after the header
//!        22  body
//! ```
//!
//! The frame codec reads the length at offset 18 and hands the handler
//! whole packets (`strip(0)`): [`Frame::header`] is the 22-byte header,
//! [`Frame::body`] what follows. To send, a handler gives the message
//! without the length field (the 18 bytes before it, then the body) and the
//! codec puts the length in; a message that cannot be a packet is refused,
//! never sent half. A bad packet (over the size limit) is answered with an
//! `ERR` that echoes its packet id, from the header the codec passes to
//! `on_decode_error`.
//!
//! `SUB` takes a topic as body; `PUB` a body `topic\0text`, delivered to the
//! topic's subscribers as `MSG` (packet id 0) with the same body; `PING` is
//! answered with its body.
//!
//! ```text
//! cargo run --example loco -- --listen 127.0.0.1:9200
//! ```

use bytes::Bytes;
use clap::Parser;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use switchboard::framing::FrameConfig;
use switchboard::reactor::{
    CloseReason, ConnId, Context, Frame, FrameCodec, FrameDecodeError, FramedContext, Handler, Reactor,
    Service, ServiceConfig, ServiceId,
};

/// LOCO-style pub/sub.
#[derive(Parser)]
struct Args {
    /// Address to listen on (port 0: any; the address is printed).
    #[arg(long, default_value = "127.0.0.1:9200")]
    listen: SocketAddr,
    /// Largest body accepted.
    #[arg(long, default_value_t = 64 << 10)]
    max_body: usize,
}

/// Bytes before the length field.
const PREFIX: usize = 18;
/// The whole header.
const HEADER: usize = 22;

/// The header without its length: what a handler writes before a body.
fn prefix(packet_id: u32, status: u16, method: &str) -> [u8; PREFIX] {
    let mut p = [0u8; PREFIX];
    p[..4].copy_from_slice(&packet_id.to_le_bytes());
    p[4..6].copy_from_slice(&status.to_le_bytes());
    let m = method.as_bytes();
    p[6..6 + m.len().min(11)].copy_from_slice(&m[..m.len().min(11)]);
    p
}

fn method(header: &[u8]) -> &[u8] {
    let m = &header[6..17];
    &m[..m.iter().position(|&b| b == 0).unwrap_or(m.len())]
}

#[derive(Clone, Default)]
struct Loco {
    topics: Arc<Mutex<HashMap<Vec<u8>, Vec<ConnId>>>>,
}

impl Handler for Loco {
    type Codec = FrameCodec;
    /// The topics this connection subscribed to.
    type Conn = Vec<Vec<u8>>;

    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, subs: &mut Vec<Vec<u8>>, packet: Frame<'_>) {
        let header = packet.header();
        let id = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let body = packet.body();
        let result = match method(header) {
            b"PING" => cx.send_frame_parts(&prefix(id, 0, "PING"), body),
            b"SUB" => {
                self.topics
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(body.to_vec())
                    .or_default()
                    .push(cx.id());
                subs.push(body.to_vec());
                cx.send_frame_parts(&prefix(id, 0, "SUB"), b"")
            }
            b"PUB" => {
                let topic = &body[..body.iter().position(|&b| b == 0).unwrap_or(body.len())];
                let ids = self
                    .topics
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(topic)
                    .cloned()
                    .unwrap_or_default();
                // A message by id is the packet without its length field:
                // each subscriber's codec puts the length in.
                let mut msg = prefix(0, 0, "MSG").to_vec();
                msg.extend_from_slice(body);
                cx.broadcast(&ids, &Bytes::from(msg));
                cx.send_frame_parts(&prefix(id, 0, "PUB"), b"")
            }
            _ => cx.send_frame_parts(&prefix(id, 400, "ERR"), b"unknown method"),
        };
        if let Err(e) = result {
            log::error!("reply to {id} not sent: {e}");
        }
    }

    fn on_decode_error(
        &mut self,
        cx: &mut FramedContext<'_, '_>,
        _subs: &mut Vec<Vec<u8>>,
        error: &FrameDecodeError,
    ) {
        // The header came whole even if the packet is refused: echo its id.
        let id = match error.header.get(..4) {
            Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            None => 0,
        };
        let _ = cx.send_frame_parts(&prefix(id, 413, "ERR"), error.to_string().as_bytes());
        // The connection closes after this, once the reply is written.
    }

    fn on_close(&mut self, cx: &mut Context<'_>, subs: Vec<Vec<u8>>, _reason: &CloseReason) {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        for t in subs {
            if let Some(ids) = topics.get_mut(&t) {
                ids.retain(|&i| i != cx.id());
            }
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let layout = FrameConfig::builder()
        .length_field_offset(PREFIX)
        .length_field_length(4)
        .little_endian()
        .strip(0) // hand over whole packets: the header carries the packet id
        .max_frame_length(args.max_body)
        .build();
    let layout = match layout {
        Ok(l) => l,
        Err(e) => {
            eprintln!("loco: {e}");
            std::process::exit(2);
        }
    };
    debug_assert_eq!(layout.length_field_end(), HEADER);
    let loco = Loco::default();
    let reactor = Reactor::builder()
        .threads(2)
        .service(ServiceConfig::new("loco"), args.listen, move |_| {
            Service::new(FrameCodec::new(layout), loco.clone())
        })
        .build();
    match reactor {
        Ok(r) => {
            if let Some(addr) = r.local_addr(ServiceId::from_index(0)) {
                println!("listening on {addr}");
            }
            r.join();
        }
        Err(e) => {
            eprintln!("loco: {e}");
            std::process::exit(1);
        }
    }
}
