//! Restart time of a chat-server with a large room log (benches/room_log.sh).
//!
//! ```text
//! room_log_restart fill DIR MESSAGES ROOMS     # a redb room log of MESSAGES over ROOMS rooms
//! room_log_restart time BIN CONFIG ADDR ROOM [--crash]
//! ```
//!
//! `fill` writes the log directly through [`RedbLog`] (batches of 10,000,
//! one fsync at the end, a clean close), as a server would have stored
//! them. `time` execs `BIN -c CONFIG`, and prints one JSON line: seconds from
//! the exec to the first accepted connection on ADDR, and to the first
//! join of ROOM answered (login, join, history replayed); then stops the
//! server with SIGTERM (or, with `--crash`, SIGKILL: the next start finds
//! the log not closed cleanly).

use chat_server::client::ChatClient;
use chat_server::store::{Append, Entry, RedbLog, RoomLog};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages per transaction while filling.
const BATCH: usize = 10_000;
/// How long the server may take to start before the run is abandoned.
const START_LIMIT: Duration = Duration::from_secs(300);

fn fill(dir: &Path, messages: u64, rooms: u64) -> Result<(), String> {
    let rooms = rooms.max(1);
    // Keep every message: the log holds all of them, as the figure says.
    let retain = messages.div_ceil(rooms);
    let log = RedbLog::open(dir, retain, 64 << 20, false).map_err(|e| e.to_string())?;
    let names: Vec<Arc<str>> = (0..rooms).map(|r| Arc::from(format!("room{r}"))).collect();
    let from: Arc<str> = Arc::from("filler");
    let text: Arc<str> = Arc::from("x".repeat(64));
    let started = Instant::now();
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..messages {
        let room = n % rooms;
        batch.push(Append {
            room: names[room as usize].clone(),
            epoch: 1 + room,
            entry: Arc::new(Entry {
                offset: n / rooms + 1,
                id: n + 1,
                ts_us: n,
                from: from.clone(),
                text: text.clone(),
            }),
        });
        if batch.len() == BATCH || n + 1 == messages {
            log.write(&batch, n + 1 == messages, n + 2).map_err(|e| e.to_string())?;
            batch.clear();
        }
    }
    log.close(messages + 1).map_err(|e| e.to_string())?;
    eprintln!(
        "filled {} with {messages} messages in {rooms} rooms in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn time(bin: &str, config: &str, addr: SocketAddr, room: &str, crash: bool) -> Result<(), String> {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["-c", config])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("{bin}: {e}"))?;
    let result = (|| {
        let listening = loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("the server exited at start ({status})"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                break started.elapsed();
            }
            if started.elapsed() > START_LIMIT {
                return Err("the server did not listen within 300 s".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let mut client = ChatClient::connect(addr, START_LIMIT).map_err(|e| e.to_string())?;
        client.login("restart-probe", None).map_err(|e| e.to_string())?;
        let joined = client.join(room).map_err(|e| e.to_string())?;
        let first_join = started.elapsed();
        Ok(format!(
            "{{\"listening_s\": {:.4}, \"first_join_s\": {:.4}, \"history\": {}, \"last_offset\": {}}}",
            listening.as_secs_f64(),
            first_join.as_secs_f64(),
            joined.history.len(),
            joined.last_offset
        ))
    })();
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe {
        libc::kill(child.id() as libc::pid_t, if crash { libc::SIGKILL } else { libc::SIGTERM });
    }
    let _ = child.wait();
    println!("{}", result?);
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let result =
        match argv.as_slice() {
            ["fill", dir, messages, rooms] => match (messages.parse(), rooms.parse()) {
                (Ok(m), Ok(r)) => fill(Path::new(dir), m, r),
                _ => Err("MESSAGES and ROOMS are numbers".into()),
            },
            ["time", bin, config, addr, room, rest @ ..] if rest.is_empty() || rest == ["--crash"] => {
                match addr.parse() {
                    Ok(a) => time(bin, config, a, room, !rest.is_empty()),
                    Err(e) => Err(format!("{addr}: {e}")),
                }
            }
            _ => Err("usage: room_log_restart fill DIR MESSAGES ROOMS | time BIN CONFIG ADDR ROOM [--crash]"
                .into()),
        };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("room_log_restart: {e}");
            ExitCode::FAILURE
        }
    }
}
