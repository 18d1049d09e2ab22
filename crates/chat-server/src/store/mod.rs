//! Room logs: where each room's messages are kept, in offset order, so that
//! history outlives memory, restarts and upgrades.
//!
//! A [`RoomLog`] is the storage: [`MemoryLog`] (nothing survives the
//! process) and [`RedbLog`] (a redb file: durable, one writer process).
//! Writes reach it through one [`LogWriter`] thread that groups the appends
//! of every event loop into one transaction (and at most one fsync) per
//! batch, so the loops never wait for the disk; reads (a room's metadata
//! and recent messages when it is loaded, a resume from an older position)
//! are made by the callers directly.
//!
//! ```
//! use chat_server::store::{Append, Entry, MemoryLog, RoomLog};
//! use std::sync::Arc;
//!
//! let log = MemoryLog::new(1_000);
//! let entry = Entry { offset: 1, id: 7, ts_us: 0, from: "alice".into(), text: "hi".into() };
//! log.write(&[Append { room: "lobby".into(), epoch: 42, entry: Arc::new(entry) }], true, 8)?;
//! let meta = log.room("lobby")?.expect("stored");
//! assert_eq!((meta.epoch, meta.last_offset), (42, 1));
//! assert_eq!(log.read("lobby", 0, 10)?[0].text.as_ref(), "hi");
//! # Ok::<(), chat_server::store::StoreError>(())
//! ```

mod memory;
mod redb_log;
mod writer;

pub use memory::MemoryLog;
pub use redb_log::OpenError;
pub use redb_log::RedbLog;
pub use writer::{AppendError, Committed, FsyncPolicy, LogWriter, WriterStats};

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// A message in a room's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the room's log: 1, 2, 3, ... within an epoch, never
    /// reused (an offset whose write failed is skipped, not handed out again).
    pub offset: u64,
    /// Server-wide message id.
    pub id: u64,
    /// Server timestamp, unix microseconds.
    pub ts_us: u64,
    /// Sender's nickname.
    pub from: Arc<str>,
    /// Text.
    pub text: Arc<str>,
}

impl Entry {
    /// Bytes the entry holds on the heap, for memory bounds.
    pub fn heap_size(&self) -> usize {
        self.from.len() + self.text.len() + std::mem::size_of::<Entry>()
    }
}

/// What a log knows of a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomMeta {
    /// Changes only when the room's stored log was lost.
    pub epoch: u64,
    /// Offset of the latest stored message.
    pub last_offset: u64,
    /// Every offset up to this one has been dropped by retention: a resume
    /// from an older position cannot be served.
    pub trimmed: u64,
}

/// One message to store.
#[derive(Clone, Debug)]
pub struct Append {
    /// The room.
    pub room: Arc<str>,
    /// The room's epoch, recorded when this append creates the room.
    pub epoch: u64,
    /// The message.
    pub entry: Arc<Entry>,
}

/// A log that cannot do what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// Storage for room logs. Every method may be called from any thread;
/// writes come from one [`LogWriter`] at a time.
pub trait RoomLog: Send + Sync {
    /// A room's metadata; `None` if it was never stored.
    fn room(&self, name: &str) -> Result<Option<RoomMeta>, StoreError>;

    /// Up to `limit` messages of a room with an offset above `after`,
    /// oldest first.
    fn read(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Entry>, StoreError>;

    /// The latest `n` messages of a room, oldest first.
    fn read_last(&self, room: &str, n: usize) -> Result<Vec<Entry>, StoreError>;

    /// Stores a batch atomically: all or nothing. `durable`: on disk when
    /// this returns (fsync); otherwise at the next durable write or
    /// [`RoomLog::sync`]. `next_id`: the first message id not yet handed
    /// out, kept so that ids never repeat after a restart.
    fn write(&self, batch: &[Append], durable: bool, next_id: u64) -> Result<(), StoreError>;

    /// Makes every write so far durable.
    fn sync(&self, next_id: u64) -> Result<(), StoreError>;

    /// The first message id this process may hand out.
    fn first_id(&self) -> u64;

    /// How many rooms are stored, and the names of up to `limit` of them.
    fn room_names(&self, limit: usize) -> Result<(usize, Vec<String>), StoreError>;

    /// Records a clean close (the next open will not treat the log as
    /// crashed) and releases the storage for another process.
    fn close(&self, next_id: u64) -> Result<(), StoreError>;

    /// Where the log lives, for the start-up line.
    fn describe(&self) -> String;
}

/// A fresh epoch: random, never 0 (0 is "no epoch" on the wire).
pub fn new_epoch() -> u64 {
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()),
        );
        let e = h.finish();
        if e != 0 {
            return e;
        }
    }
}

#[cfg(test)]
mod tests;
