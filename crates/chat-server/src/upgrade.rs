//! Binary upgrade on the fly, the nginx way: on SIGUSR2 the running server
//! starts a new process of itself (the binary now at the path it was
//! started from, with the same arguments), handing it the listening sockets.
//! The successor checks its config and starts serving on them, then says so
//! on a pipe; only then does the old process stop accepting, tell its
//! clients it is going away, and drain. A successor that fails (bad config,
//! bad binary, no word within the timeout) is reaped, and the old process
//! goes on serving as if nothing happened.

use crate::listeners::{to_env, BoundListener, LISTENERS_ENV};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The descriptor on which a successor announces it is serving.
pub const READY_FD_ENV: &str = "CHAT_SERVER_READY_FD";
const READY: &[u8] = b"ready\n";

/// How the process was started, recorded at start: an upgrade re-executes
/// this, so replacing the binary on disk and sending SIGUSR2 runs the new one.
#[derive(Clone, Debug)]
pub struct Invocation {
    /// The executable's path.
    pub exe: PathBuf,
    /// The arguments after the program name.
    pub args: Vec<OsString>,
}

impl Invocation {
    /// This process's invocation.
    pub fn current() -> io::Result<Invocation> {
        Ok(Invocation { exe: std::env::current_exe()?, args: std::env::args_os().skip(1).collect() })
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are new and ours.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A successor being started.
pub struct Successor {
    /// The new process.
    pub child: Child,
    ready: File,
}

/// Starts a successor that inherits `listeners`.
pub fn spawn(invocation: &Invocation, listeners: &[BoundListener]) -> io::Result<Successor> {
    let (read_end, write_end) = pipe()?;
    let inherit: Vec<RawFd> =
        listeners.iter().map(|l| l.listener.as_raw_fd()).chain([write_end.as_raw_fd()]).collect();
    let mut cmd = Command::new(&invocation.exe);
    cmd.args(&invocation.args)
        .env(LISTENERS_ENV, to_env(listeners))
        .env(READY_FD_ENV, write_end.as_raw_fd().to_string());
    // SAFETY: only fcntl, which is async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                // Keep these across exec; everything else stays close-on-exec.
                if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(write_end); // now only the child holds it: EOF means it exited
    Ok(Successor { child, ready: File::from(read_end) })
}

impl Successor {
    /// Waits until the successor says it is serving (`Ok`), or fails: it
    /// exited, closed the pipe, or said nothing within `timeout`. On failure
    /// the successor is killed and reaped.
    pub fn wait_ready(mut self, timeout: Duration) -> Result<u32, String> {
        let pid = self.child.id();
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(format!("new process {pid} did not report ready within {timeout:?}"));
            }
            let mut pfd = libc::pollfd { fd: self.ready.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break Err(format!("waiting for the new process: {e}"));
            }
            if n == 0 {
                continue;
            }
            let mut buf = [0u8; 16];
            match self.ready.read(&mut buf) {
                Ok(0) => break Err(self.exit_reason()),
                Ok(k) => {
                    got.extend_from_slice(&buf[..k]);
                    if got.starts_with(READY) {
                        break Ok(pid);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(format!("waiting for the new process: {e}")),
            }
        };
        if result.is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        } else {
            // Reap it when it exits, so it never lingers as a zombie of ours.
            std::thread::spawn(move || self.child.wait());
        }
        result
    }

    fn exit_reason(&mut self) -> String {
        let pid = self.child.id();
        // The pipe closed: the child exited or is about to.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("new process {pid} exited ({status}) before it was ready");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        format!("new process {pid} closed its ready pipe without starting")
    }
}

/// In a successor: tells the predecessor we are serving. Call once the
/// listeners are being served. Does nothing in a process started normally.
pub fn notify_ready(fd: Option<RawFd>) {
    let Some(fd) = fd else { return };
    // SAFETY: the descriptor was handed to us for this one write; we own it.
    let mut f = unsafe { File::from_raw_fd(fd) };
    if let Err(e) = f.write_all(READY) {
        log::error!("cannot tell the old process we are ready: {e}");
    }
}

/// Reads and clears [`READY_FD_ENV`]. Call before starting any thread.
pub fn take_ready_fd() -> Option<RawFd> {
    let value = std::env::var(READY_FD_ENV).ok()?;
    std::env::remove_var(READY_FD_ENV);
    let fd = value.parse::<RawFd>().ok().filter(|&fd| fd > 2)?;
    // Not to be inherited by a successor of ours.
    // SAFETY: fcntl on a descriptor number; harmless if it is not open.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    Some(fd)
}

/// A pid file that follows nginx's upgrade dance: renamed to `.oldbin`
/// while a successor starts, restored if it fails.
#[derive(Clone, Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's pid to `path`.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        std::fs::write(path, format!("{}\n", std::process::id()))?;
        Ok(PidFile { path: path.to_path_buf() })
    }

    fn oldbin(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".oldbin");
        PathBuf::from(p)
    }

    /// Before an upgrade: the pid file becomes `<path>.oldbin`.
    pub fn to_oldbin(&self) -> io::Result<()> {
        std::fs::rename(&self.path, self.oldbin())
    }

    /// After a failed upgrade: back to `<path>`.
    pub fn restore(&self) -> io::Result<()> {
        std::fs::rename(self.oldbin(), &self.path)
    }

    /// On exit: removes our file (`<path>.oldbin` after an upgrade).
    pub fn remove(&self, upgraded: bool) {
        let _ = std::fs::remove_file(if upgraded { self.oldbin() } else { self.path.clone() });
    }
}
