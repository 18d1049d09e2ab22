//! A room log in a redb file (`DIR/rooms.redb`): durable, crash-safe, one
//! writer process at a time (redb locks the file; see the upgrade
//! hand-over in `main.rs`).
//!
//! Tables: `rooms` (name -> epoch, last offset, trimmed offset), `messages`
//! ((room, offset) -> id, timestamp, sender, text) and `meta` (the id
//! floor, whether the last run closed cleanly and with which fsync policy).

use super::{new_epoch, Append, Entry, RoomLog, RoomMeta, StoreError};
use redb::{
    Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};
use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

const ROOMS: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("rooms");
const MESSAGES: TableDefinition<(&str, u64), (u64, u64, &str, &str)> = TableDefinition::new("messages");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// `meta` keys.
const NEXT_ID: &str = "next_id";
const CLEAN: &str = "clean";
const INTERVAL: &str = "interval";

/// Ids skipped after a crash: ids handed out after the last durable write
/// (direct messages, messages whose write was lost) must not come back.
const ID_GAP_AFTER_CRASH: u64 = 1 << 24;

/// The file inside the data directory.
pub const FILE_NAME: &str = "rooms.redb";

/// Why a log could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Another process holds the file (a running server, or the one being
    /// upgraded): try again once it let go.
    Locked(PathBuf),
    /// Anything else, said in full (names the path).
    Failed(String),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Locked(p) => write!(f, "{}: in use by another process", p.display()),
            OpenError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for OpenError {}

/// Room logs in a redb database file.
pub struct RedbLog {
    path: PathBuf,
    cache_bytes: usize,
    retain: u64,
    first_id: u64,
    /// `None` after a failed write until it is reopened.
    db: RwLock<Option<Arc<Database>>>,
    /// Set when the open found an unclean shutdown.
    recovered: bool,
    /// Set by `close`: the file belongs to the next process now.
    closed: AtomicBool,
}

fn err(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{what}: {e}"))
}

fn open_db(path: &Path, cache_bytes: usize) -> Result<Database, OpenError> {
    // redb may panic on a file altered behind its back: a panic here is a
    // corrupt file, said as such, not a crash of the server.
    let opened = panic::catch_unwind(AssertUnwindSafe(|| {
        Database::builder().set_cache_size(cache_bytes).create(path)
    }));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(OpenError::Locked(path.to_path_buf())),
        Ok(Err(e)) => Err(OpenError::Failed(format!("{}: cannot open the room log: {e}", path.display()))),
        Err(_) => Err(OpenError::Failed(format!("{}: the room log file is corrupt", path.display()))),
    }
}

impl RedbLog {
    /// Opens (creating it if needed) the log in directory `dir`, keeping
    /// `retain` messages per room and at most `cache_bytes` of pages in
    /// memory. `interval`: this run writes without an fsync per batch; if
    /// the previous run did so and did not close cleanly, its last writes
    /// may be lost, so every room gets a new epoch.
    pub fn open(dir: &Path, retain: u64, cache_bytes: usize, interval: bool) -> Result<RedbLog, OpenError> {
        if dir.exists() && !dir.is_dir() {
            return Err(OpenError::Failed(format!("{}: not a directory", dir.display())));
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            OpenError::Failed(format!("{}: cannot create the data directory: {e}", dir.display()))
        })?;
        let path = dir.join(FILE_NAME);
        let db = open_db(&path, cache_bytes)?;
        let failed = |e: StoreError| OpenError::Failed(format!("{}: {e}", path.display()));
        let (first_id, recovered) = Self::start(&db, interval).map_err(failed)?;
        Ok(RedbLog {
            path,
            cache_bytes,
            retain: retain.max(1),
            first_id,
            db: RwLock::new(Some(Arc::new(db))),
            recovered,
            closed: AtomicBool::new(false),
        })
    }

    /// Reads how the last run ended, and marks this one as running.
    fn start(db: &Database, interval: bool) -> Result<(u64, bool), StoreError> {
        let run = panic::catch_unwind(AssertUnwindSafe(|| -> Result<(u64, bool), StoreError> {
            let txn = db.begin_write().map_err(|e| err("begin", e))?;
            let (first_id, recovered) = {
                let mut meta = txn.open_table(META).map_err(|e| err("meta", e))?;
                let get = |m: &redb::Table<&str, u64>, k: &str| -> Result<Option<u64>, StoreError> {
                    Ok(m.get(k).map_err(|e| err("meta", e))?.map(|v| v.value()))
                };
                let next_id = get(&meta, NEXT_ID)?;
                let clean = get(&meta, CLEAN)?.is_none_or(|c| c == 1);
                let was_interval = get(&meta, INTERVAL)? == Some(1);
                let first_id = match next_id {
                    None => 1,
                    Some(n) if clean => n,
                    Some(n) => n.saturating_add(ID_GAP_AFTER_CRASH),
                };
                meta.insert(NEXT_ID, first_id).map_err(|e| err("meta", e))?;
                meta.insert(CLEAN, 0).map_err(|e| err("meta", e))?;
                meta.insert(INTERVAL, u64::from(interval)).map_err(|e| err("meta", e))?;
                (first_id, !clean && was_interval)
            };
            if recovered {
                // Writes of the crashed run after its last fsync are gone:
                // positions clients saw there mean nothing now.
                let mut rooms = txn.open_table(ROOMS).map_err(|e| err("rooms", e))?;
                let names: Vec<String> = rooms
                    .iter()
                    .map_err(|e| err("rooms", e))?
                    .filter_map(|r| r.ok().map(|(k, _)| k.value().to_string()))
                    .collect();
                for name in names {
                    let old = rooms.get(name.as_str()).map_err(|e| err("rooms", e))?.map(|v| v.value());
                    if let Some((_, last, trimmed)) = old {
                        rooms
                            .insert(name.as_str(), (new_epoch(), last, trimmed))
                            .map_err(|e| err("rooms", e))?;
                    }
                }
            }
            txn.commit().map_err(|e| err("commit", e))?;
            Ok((first_id, recovered))
        }));
        run.unwrap_or_else(|_| Err(StoreError("the room log file is corrupt".into())))
    }

    /// Checks, without changing anything, that a log in `dir` can be used:
    /// an existing file must open (read-only) and read; a missing one must be
    /// creatable. A file in use by a running server is fine. Returns a note
    /// for the operator.
    pub fn check(dir: &Path) -> Result<String, OpenError> {
        if dir.exists() && !dir.is_dir() {
            return Err(OpenError::Failed(format!("{}: not a directory", dir.display())));
        }
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            probe(dir).map_err(|e| {
                OpenError::Failed(format!("{}: cannot create the room log there: {e}", dir.display()))
            })?;
            return Ok(format!("{}: will be created", path.display()));
        }
        let opened =
            panic::catch_unwind(AssertUnwindSafe(|| match Database::builder().open_read_only(&path) {
                Ok(db) => {
                    let txn = db.begin_read().map_err(|e| e.to_string())?;
                    if let Ok(rooms) = txn.open_table(ROOMS) {
                        rooms.len().map_err(|e| e.to_string())?;
                    }
                    Ok(None)
                }
                Err(DatabaseError::DatabaseAlreadyOpen) => Ok(Some("in use by a running server")),
                Err(DatabaseError::RepairAborted) => {
                    Ok(Some("the last run did not stop cleanly; it is repaired at start"))
                }
                Err(e) => Err(e.to_string()),
            }));
        let fail = |why: String| OpenError::Failed(format!("{}: {why}", path.display()));
        match opened {
            Ok(Ok(Some(note))) => Ok(format!("{}: {note}", path.display())),
            Ok(Ok(None)) if !writable(dir) => {
                Err(OpenError::Failed(format!("{}: not writable", dir.display())))
            }
            Ok(Ok(None)) => Ok(format!("{}: ok", path.display())),
            Ok(Err(e)) => Err(fail(format!("cannot open the room log: {e}"))),
            Err(_) => Err(fail("the room log file is corrupt".into())),
        }
    }

    /// True when the open found that the previous run crashed while
    /// writing without fsync (every room got a new epoch).
    pub fn recovered_from_crash(&self) -> bool {
        self.recovered
    }

    /// The database, reopened if a failed write dropped it.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError(format!(
                "{}: closed (handed over to another process)",
                self.path.display()
            )));
        }
        if let Some(db) = self.db.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(db.clone());
        }
        let mut slot = self.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let db = Arc::new(open_db(&self.path, self.cache_bytes).map_err(|e| StoreError(e.to_string()))?);
        *slot = Some(db.clone());
        Ok(db)
    }

    /// Drops the database after a failed write: redb refuses further
    /// writes on a handle that saw an I/O error; a reopen recovers.
    fn drop_db(&self) {
        *self.db.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs a read, turning a panic on a corrupt page into an error.
    fn reading<R>(&self, f: impl FnOnce(&Database) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let db = self.db()?;
        panic::catch_unwind(AssertUnwindSafe(|| f(&db)))
            .unwrap_or_else(|_| Err(StoreError(format!("{}: corrupt page", self.path.display()))))
    }

    /// Up to `limit` messages of `room` from offset `from` on: oldest
    /// first, or newest first when `newest_first`.
    fn scan(
        &self,
        room: &str,
        from: u64,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        self.reading(|db| {
            let txn = db.begin_read().map_err(|e| err("begin", e))?;
            let messages = match txn.open_table(MESSAGES) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(err("messages", e)),
            };
            let range = messages.range((room, from)..=(room, u64::MAX)).map_err(|e| err("read", e))?;
            let rows: Box<dyn Iterator<Item = _>> =
                if newest_first { Box::new(range.rev()) } else { Box::new(range) };
            let mut out = Vec::new();
            for row in rows.take(limit) {
                let (k, v) = row.map_err(|e| err("read", e))?;
                out.push(entry((k.value().1, v.value())));
            }
            Ok(out)
        })
    }

    fn write_batch(
        &self,
        db: &Database,
        batch: &[Append],
        durable: bool,
        next_id: u64,
    ) -> Result<(), StoreError> {
        let mut txn = db.begin_write().map_err(|e| err("begin", e))?;
        txn.set_durability(if durable { Durability::Immediate } else { Durability::None })
            .map_err(|e| err("durability", e))?;
        {
            let mut rooms = txn.open_table(ROOMS).map_err(|e| err("rooms", e))?;
            let mut messages = txn.open_table(MESSAGES).map_err(|e| err("messages", e))?;
            let mut touched: HashMap<&str, (u64, u64, u64)> = HashMap::new();
            for a in batch {
                let room: &str = &a.room;
                let row = match touched.get(room) {
                    Some(row) => *row,
                    None => rooms
                        .get(room)
                        .map_err(|e| err("rooms", e))?
                        .map(|v| v.value())
                        .unwrap_or((a.epoch, 0, 0)),
                };
                let e = &a.entry;
                messages
                    .insert((room, e.offset), (e.id, e.ts_us, &*e.from, &*e.text))
                    .map_err(|e| err("messages", e))?;
                touched.insert(room, (row.0, row.1.max(e.offset), row.2));
            }
            for (room, (epoch, last, mut trimmed)) in touched {
                if last.saturating_sub(trimmed) > self.retain {
                    let keep_from = last - self.retain + 1;
                    messages
                        .retain_in((room, trimmed)..(room, keep_from), |_, _| false)
                        .map_err(|e| err("trim", e))?;
                    trimmed = keep_from - 1;
                }
                rooms.insert(room, (epoch, last, trimmed)).map_err(|e| err("rooms", e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| err("meta", e))?;
            meta.insert(NEXT_ID, next_id).map_err(|e| err("meta", e))?;
        }
        txn.commit().map_err(|e| err("commit", e))
    }
}

/// Whether this process may create files in `dir` (by trying: permission
/// bits do not stop root, a read-only mount or /proc does).
fn writable(dir: &Path) -> bool {
    probe(dir).is_ok()
}

/// Creates `dir` (and missing parents) and a file in it, then removes what
/// it created.
fn probe(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.exists() {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => d = p,
            _ => break,
        }
    }
    let result = std::fs::create_dir_all(dir).and_then(|()| {
        let f = dir.join(format!(".chat-server-check-{}", std::process::id()));
        std::fs::write(&f, b"")?;
        std::fs::remove_file(&f)
    });
    for m in &missing {
        let _ = std::fs::remove_dir(m);
    }
    result
}

fn entry((offset, (id, ts_us, from, text)): (u64, (u64, u64, &str, &str))) -> Entry {
    Entry { offset, id, ts_us, from: from.into(), text: text.into() }
}

impl RoomLog for RedbLog {
    fn room(&self, name: &str) -> Result<Option<RoomMeta>, StoreError> {
        self.reading(|db| {
            let txn = db.begin_read().map_err(|e| err("begin", e))?;
            let rooms = match txn.open_table(ROOMS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(err("rooms", e)),
            };
            let row = rooms.get(name).map_err(|e| err("rooms", e))?.map(|v| v.value());
            Ok(row.map(|(epoch, last_offset, trimmed)| RoomMeta { epoch, last_offset, trimmed }))
        })
    }

    fn read(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Entry>, StoreError> {
        if after == u64::MAX || limit == 0 {
            return Ok(Vec::new());
        }
        self.scan(room, after + 1, limit, false)
    }

    fn read_last(&self, room: &str, n: usize) -> Result<Vec<Entry>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut out = self.scan(room, 0, n, true)?;
        out.reverse();
        Ok(out)
    }

    fn write(&self, batch: &[Append], durable: bool, next_id: u64) -> Result<(), StoreError> {
        let db = self.db()?;
        let r = panic::catch_unwind(AssertUnwindSafe(|| self.write_batch(&db, batch, durable, next_id)))
            .unwrap_or_else(|_| Err(StoreError("the room log write panicked (corrupt file?)".into())));
        if r.is_err() {
            drop(db);
            self.drop_db();
        }
        r
    }

    fn sync(&self, next_id: u64) -> Result<(), StoreError> {
        self.write(&[], true, next_id)
    }

    fn first_id(&self) -> u64 {
        self.first_id
    }

    fn room_names(&self, limit: usize) -> Result<(usize, Vec<String>), StoreError> {
        self.reading(|db| {
            let txn = db.begin_read().map_err(|e| err("begin", e))?;
            let rooms = match txn.open_table(ROOMS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, Vec::new())),
                Err(e) => return Err(err("rooms", e)),
            };
            let total = rooms.len().map_err(|e| err("rooms", e))? as usize;
            let mut names = Vec::new();
            for row in rooms.iter().map_err(|e| err("rooms", e))?.take(limit) {
                let (k, _) = row.map_err(|e| err("rooms", e))?;
                names.push(k.value().to_string());
            }
            Ok((total, names))
        })
    }

    fn close(&self, next_id: u64) -> Result<(), StoreError> {
        let db = self.db()?;
        let txn = db.begin_write().map_err(|e| err("begin", e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| err("meta", e))?;
            meta.insert(NEXT_ID, next_id).map_err(|e| err("meta", e))?;
            meta.insert(CLEAN, 1).map_err(|e| err("meta", e))?;
        }
        txn.commit().map_err(|e| err("commit", e))?;
        drop(db);
        self.closed.store(true, Ordering::Release);
        // Dropping the last handle releases the file lock for a successor.
        self.drop_db();
        Ok(())
    }

    fn describe(&self) -> String {
        format!("{} (redb)", self.path.display())
    }
}
