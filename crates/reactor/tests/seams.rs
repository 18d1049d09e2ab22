//! The two seams, proved with toys over real loopback sockets:
//!
//! - a transport under an unchanged framed echo: an XOR "cipher" (what TLS
//!   does, ciphertext in and out, minus the cryptography), with a goodbye
//!   that must come after the last reply and before FIN;
//! - a codec that switches protocol mid-stream (what WebSocket does after
//!   HTTP's Upgrade): lines first, frames after an `UPGRADE` line, and
//!   messages sent by id framed as each recipient speaks at the time.
//!
//! Neither needs anything of the loop but the `Transport` and `Codec`
//! traits.

use bytes::{Buf, Bytes, BytesMut};
use reactor::{
    Codec, ConnContext, ConnId, Context, Encoder, Frame, FrameCodec, FramedContext, Handler, Output, Reactor,
    Received, Refused, Service, ServiceConfig, ServiceId, Socket, Transport, Unsent,
};
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

/// The framed echo of the other tests, unchanged: it knows nothing of the
/// transport under it.
struct Echo;

impl Handler for Echo {
    type Codec = FrameCodec;
    type Conn = ();
    fn on_open(&mut self, _cx: &mut FramedContext<'_, '_>, _peer: SocketAddr) {}
    fn on_message(&mut self, cx: &mut FramedContext<'_, '_>, _conn: &mut (), frame: Frame<'_>) {
        cx.send_frame(&frame).unwrap();
        if &frame[..] == b"close" {
            cx.close();
        }
    }
}

/// XOR with a key byte, both ways. Its goodbye is `BYE`, enciphered.
struct Xor(u8);

/// Ciphertext not yet written; allocated only while there is some.
struct XorConn {
    wire: BytesMut,
}

impl Transport for Xor {
    type Conn = XorConn;

    fn open(&mut self, _peer: SocketAddr) -> io::Result<XorConn> {
        Ok(XorConn { wire: BytesMut::new() })
    }

    fn read(
        &mut self,
        _: &mut XorConn,
        socket: &mut Socket<'_>,
        plain: &mut BytesMut,
    ) -> io::Result<Received> {
        let start = plain.len();
        let room = plain.capacity() - start;
        let n = socket.read_into(plain)?;
        plain[start..].iter_mut().for_each(|b| *b ^= self.0);
        Ok(Received { wire: n, drained: false, eof: n == 0 && room > 0 })
    }

    fn write(
        &mut self,
        conn: &mut XorConn,
        plain: &mut Unsent<'_>,
        socket: &mut Socket<'_>,
    ) -> io::Result<usize> {
        let start = conn.wire.len();
        plain.take_into(&mut conn.wire, 64 << 10);
        conn.wire[start..].iter_mut().for_each(|b| *b ^= self.0);
        let mut written = 0;
        while !conn.wire.is_empty() {
            match socket.write(&conn.wire) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    conn.wire.advance(n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if conn.wire.is_empty() && !plain.is_empty() {
                let start = conn.wire.len();
                plain.take_into(&mut conn.wire, 64 << 10);
                conn.wire[start..].iter_mut().for_each(|b| *b ^= self.0);
            }
        }
        if conn.wire.is_empty() {
            conn.wire = BytesMut::new(); // an idle connection keeps no buffer
        }
        Ok(written)
    }

    fn pending(&self, conn: &XorConn) -> usize {
        conn.wire.len()
    }

    fn close(&mut self, conn: &mut XorConn) {
        conn.wire.extend(b"BYE".iter().map(|b| b ^ self.0));
    }
}

fn xor(bytes: &[u8], key: u8) -> Vec<u8> {
    bytes.iter().map(|b| b ^ key).collect()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Reads one enciphered frame.
fn recv_xor(s: &mut TcpStream, key: u8) -> Vec<u8> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).unwrap();
    let len = u32::from_be_bytes(xor(&head, key).try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    xor(&body, key)
}

#[test]
fn a_toy_cipher_transport_under_an_unchanged_framed_echo() {
    const KEY: u8 = 0x5A;
    let reactor = Reactor::builder()
        .threads(2)
        .service(ServiceConfig::new("plain"), "127.0.0.1:0", |_| Service::new(FrameCodec::default(), Echo))
        .service(ServiceConfig::new("xor"), "127.0.0.1:0", |_| {
            Service::new(
                FrameCodec::new(
                    reactor::framing::FrameConfig::builder().max_frame_length(4 << 20).build().unwrap(),
                ),
                Echo,
            )
            .with_transport(Xor(KEY))
        })
        .build()
        .unwrap();
    let plain_addr = reactor.local_addr(ServiceId::from_index(0)).unwrap();
    let xor_addr = reactor.local_addr(ServiceId::from_index(1)).unwrap();

    // Small frames, pipelined, split at odd places.
    let mut c = connect(xor_addr);
    let payloads: Vec<Vec<u8>> = (0..300).map(|i| vec![(i % 251) as u8; i * 7 % 500]).collect();
    let wire: Vec<u8> = xor(&payloads.iter().flat_map(|p| frame(p)).collect::<Vec<_>>(), KEY);
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        for chunk in wire.chunks(777) {
            w.write_all(chunk).unwrap();
        }
    });
    for p in &payloads {
        assert_eq!(&recv_xor(&mut c, KEY), p);
    }
    writer.join().unwrap();

    // A frame far larger than the socket buffers: partial writes of
    // ciphertext the transport holds, counted as queued output.
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8).collect();
    let mut w = c.try_clone().unwrap();
    let wire = xor(&frame(&big), KEY);
    let writer = thread::spawn(move || w.write_all(&wire).unwrap());
    assert!(recv_xor(&mut c, KEY) == big, "3 MiB frame came back changed");
    writer.join().unwrap();

    // A close: the last reply, then the transport's goodbye, then FIN.
    c.write_all(&xor(&frame(b"close"), KEY)).unwrap();
    assert_eq!(recv_xor(&mut c, KEY), b"close");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(xor(&rest, KEY), b"BYE");

    // The plain service beside it, same handler, no cipher.
    let mut p = connect(plain_addr);
    p.write_all(&frame(b"clear")).unwrap();
    let mut reply = [0u8; 9];
    p.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[4..], b"clear");

    let h = reactor.handle();
    let s = h.stats(ServiceId::from_index(1)).unwrap();
    assert!(s.bytes_in > 3 << 20 && s.bytes_out > 3 << 20, "{s:?}");
    reactor.shutdown(DEADLINE);
}

/// A transport with a handshake of its own: the client must send `HI\n`
/// first, which the transport answers `OK\n` by itself (as a TLS server
/// answers a ClientHello before the handler hears anything); then bytes
/// pass through.
struct Greeting;

#[derive(Default)]
struct GreetingConn {
    heard: usize,
    out: Vec<u8>,
}

impl Transport for Greeting {
    type Conn = GreetingConn;

    fn open(&mut self, _peer: SocketAddr) -> io::Result<GreetingConn> {
        Ok(GreetingConn::default())
    }

    fn read(
        &mut self,
        conn: &mut GreetingConn,
        socket: &mut Socket<'_>,
        plain: &mut BytesMut,
    ) -> io::Result<Received> {
        let start = plain.len();
        let room = plain.capacity() - start;
        let n = socket.read_into(plain)?;
        if conn.heard < 3 && n > 0 {
            let take = (3 - conn.heard).min(n);
            if plain[start..start + take] != b"HI\n"[conn.heard..conn.heard + take] {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "no greeting"));
            }
            // The greeting is the transport's: the codec sees what follows.
            let len = plain.len();
            plain.copy_within(start + take..len, start);
            plain.truncate(len - take);
            conn.heard += take;
            if conn.heard == 3 {
                conn.out.extend_from_slice(b"OK\n");
            }
        }
        Ok(Received { wire: n, drained: false, eof: n == 0 && room > 0 })
    }

    fn write(
        &mut self,
        conn: &mut GreetingConn,
        plain: &mut Unsent<'_>,
        socket: &mut Socket<'_>,
    ) -> io::Result<usize> {
        let mut written = 0;
        while !conn.out.is_empty() {
            match socket.write(&conn.out) {
                Ok(n) => {
                    conn.out.drain(..n);
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                Err(e) => return Err(e),
            }
        }
        Ok(written + plain.write_to(socket)?)
    }

    fn pending(&self, conn: &GreetingConn) -> usize {
        conn.out.len()
    }
}

#[test]
fn a_transport_speaks_first_and_its_handshake_is_flushed_without_the_handler() {
    let reactor = Reactor::builder()
        .threads(1)
        .service(ServiceConfig::new("greet"), "127.0.0.1:0", |_| {
            Service::new(FrameCodec::default(), Echo).with_transport(Greeting)
        })
        .build()
        .unwrap();
    let addr = reactor.local_addr(ServiceId::from_index(0)).unwrap();
    let mut c = connect(addr);
    c.write_all(b"HI").unwrap();
    thread::sleep(Duration::from_millis(50));
    c.write_all(b"\n").unwrap();
    // No handler output is queued: only the transport has something to say.
    let mut ok = [0u8; 3];
    c.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"OK\n", "the transport's own answer, with nothing from the handler");
    c.write_all(&frame(b"after")).unwrap();
    let mut reply = [0u8; 9];
    c.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[4..], b"after");
    // A client that does not greet is closed: an I/O error of the transport.
    let mut rude = connect(addr);
    rude.write_all(&frame(b"hello")).unwrap();
    let mut buf = Vec::new();
    let _ = rude.read_to_end(&mut buf);
    assert!(buf.is_empty(), "nothing reached the handler");
    reactor.shutdown(DEADLINE);
}

/// Lines until an `UPGRADE` line, length-prefixed frames after: a protocol
/// switch inside a codec, as WebSocket after HTTP's Upgrade.
struct Switching;

#[derive(Default)]
struct Mode {
    framed: bool,
}

/// A line or a frame; the handler does not care which.
struct Text<'a>(&'a [u8]);

impl Codec for Switching {
    type Conn = Mode;
    type Item<'a> = Text<'a>;
    type DecodeError = Infallible;

    fn open(&mut self) -> Mode {
        Mode::default()
    }

    fn decode<'a>(
        &mut self,
        mode: &mut Mode,
        input: &'a mut BytesMut,
    ) -> Result<Option<(Text<'a>, usize)>, Infallible> {
        if mode.framed {
            if input.len() < 4 {
                return Ok(None);
            }
            let len = u32::from_be_bytes(input[..4].try_into().unwrap()) as usize;
            if input.len() < 4 + len {
                return Ok(None);
            }
            return Ok(Some((Text(&input[4..4 + len]), 4 + len)));
        }
        let Some(end) = input.iter().position(|&b| b == b'\n') else { return Ok(None) };
        Ok(Some((Text(&input[..end]), end + 1)))
    }

    fn encode_payload(
        &mut self,
        mode: &mut Mode,
        payload: &Bytes,
        out: &mut Output<'_>,
    ) -> Result<(), Refused> {
        if mode.framed {
            out.append(&(payload.len() as u32).to_be_bytes());
            out.append(payload);
        } else {
            if payload.contains(&b'\n') {
                return Err(Refused("a line cannot hold a newline"));
            }
            out.append(payload);
            out.append(b"\n");
        }
        Ok(())
    }
}

impl Encoder<&[u8]> for Switching {
    type Error = Refused;
    fn encode(&mut self, mode: &mut Mode, msg: &[u8], out: &mut Output<'_>) -> Result<(), Refused> {
        self.encode_payload(mode, &Bytes::copy_from_slice(msg), out)
    }
}

/// `say X` sends X to every connection by id; anything else is echoed; an
/// `UPGRADE` line switches the connection to frames.
#[derive(Clone, Default)]
struct Room(Arc<Mutex<Vec<ConnId>>>);

impl Handler for Room {
    type Codec = Switching;
    type Conn = ();
    fn on_open(&mut self, cx: &mut ConnContext<'_, '_, Switching>, _peer: SocketAddr) {
        self.0.lock().unwrap().push(cx.id());
    }
    fn on_message(&mut self, cx: &mut ConnContext<'_, '_, Switching>, _conn: &mut (), msg: Text<'_>) {
        match msg.0.strip_prefix(b"say ") {
            Some(text) => {
                let ids = self.0.lock().unwrap().clone();
                cx.broadcast(&ids, &Bytes::copy_from_slice(text));
            }
            None => cx.send(msg.0).unwrap(),
        }
        if msg.0 == b"UPGRADE" {
            // Answered in the old protocol; whatever follows, already in the
            // new one, is decoded after this returns.
            cx.codec_state().framed = true;
        }
    }
    fn on_close(&mut self, cx: &mut Context<'_>, _conn: (), _reason: &reactor::CloseReason) {
        self.0.lock().unwrap().retain(|&id| id != cx.id());
    }
}

fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut line = Vec::new();
    let mut b = [0u8];
    while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    line
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(head) as usize];
    s.read_exact(&mut body).unwrap();
    body
}

#[test]
fn a_codec_switches_protocol_mid_stream_and_messages_follow_the_switch() {
    let room = Room::default();
    let r = room.clone();
    let reactor = Reactor::builder()
        .threads(2)
        .service(ServiceConfig::new("switch"), "127.0.0.1:0", move |_| Service::new(Switching, r.clone()))
        .build()
        .unwrap();
    let addr = reactor.local_addr(ServiceId::from_index(0)).unwrap();
    let mut upgraded = connect(addr);
    let mut lines = connect(addr);
    let end = Instant::now() + DEADLINE;
    while room.0.lock().unwrap().len() < 2 {
        assert!(Instant::now() < end);
        thread::sleep(Duration::from_millis(5));
    }
    // The upgrade line and the first frame after it, in one write.
    upgraded.write_all(b"UPGRADE\n\x00\x00\x00\x04ping").unwrap();
    assert_eq!(read_line(&mut upgraded), b"UPGRADE", "the upgrade line is answered in the old protocol");
    assert_eq!(read_frame(&mut upgraded), b"ping", "what follows it is read in the new one");
    // A message by id is framed as each recipient speaks now.
    lines.write_all(b"say hello\n").unwrap();
    assert_eq!(read_line(&mut lines), b"hello");
    assert_eq!(read_frame(&mut upgraded), b"hello");
    reactor.shutdown(DEADLINE);
}
