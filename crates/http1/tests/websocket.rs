//! WebSocket on the adapter over real loopback sockets: tungstenite's
//! client for the happy path, raw frames for the protocol errors.

use http1::{HttpConfig, HttpContext, HttpHandler, HttpService, Outcome, Request, Response};
use http1::{WebSocketHandler, WsContext, WsMessage};
use reactor::{Reactor, ServiceConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tungstenite::Message;

struct Echo;

impl WebSocketHandler for Echo {
    fn on_message(&mut self, cx: &mut WsContext<'_, '_, '_>, msg: WsMessage<'_>) {
        match msg {
            WsMessage::Binary(b) => cx.send_binary(b),
            WsMessage::Text(t) => cx.send_text(t),
        }
    }
}

struct Api;

impl HttpHandler for Api {
    type Pending = ();
    fn on_request(&mut self, _cx: &mut HttpContext<'_, '_>, req: &Request) -> Outcome<()> {
        match req.path() {
            "/echo" => Outcome::upgrade(req, Echo),
            _ => Response::text(200, "plain\n").into(),
        }
    }
}

fn start() -> (Reactor, SocketAddr) {
    start_with(HttpConfig { ws_max_message: 1000, ..HttpConfig::default() })
}

fn start_with(config: HttpConfig) -> (Reactor, SocketAddr) {
    let _ = env_logger::builder().is_test(true).try_init();
    let reactor = Reactor::builder()
        .threads(1)
        .service(ServiceConfig::new("ws"), "127.0.0.1:0", move |_| HttpService::new(config.clone(), Api))
        .build()
        .unwrap();
    let addr = reactor.local_addr(reactor::ServiceId::from_index(0)).unwrap();
    (reactor, addr)
}

fn handshake(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "{head}");
    s
}

/// A client frame: FIN and `opcode`, masked unless `mask` is false.
fn frame(first: u8, payload: &[u8], mask: bool) -> Vec<u8> {
    let mut f = vec![first];
    let m = if mask { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n < 65536 => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if mask {
        let key = [1u8, 2, 3, 4];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// Reads frames until the server's close frame; returns its code.
fn close_code(s: &mut TcpStream) -> u16 {
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).unwrap();
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).unwrap();
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                s.read_exact(&mut l).unwrap();
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        if h[0] == 0x88 {
            // Then the server closes the TCP connection.
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
            return u16::from_be_bytes([body[0], body[1]]);
        }
    }
}

#[test]
fn echo_with_tungstenite_client_including_fragments_and_pings() {
    let (reactor, addr) = start();
    let stream = TcpStream::connect(addr).unwrap();
    let (mut ws, resp) = tungstenite::client(format!("ws://{addr}/echo"), stream).unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::Binary(vec![1u8, 2, 3].into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Binary(vec![1u8, 2, 3].into()));
    ws.send(Message::Text("héllo".into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Text("héllo".into()));
    ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
    assert_eq!(ws.read().unwrap(), Message::Pong(b"p".to_vec().into()));
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            other => panic!("{other:?}"),
        }
    }
    // Plain HTTP still works on the same service.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.ends_with("plain\n"));
    reactor.shutdown(Duration::from_secs(1));
}

#[test]
fn raw_fragments_with_a_ping_between_them() {
    let (reactor, addr) = start();
    let mut s = handshake(addr);
    let mut out = frame(0x02, b"ab", true); // binary, not final
    out.extend(frame(0x89, b"x", true)); // ping between fragments
    out.extend(frame(0x80, b"cd", true)); // final continuation
    s.write_all(&out).unwrap();
    let mut got = [0u8; 3 + 6];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got[..3], &[0x8a, 1, b'x'], "the pong first");
    assert_eq!(&got[3..], &[0x82, 4, b'a', b'b', b'c', b'd']);
    reactor.shutdown(Duration::from_secs(1));
}

#[test]
fn protocol_errors_close_with_their_codes() {
    let (reactor, addr) = start();
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (frame(0x82, b"unmasked", false), 1002),
        (frame(0xc2, b"rsv1", true), 1002),
        (frame(0x81, &[0xff, 0xfe], true), 1007),
        (frame(0x82, &[0u8; 1001], true), 1009),
        ([frame(0x02, &[0u8; 600], true), frame(0x80, &[0u8; 600], true)].concat(), 1009),
        (frame(0x80, b"continuation first", true), 1002),
        (frame(0x09, b"fragmented ping", true), 1002),
        (frame(0x89, &[0u8; 126], true), 1002),
    ];
    for (bytes, code) in cases {
        let mut s = handshake(addr);
        s.write_all(&bytes).unwrap();
        assert_eq!(close_code(&mut s), code, "{:02x?}", &bytes[..2]);
    }
    reactor.shutdown(Duration::from_secs(1));
}

#[test]
fn a_silent_websocket_is_closed_with_1001_after_its_idle_timeout() {
    let config = HttpConfig { ws_idle_timeout: Duration::from_millis(300), ..HttpConfig::default() };
    let (reactor, addr) = start_with(config);
    let mut s = handshake(addr);
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut s), 1001);
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    // Traffic keeps another one open past the timeout.
    let mut busy = handshake(addr);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(100));
        busy.write_all(&frame(0x89, b"k", true)).unwrap();
        let mut pong = [0u8; 3];
        busy.read_exact(&mut pong).unwrap();
        assert_eq!(pong, [0x8a, 1, b'k']);
    }
    reactor.shutdown(Duration::from_secs(1));
}

#[test]
fn bad_handshakes_are_refused() {
    let (reactor, addr) = start();
    for (req, status) in [
        ("Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "426"),
        ("Sec-WebSocket-Version: 13\r\n", "400"),
    ] {
        let mut s = TcpStream::connect(addr).unwrap();
        let head = format!(
            "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{req}\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with(&format!("HTTP/1.1 {status} ")), "{reply}");
    }
    reactor.shutdown(Duration::from_secs(1));
}
