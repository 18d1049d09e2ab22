//! TLS on every door of the chat server, with real clients over loopback:
//! the library client and `chat-client --tls`, the rustls client against
//! HTTPS, curl and openssl (ignored in a bare `cargo test`: .ci/run installs
//! them and runs them with `--ignored`), `-t`'s certificate checks, a
//! certificate reload under load, the binary upgrade, and bad input.

mod common;

use chat_server::client::{ChatClient, TlsClient};
use chat_server::protocol::{ClientFrameRef, OkBody, Push, Reply, RequestRef, ServerFrame, PROTOCOL_VERSION};
use chat_server::server::ChatServer;
use common::{free_addr, temp_dir, Server, BIN, TIMEOUT};
use reactor::ServiceStats;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tls::test_cert::{self, TestCert};

const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// Writes a certificate for localhost and 127.0.0.1 into a fresh directory.
fn cert_files(name: &str) -> (PathBuf, TestCert, PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let cert = test_cert::self_signed(&["localhost", "127.0.0.1"]);
    let (c, k) = cert.write(&dir, "server").unwrap();
    (dir, cert, c, k)
}

/// An in-process server: plain chat (the test's port), chat over TLS, and
/// HTTPS, with `cert` and a short handshake timeout.
fn start_tls(cert: &Path, key: &Path) -> (ChatServer, SocketAddr, SocketAddr, SocketAddr) {
    let (server, plain) = common::start_server(|c| {
        c.chat.tls_listen = vec!["127.0.0.1:0".into()];
        c.http.tls_listen = vec!["127.0.0.1:0".into()];
        c.tls.cert = cert.display().to_string();
        c.tls.key = key.display().to_string();
        c.tls.handshake_timeout_ms = 300;
    });
    let chat_tls = server.chat_tls_addrs()[0];
    let https = server.https_addrs()[0];
    (server, plain, chat_tls, https)
}

fn stats(server: &ChatServer, name: &str) -> ServiceStats {
    let handle = server.handle();
    let id = handle.service_id(name).unwrap_or_else(|| panic!("no service {name}"));
    handle.stats(id).unwrap()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

fn tls_login(addr: SocketAddr, ca: &Path, nick: &str) -> ChatClient {
    let tls = TlsClient::with_ca_file(ca, "localhost").unwrap();
    let mut c = ChatClient::connect_with(addr, TIMEOUT, Some(&tls)).unwrap();
    c.login(nick, None).unwrap();
    c
}

fn next_message(c: &mut ChatClient) -> (String, String) {
    loop {
        match c.next_event().unwrap() {
            ServerFrame::Push(Push::Message { from, text, .. }) => return (from, text),
            ServerFrame::Push(Push::Direct { from, text, .. }) => return (from, text),
            _ => {}
        }
    }
}

#[test]
fn chat_over_tls_and_plain_tcp_share_the_rooms() {
    let (dir, _, cert, key) = cert_files("shared-rooms");
    let (server, plain, chat_tls, _) = start_tls(&cert, &key);
    let mut alice = tls_login(chat_tls, &cert, "alice");
    let mut bob = common::login(plain, "bob", None).unwrap();
    alice.join("lobby").unwrap();
    bob.join("lobby").unwrap();
    bob.say("lobby", "hello from plain TCP").unwrap();
    assert_eq!(next_message(&mut alice), ("bob".into(), "hello from plain TCP".into()));
    // A message larger than a TLS record, and a direct message.
    let long = "x".repeat(40_000);
    alice.say("lobby", &long).unwrap();
    assert_eq!(next_message(&mut bob), ("alice".into(), long));
    alice.direct("bob", "psst").unwrap();
    assert_eq!(next_message(&mut bob), ("alice".into(), "psst".into()));
    // A sender thread writes while this one reads.
    let sender = alice.sender();
    let writer = thread::spawn(move || {
        for i in 0..50 {
            sender.send_request(RequestRef::Say { room: "lobby", text: &format!("m{i}") }).unwrap();
        }
    });
    for i in 0..50 {
        assert_eq!(next_message(&mut bob).1, format!("m{i}"));
    }
    writer.join().unwrap();
    // A client that trusts another certificate is refused at the handshake.
    let other = test_cert::self_signed(&["localhost"]);
    let (oc, _) = other.write(&dir, "other").unwrap();
    let stranger = TlsClient::with_ca_file(&oc, "localhost").unwrap();
    let e = ChatClient::connect_with(chat_tls, TIMEOUT, Some(&stranger)).unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");
    let counts = server.tls().unwrap().counts();
    assert!(counts.handshakes >= 1, "{counts:?}");
    server.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn chat_client_tls_chats_over_tls() {
    let (dir, _, cert, key) = cert_files("chat-client");
    let (server, _plain, chat_tls, _) = start_tls(&cert, &key);
    let mut watcher = tls_login(chat_tls, &cert, "watcher");
    watcher.join("r").unwrap();
    let mut child = Command::new(CLIENT)
        .args(["--connect", &chat_tls.to_string(), "--nick", "bot", "--linger", "300ms"])
        .args(["--tls", "--ca", cert.to_str().unwrap(), "--server-name", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"/join r\nhello over tls\n").unwrap();
    assert_eq!(next_message(&mut watcher), ("bot".into(), "hello over tls".into()));
    watcher.say("r", "and back").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("and back"), "{stdout}");

    // Without the CA it does not trust the server, and says so.
    let out = Command::new(CLIENT)
        .args(["--connect", &chat_tls.to_string(), "--nick", "bot2", "--tls", "--server-name", "localhost"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect") || err.contains("tls"), "{err}");
    server.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

/// One HTTPS request with the rustls client; returns (ALPN, response).
fn https(addr: SocketAddr, cert: &TestCert, request: &str) -> (Option<Vec<u8>>, String) {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(cert.client_config(&[b"h2", b"http/1.1"]), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut s = StreamOwned::new(conn, sock);
    s.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    (s.conn.alpn_protocol().map(<[u8]>::to_vec), String::from_utf8_lossy(&response).into_owned())
}

#[test]
fn https_serves_the_http_door_with_alpn_http_1_1() {
    let (dir, cert_obj, cert, key) = cert_files("https");
    let (server, plain, _, https_addr) = start_tls(&cert, &key);
    let (alpn, response) =
        https(https_addr, &cert_obj, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok") || response.contains("\r\n\r\nok"), "{response}");
    // A session opened over HTTPS posts, and a TCP member gets it.
    let mut bob = common::login(plain, "bob", None).unwrap();
    bob.join("lobby").unwrap();
    let post = |path: &str, auth: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let (_, response) = https(https_addr, &cert_obj, &post("/session", "", r#"{"nick":"carol"}"#));
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(response.contains("HttpOnly; SameSite=Strict") && response.contains("; Secure"), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let session: serde_json::Value = serde_json::from_str(body).unwrap();
    let bearer = format!("Authorization: Bearer {}\r\n", session["session"].as_str().unwrap());
    let (_, response) =
        https(https_addr, &cert_obj, &post("/rooms/lobby/messages", &bearer, r#"{"text":"over https"}"#));
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert_eq!(next_message(&mut bob), ("carol".into(), "over https".into()));
    server.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_chat_over_websocket_works_over_https_as_wss() {
    let (dir, cert_obj, cert, key) = cert_files("wss");
    let (server, plain, _, https_addr) = start_tls(&cert, &key);
    let mut bob = common::login(plain, "bob", None).unwrap();
    bob.join("lobby").unwrap();
    // A browser's wss://localhost/ws: TLS, then the upgrade, then one chat
    // payload per binary message.
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(cert_obj.client_config(&[b"http/1.1"]), name).unwrap();
    let sock = TcpStream::connect(https_addr).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let stream = StreamOwned::new(conn, sock);
    let (mut ws, resp) = tungstenite::client("wss://localhost/ws", stream).unwrap();
    assert_eq!(resp.status(), 101);
    let call = |ws: &mut tungstenite::WebSocket<_>, id: u32, request: RequestRef<'_>| {
        let mut buf = bytes::BytesMut::new();
        ClientFrameRef { request_id: id, request }.encode(&mut buf);
        ws.send(tungstenite::Message::Binary(buf.freeze())).unwrap();
        loop {
            let tungstenite::Message::Binary(b) = ws.read().unwrap() else { continue };
            match ServerFrame::decode(&b).unwrap() {
                ServerFrame::Reply { request_id, reply } if request_id == id => return reply,
                _ => {}
            }
        }
    };
    let login = RequestRef::Login { version: PROTOCOL_VERSION, nick: "webby", token: None };
    assert!(matches!(call(&mut ws, 1, login), Reply::Ok(OkBody::Welcome(_))));
    let join = RequestRef::Join { room: "lobby", resume: None };
    assert!(matches!(call(&mut ws, 2, join), Reply::Ok(OkBody::Joined { members: 2, .. })));
    let say = RequestRef::Say { room: "lobby", text: "over wss" };
    assert!(matches!(call(&mut ws, 3, say), Reply::Ok(OkBody::Sent { .. })));
    assert_eq!(next_message(&mut bob), ("webby".into(), "over wss".into()));
    bob.say("lobby", "back over tcp").unwrap();
    let got = loop {
        let tungstenite::Message::Binary(b) = ws.read().unwrap() else { continue };
        if let ServerFrame::Push(Push::Message { text, .. }) = ServerFrame::decode(&b).unwrap() {
            break text;
        }
    };
    assert_eq!(got, "back over tcp");
    server.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Sends `bytes` and reads until the server closes; true if it did.
fn closed_after(addr: SocketAddr, bytes: &[u8]) -> bool {
    let mut s = tcp(addr);
    let _ = s.write_all(bytes);
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn login_frame(nick: &str) -> Vec<u8> {
    let frame = ClientFrameRef {
        request_id: 1,
        request: RequestRef::Login { version: PROTOCOL_VERSION, nick, token: None },
    };
    let mut payload = bytes::BytesMut::new();
    frame.encode(&mut payload);
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

/// A TLS ClientHello, as the rustls client's first flight.
fn client_hello(cert: &TestCert) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(cert.client_config(&[]), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

#[test]
fn bad_input_on_the_tls_and_plain_ports_is_closed_counted_and_gone() {
    let (dir, cert_obj, cert, key) = cert_files("bad-input");
    let (server, plain, chat_tls, https_addr) = start_tls(&cert, &key);

    // Garbage instead of a ClientHello; the chat protocol in plaintext on
    // the TLS port; plaintext HTTP on the HTTPS port.
    assert!(closed_after(chat_tls, &[0x00, 0xff, 0x13, 0x37, 0x00, 0x00, 0x00, 0x00]));
    assert!(closed_after(chat_tls, &login_frame("plain")));
    assert!(closed_after(https_addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    wait_for("protocol errors", || {
        stats(&server, "chat-tls").protocol_errors == 2 && stats(&server, "http-tls").protocol_errors == 1
    });
    let counts = server.tls().unwrap().counts();
    assert_eq!(counts.not_tls, 3, "{counts:?}");

    // TLS on the plain chat port: the frame codec refuses the "length".
    assert!(closed_after(plain, &client_hello(&cert_obj)));
    wait_for("the plain port's protocol error", || stats(&server, "chat").protocol_errors == 1);

    // A handshake that stalls (nothing, or half a ClientHello) is closed at
    // the handshake timeout (300 ms here).
    let started = Instant::now();
    assert!(closed_after(chat_tls, &[]));
    let hello = client_hello(&cert_obj);
    assert!(closed_after(chat_tls, &hello[..hello.len() / 2]));
    assert!(started.elapsed() >= Duration::from_millis(300));
    wait_for("2 handshake timeouts", || stats(&server, "chat-tls").handshake_timeouts == 2);

    // A peer that stops mid-record, after the handshake.
    let tls = TlsClient::with_ca_file(&cert, "localhost").unwrap();
    let c = ChatClient::connect_with(chat_tls, TIMEOUT, Some(&tls)).unwrap();
    drop(c);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(cert_obj.client_config(&[]), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp(chat_tls));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s.sock.write_all(&[0x17, 0x03, 0x03, 0x01, 0x00, 1, 2, 3, 4]).unwrap();
    s.sock.shutdown(Shutdown::Write).unwrap();
    let mut sink = Vec::new();
    let _ = s.sock.read_to_end(&mut sink);
    wait_for("the truncated record", || server.tls().unwrap().counts().truncated == 1);

    // Nothing stays, and everyone else is still served.
    wait_for("every bad connection gone", || {
        ["chat", "chat-tls", "http-tls"].iter().all(|n| {
            let s = stats(&server, n);
            s.open == 0 && s.closing == 0
        })
    });
    let mut ok = tls_login(chat_tls, &cert, "still-here");
    ok.join("r").unwrap();
    server.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

/// A config file with a plain and a TLS chat listener and the given `[tls]`.
fn write_tls_config(path: &Path, plain: SocketAddr, tls: SocketAddr, cert: &Path, key: &Path) {
    let text = format!(
        "threads = 2\nshutdown_grace_ms = 2000\n[http]\nlisten = []\n[store]\ndata_dir = \"none\"\n\
         [chat]\nlisten = [\"{plain}\"]\ntls_listen = [\"{tls}\"]\nrate_per_sec = 0\n\
         [tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    std::fs::write(path, text).unwrap();
}

fn check(config: &Path) -> (bool, String) {
    common::check(config)
}

#[test]
fn dash_t_checks_the_certificate_and_names_the_file() {
    let (dir, _, cert, key) = cert_files("dash-t");
    let config = dir.join("chat.toml");
    let (plain, tls) = (free_addr(), free_addr());
    write_tls_config(&config, plain, tls, &cert, &key);
    let (ok, out) = check(&config);
    assert!(ok, "{out}");
    assert!(out.contains("tls: certificate"), "{out}");

    let missing = dir.join("missing.crt");
    write_tls_config(&config, plain, tls, &missing, &key);
    let (ok, out) = check(&config);
    assert!(!ok);
    assert!(out.contains(&format!("tls.cert: {}: no such file", missing.display())), "{out}");

    let other = test_cert::self_signed(&["localhost"]);
    let (_, other_key) = other.write(&dir, "other").unwrap();
    write_tls_config(&config, plain, tls, &cert, &other_key);
    let (ok, out) = check(&config);
    assert!(!ok);
    assert!(out.contains("tls.key: ") && out.contains("does not match the certificate"), "{out}");

    let old = test_cert::self_signed_between(&["localhost"], (2001, 1, 1), (2002, 1, 1));
    let (old_cert, old_key) = old.write(&dir, "old").unwrap();
    write_tls_config(&config, plain, tls, &old_cert, &old_key);
    let (ok, out) = check(&config);
    assert!(!ok);
    assert!(out.contains("tls.cert: ") && out.contains("expired on"), "{out}");

    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "junk").unwrap();
    write_tls_config(&config, plain, tls, &cert, &junk);
    let (ok, out) = check(&config);
    assert!(!ok);
    assert!(out.contains(&format!("tls.key: {}: not a PEM file", junk.display())), "{out}");

    // The server itself refuses to start on it, with the same words.
    let out = Command::new(BIN).arg("-c").arg(&config).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a PEM file"));
    let _ = std::fs::remove_dir_all(dir);
}

/// The certificate the server presents now, as a client trusting `trusted`.
fn presented(addr: SocketAddr, trusted: &[&TestCert]) -> rustls::pki_types::CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    for c in trusted {
        roots.add(c.cert_der.clone()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut s = StreamOwned::new(conn, tcp(addr));
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s.conn.peer_certificates().unwrap()[0].clone()
}

#[test]
fn sighup_reloads_the_certificate_under_load_without_dropping_anyone() {
    let (dir, old, cert, key) = cert_files("reload");
    let config = dir.join("chat.toml");
    let (plain, tls_addr) = (free_addr(), free_addr());
    write_tls_config(&config, plain, tls_addr, &cert, &key);
    let server = Server::start(&config);
    assert_eq!(presented(tls_addr, &[&old]), old.cert_der);
    let new = test_cert::self_signed(&["localhost", "127.0.0.1"]);

    // Load: clients trusting both certificates connect, log in, talk and
    // leave in a loop; one long-lived TLS connection talks throughout.
    let both = {
        let both_pem = dir.join("both.pem");
        std::fs::write(&both_pem, format!("{}{}", old.cert_pem, new.cert_pem)).unwrap();
        TlsClient::with_ca_file(&both_pem, "localhost").unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let loaders: Vec<_> = (0..3)
        .map(|i| {
            let (stop, done, failed, tls) = (stop.clone(), done.clone(), failed.clone(), both.clone());
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let attempt =
                        ChatClient::connect_with(tls_addr, TIMEOUT, Some(&tls)).and_then(|mut c| {
                            c.login(&format!("load{i}-{n}"), None).map_err(std::io::Error::other)?;
                            c.ping().map_err(std::io::Error::other)?;
                            Ok(())
                        });
                    match attempt {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("load client {i}: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            })
        })
        .collect();
    let mut long = ChatClient::connect_with(tls_addr, TIMEOUT, Some(&both)).unwrap();
    long.login("long", None).unwrap();
    long.join("r").unwrap();
    wait_for("some load", || done.load(Ordering::Relaxed) > 20);

    // Replace the files in place and reload.
    std::fs::write(&cert, &new.cert_pem).unwrap();
    std::fs::write(&key, &new.key_pem).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log("tls: reloaded");
    let after = done.load(Ordering::Relaxed);
    wait_for("load after the reload", || done.load(Ordering::Relaxed) > after + 20);
    assert_eq!(presented(tls_addr, &[&new]), new.cert_der, "new handshakes get the new certificate");
    long.say("r", "still connected").unwrap();
    long.ping().unwrap();

    // A broken certificate is refused; the one in use stays.
    std::fs::write(&cert, "broken").unwrap();
    server.signal(libc::SIGHUP);
    let line = server.wait_log("reload rejected");
    assert!(line.contains("tls.cert") && line.contains("not a PEM file"), "{line}");
    assert_eq!(presented(tls_addr, &[&new]), new.cert_der);

    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "a client failed during the reload");
    long.ping().unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_binary_upgrade_carries_the_tls_listeners() {
    let (dir, cert_obj, cert, key) = cert_files("upgrade");
    let config = dir.join("chat.toml");
    let (plain, tls_addr) = (free_addr(), free_addr());
    write_tls_config(&config, plain, tls_addr, &cert, &key);
    let pid_file = dir.join("chat.pid");
    let old = Server::start_with(&config, &["--pid-file", pid_file.to_str().unwrap()]);
    let old_pid = old.child.id();
    let read_pid = || std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok());
    wait_for("pid file", || read_pid() == Some(old_pid));
    let _ = presented(tls_addr, &[&cert_obj]);
    old.signal(libc::SIGUSR2);
    old.wait_log("is ready; handing it the room log");
    wait_for("the new pid file", || read_pid().is_some_and(|p| p != old_pid));
    let new_pid = read_pid().unwrap();
    let mut old = old;
    let end = Instant::now() + TIMEOUT;
    while old.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "old process did not exit");
        thread::sleep(Duration::from_millis(10));
    }
    // The successor serves TLS on the same port, with the same certificate.
    let mut c = tls_login(tls_addr, &cert, "after-upgrade");
    c.join("r").unwrap();
    // SAFETY: ending the successor we started through the old process.
    unsafe { libc::kill(new_pid as i32, libc::SIGTERM) };
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs curl/openssl; run by .ci/run with --ignored"]
fn curl_cacert_against_https() {
    let (dir, _, cert, key) = cert_files("curl");
    let (server, plain, _, https_addr) = start_tls(&cert, &key);
    let url = format!("https://localhost:{}", https_addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", https_addr.port());
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", cert.to_str().unwrap(), "--resolve", &resolve])
            .args(args)
            .output()
            .expect("curl is installed");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, body, err) = curl(&[&format!("{url}/healthz")]);
    assert!(ok, "{err}");
    assert_eq!(body.trim(), "ok");
    let mut bob = common::login(plain, "bob", None).unwrap();
    bob.join("lobby").unwrap();
    // curl logs in over HTTPS like any HTTP client, then posts with the
    // bearer credential it was given.
    let (ok, body, err) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"nick":"dave"}"#,
        &format!("{url}/session"),
    ]);
    assert!(ok, "{err}");
    let session: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    let bearer = format!("Authorization: Bearer {}", session["session"].as_str().unwrap_or_default());
    let (ok, body, err) = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-H",
        &bearer,
        "-d",
        r#"{"text":"via curl"}"#,
        &format!("{url}/rooms/lobby/messages"),
    ]);
    assert!(ok, "{err}");
    assert!(body.contains("\"offset\""), "{body}");
    assert_eq!(next_message(&mut bob), ("dave".into(), "via curl".into()));
    // curl refuses a server it does not trust.
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--resolve", &resolve, &format!("{url}/healthz")])
        .env("CURL_CA_BUNDLE", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    server.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
#[ignore = "needs curl/openssl; run by .ci/run with --ignored"]
fn openssl_s_client_speaks_the_chat_protocol_over_tls() {
    let (dir, _, cert, key) = cert_files("openssl");
    let (server, _, chat_tls, _) = start_tls(&cert, &key);
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &chat_tls.to_string(), "-servername", "localhost"])
        .args(["-CAfile", cert.to_str().unwrap(), "-verify_return_error", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&login_frame("ossl")).unwrap();
    stdin.flush().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let mut head = [0u8; 4];
        let got = stdout.read_exact(&mut head).and_then(|()| {
            let mut payload = vec![0u8; u32::from_be_bytes(head) as usize];
            stdout.read_exact(&mut payload).map(|()| payload)
        });
        let _ = tx.send(got);
    });
    let payload = rx.recv_timeout(TIMEOUT).expect("a reply within the timeout").expect("a whole frame");
    match ServerFrame::decode(&payload).unwrap() {
        ServerFrame::Reply { request_id: 1, reply: Reply::Ok(OkBody::Welcome(_)) } => {}
        other => panic!("expected a welcome, got {other:?}"),
    }
    drop(stdin);
    let _ = child.kill();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let _ = child.wait();
    let log: Vec<String> = stderr.lines().map_while(Result::ok).collect();
    assert!(!log.iter().any(|l| l.contains("verify error")), "{log:?}");
    server.shutdown();
    let _ = std::fs::remove_dir_all(dir);
}
