//! The one thread that writes room logs: group commit for every event loop.
//!
//! Loops hand appends over a bounded channel and go on; the writer takes
//! whatever has queued up while it was busy, writes it in one transaction
//! and, as the fsync policy says, makes it durable with one fsync. Then it
//! reports the batch (with each append's token) to a callback, which
//! publishes the messages and acknowledges their senders. A full channel
//! (the disk cannot keep up) is an error for the sender, never a wait.

use super::{Append, RoomLog, StoreError};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Appends one transaction may carry at most.
const MAX_BATCH: usize = 16_384;

/// When a write is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// Every batch is fsynced before it is reported: a message is
    /// acknowledged only once it is on disk.
    Always,
    /// Batches are written at once and fsynced at most this long after:
    /// a crash may lose the last interval (and gives its rooms new epochs).
    Interval(Duration),
}

/// A batch the writer has finished with.
pub struct Committed<T> {
    /// The appends, in the order they were handed over, with their tokens.
    pub appends: Vec<(Append, T)>,
    /// Whether they are stored (all of them) or not (none).
    pub result: Result<(), StoreError>,
    /// Whether they are durable now (always true under `Always`).
    pub durable: bool,
}

/// Counters of the writer, for `/metrics`.
#[derive(Default, Debug)]
pub struct WriterStats {
    /// Messages stored.
    pub appends: AtomicU64,
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Durable commits (fsyncs).
    pub fsyncs: AtomicU64,
    /// Writes that failed (their messages got error replies).
    pub failures: AtomicU64,
    /// Appends refused because the queue was full.
    pub overflows: AtomicU64,
}

enum Command<T> {
    Append(Append, T),
    /// Make everything so far durable, then answer.
    Sync(Sender<Result<(), StoreError>>),
    /// Write what is queued, close the log, answer and stop.
    Close(Sender<Result<(), StoreError>>),
}

/// The handle loops use to append; cloneable, safe from any thread.
pub struct LogWriter<T> {
    tx: Sender<Command<T>>,
    stats: Arc<WriterStats>,
}

impl<T> Clone for LogWriter<T> {
    fn clone(&self) -> Self {
        LogWriter { tx: self.tx.clone(), stats: self.stats.clone() }
    }
}

/// Why an append was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendError {
    /// The queue is full: the disk is not keeping up.
    Overloaded,
    /// The writer has stopped (the log was closed or handed over).
    Closed,
}

impl<T: Send + 'static> LogWriter<T> {
    /// Starts the writer thread over `log`, with a queue of `capacity`
    /// appends. `next_id` is read at each commit and stored, so that ids
    /// never repeat. `on_commit` runs on the writer thread after each batch.
    pub fn start(
        log: Arc<dyn RoomLog>,
        policy: FsyncPolicy,
        capacity: usize,
        next_id: Arc<AtomicU64>,
        on_commit: impl FnMut(Committed<T>) + Send + 'static,
    ) -> std::io::Result<(LogWriter<T>, JoinHandle<()>)> {
        let (tx, rx) = bounded(capacity.max(1));
        let stats = Arc::new(WriterStats::default());
        let run =
            Run { log, policy, rx, next_id, stats: stats.clone(), dirty: false, last_sync: Instant::now() };
        let thread = std::thread::Builder::new().name("room-log".into()).spawn(move || run.run(on_commit))?;
        Ok((LogWriter { tx, stats }, thread))
    }

    /// Queues an append; never blocks.
    pub fn append(&self, append: Append, token: T) -> Result<(), AppendError> {
        match self.tx.try_send(Command::Append(append, token)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.stats.overflows.fetch_add(1, Ordering::Relaxed);
                Err(AppendError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => Err(AppendError::Closed),
        }
    }

    /// Waits until everything queued so far is durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.call(Command::Sync)
    }

    /// Writes what is queued, closes the log (releasing its file) and
    /// stops the writer; later appends get [`AppendError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        self.call(Command::Close)
    }

    fn call(&self, cmd: fn(Sender<Result<(), StoreError>>) -> Command<T>) -> Result<(), StoreError> {
        let (tx, rx) = bounded(1);
        self.tx.send(cmd(tx)).map_err(|_| StoreError("the room log is closed".into()))?;
        rx.recv().unwrap_or_else(|_| Err(StoreError("the room log writer stopped".into())))
    }

    /// The writer's counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }
}

struct Run<T> {
    log: Arc<dyn RoomLog>,
    policy: FsyncPolicy,
    rx: Receiver<Command<T>>,
    next_id: Arc<AtomicU64>,
    stats: Arc<WriterStats>,
    /// Written but not yet durable.
    dirty: bool,
    last_sync: Instant,
}

impl<T> Run<T> {
    fn run(mut self, mut on_commit: impl FnMut(Committed<T>)) {
        loop {
            let first = match (self.policy, self.dirty) {
                (FsyncPolicy::Interval(every), true) => {
                    let due = self.last_sync + every;
                    match self.rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Ok(cmd) => cmd,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(e) = self.sync() {
                                log::error!("room log: fsync failed: {e}");
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                _ => match self.rx.recv() {
                    Ok(cmd) => cmd,
                    Err(_) => break,
                },
            };
            let mut batch = Vec::new();
            let mut after = None;
            match first {
                Command::Append(a, t) => batch.push((a, t)),
                other => after = Some(other),
            }
            while after.is_none() && batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(Command::Append(a, t)) => batch.push((a, t)),
                    Ok(other) => after = Some(other),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                on_commit(self.write(batch));
            }
            match after {
                Some(Command::Sync(reply)) => {
                    let _ = reply.send(self.sync());
                }
                Some(Command::Close(reply)) => {
                    // Appends queued behind the close: write them too, so
                    // that every one gets its answer.
                    let mut rest = Vec::new();
                    while let Ok(cmd) = self.rx.try_recv() {
                        match cmd {
                            Command::Append(a, t) => rest.push((a, t)),
                            Command::Sync(r) | Command::Close(r) => {
                                let _ = r.send(Ok(()));
                            }
                        }
                    }
                    if !rest.is_empty() {
                        on_commit(self.write(rest));
                    }
                    let next_id = self.next_id.load(Ordering::Acquire);
                    let _ = reply.send(self.log.close(next_id));
                    return;
                }
                _ => {}
            }
        }
        // Every handle dropped: close cleanly all the same.
        let _ = self.log.close(self.next_id.load(Ordering::Acquire));
    }

    fn write(&mut self, appends: Vec<(Append, T)>) -> Committed<T> {
        let durable = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(every) => self.last_sync.elapsed() >= every,
        };
        let batch: Vec<Append> = appends.iter().map(|(a, _)| a.clone()).collect();
        let result = self.log.write(&batch, durable, self.next_id.load(Ordering::Acquire));
        match &result {
            Ok(()) => {
                self.stats.appends.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                if durable {
                    self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                    self.last_sync = Instant::now();
                    self.dirty = false;
                } else {
                    self.dirty = true;
                }
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                log::error!("room log: a write of {} messages failed: {e}", batch.len());
            }
        }
        Committed { appends, result, durable }
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let r = self.log.sync(self.next_id.load(Ordering::Acquire));
        if r.is_ok() {
            self.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.last_sync = Instant::now();
            self.dirty = false;
        }
        r
    }
}
