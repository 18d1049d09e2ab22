//! A room log in memory: what `--data-dir none` runs on. Nothing survives
//! the process, so every room gets a new epoch at each start.

use super::{Append, Entry, RoomLog, RoomMeta, StoreError};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One room's retained messages.
struct Stored {
    meta: RoomMeta,
    entries: VecDeque<Entry>,
    /// Sequence of the last write, to find the stalest room when full.
    touched: u64,
}

struct Inner {
    rooms: HashMap<String, Stored>,
    writes: u64,
}

/// Room logs held in memory, each trimmed to the latest `retain` messages;
/// at most `max_rooms` rooms, the stalest forgotten first.
pub struct MemoryLog {
    retain: usize,
    max_rooms: usize,
    inner: Mutex<Inner>,
}

impl MemoryLog {
    /// Keeps the latest `retain` messages of each room, for up to 100,000
    /// rooms.
    pub fn new(retain: usize) -> MemoryLog {
        MemoryLog::with_max_rooms(retain, 100_000)
    }

    /// Keeps the latest `retain` messages of each room, and at most
    /// `max_rooms` rooms: past it, the room written to least recently is
    /// forgotten.
    pub fn with_max_rooms(retain: usize, max_rooms: usize) -> MemoryLog {
        MemoryLog {
            retain: retain.max(1),
            max_rooms: max_rooms.max(1),
            inner: Mutex::new(Inner { rooms: HashMap::new(), writes: 0 }),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl RoomLog for MemoryLog {
    fn room(&self, name: &str) -> Result<Option<RoomMeta>, StoreError> {
        Ok(self.inner().rooms.get(name).map(|r| r.meta))
    }

    fn read(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let inner = self.inner();
        let Some(r) = inner.rooms.get(room) else { return Ok(Vec::new()) };
        let start = r.entries.partition_point(|e| e.offset <= after);
        Ok(r.entries.iter().skip(start).take(limit).cloned().collect())
    }

    fn read_last(&self, room: &str, n: usize) -> Result<Vec<Entry>, StoreError> {
        let inner = self.inner();
        let Some(r) = inner.rooms.get(room) else { return Ok(Vec::new()) };
        Ok(r.entries.iter().skip(r.entries.len().saturating_sub(n)).cloned().collect())
    }

    fn write(&self, batch: &[Append], _durable: bool, _next_id: u64) -> Result<(), StoreError> {
        let mut inner = self.inner();
        for a in batch {
            inner.writes += 1;
            let touched = inner.writes;
            if !inner.rooms.contains_key(&*a.room) && inner.rooms.len() >= self.max_rooms {
                let stalest = inner.rooms.iter().min_by_key(|(_, r)| r.touched).map(|(k, _)| k.clone());
                if let Some(k) = stalest {
                    inner.rooms.remove(&k);
                }
            }
            let r = inner.rooms.entry(a.room.to_string()).or_insert_with(|| Stored {
                meta: RoomMeta { epoch: a.epoch, last_offset: 0, trimmed: 0 },
                entries: VecDeque::new(),
                touched,
            });
            r.touched = touched;
            r.meta.last_offset = r.meta.last_offset.max(a.entry.offset);
            r.entries.push_back((*a.entry).clone());
            // By offsets, as the redb log: keep those within `retain` of the last.
            let trimmed = r.meta.last_offset.saturating_sub(self.retain as u64);
            r.meta.trimmed = r.meta.trimmed.max(trimmed);
            while r.entries.front().is_some_and(|e| e.offset <= r.meta.trimmed) {
                r.entries.pop_front();
            }
        }
        Ok(())
    }

    fn sync(&self, _next_id: u64) -> Result<(), StoreError> {
        Ok(())
    }

    fn first_id(&self) -> u64 {
        1
    }

    fn room_names(&self, limit: usize) -> Result<(usize, Vec<String>), StoreError> {
        let inner = self.inner();
        Ok((inner.rooms.len(), inner.rooms.keys().take(limit).cloned().collect()))
    }

    fn close(&self, _next_id: u64) -> Result<(), StoreError> {
        Ok(())
    }

    fn describe(&self) -> String {
        "in memory (--data-dir none): nothing survives a restart".to_string()
    }
}
