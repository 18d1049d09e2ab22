//! Both logs behind the one trait, and the writer's group commit.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn e(offset: u64, text: &str) -> Arc<Entry> {
    Arc::new(Entry { offset, id: offset * 10, ts_us: offset, from: "alice".into(), text: text.into() })
}

fn append(room: &str, offset: u64) -> Append {
    Append { room: room.into(), epoch: 77, entry: e(offset, &format!("m{offset}")) }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chat-store-{name}-{}-{}", std::process::id(), new_epoch()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What every log must do.
fn behaves(log: &dyn RoomLog) {
    assert_eq!(log.room("lobby").unwrap(), None);
    assert!(log.read("lobby", 0, 10).unwrap().is_empty());
    let batch: Vec<Append> = (1..=5).map(|o| append("lobby", o)).chain([append("other", 1)]).collect();
    log.write(&batch, true, 100).unwrap();
    // Retention (3 per room here): the oldest go, the trim point moves.
    assert_eq!(log.room("lobby").unwrap(), Some(RoomMeta { epoch: 77, last_offset: 5, trimmed: 2 }));
    let offsets = |v: Vec<Entry>| v.iter().map(|e| e.offset).collect::<Vec<_>>();
    assert_eq!(offsets(log.read("lobby", 3, 10).unwrap()), vec![4, 5]);
    assert_eq!(offsets(log.read("lobby", 0, 2).unwrap()), vec![3, 4]);
    assert_eq!(offsets(log.read_last("lobby", 2).unwrap()), vec![4, 5]);
    assert_eq!(log.read("lobby", 1, 1).unwrap()[0], *e(3, "m3"));
    assert_eq!(offsets(log.read("other", 0, 10).unwrap()), vec![1]);
    log.write(&[append("lobby", 6), append("lobby", 8)], false, 101).unwrap();
    let meta = log.room("lobby").unwrap().unwrap();
    assert_eq!((meta.last_offset, meta.trimmed), (8, 5));
    assert_eq!(offsets(log.read("lobby", 0, 10).unwrap()), vec![6, 8], "a skipped offset stays skipped");
    let (total, names) = log.room_names(10).unwrap();
    assert_eq!(total, 2);
    let mut names = names;
    names.sort();
    assert_eq!(names, vec!["lobby".to_string(), "other".to_string()]);
}

#[test]
fn the_memory_log_keeps_rooms_in_order_and_bounded() {
    behaves(&MemoryLog::new(3));
    let log = MemoryLog::with_max_rooms(3, 2);
    log.write(&[append("a", 1)], true, 2).unwrap();
    log.write(&[append("b", 1)], true, 2).unwrap();
    log.write(&[append("a", 2)], true, 2).unwrap();
    log.write(&[append("c", 1)], true, 2).unwrap();
    assert!(log.room("b").unwrap().is_none(), "the stalest room is forgotten");
    assert!(log.room("a").unwrap().is_some());
}

#[test]
fn the_redb_log_keeps_rooms_in_order_across_reopens() {
    let dir = temp_dir("redb");
    {
        let log = RedbLog::open(&dir, 3, 1 << 20, false).unwrap();
        assert_eq!(log.first_id(), 1);
        behaves(&log);
        log.close(500).unwrap();
        assert!(log.read("lobby", 0, 1).is_err(), "closed: handed over");
    }
    let log = RedbLog::open(&dir, 3, 1 << 20, false).unwrap();
    assert_eq!(log.first_id(), 500, "ids continue after a clean close");
    assert!(!log.recovered_from_crash());
    assert_eq!(log.room("lobby").unwrap().map(|m| (m.epoch, m.last_offset)), Some((77, 8)));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_crash_skips_ids_and_under_interval_changes_epochs() {
    let dir = temp_dir("crash");
    {
        let log = RedbLog::open(&dir, 100, 1 << 20, true).unwrap();
        log.write(&[append("lobby", 1)], true, 10).unwrap();
        // Dropped without close: as after kill -9.
    }
    let log = RedbLog::open(&dir, 100, 1 << 20, false).unwrap();
    assert!(log.first_id() >= 10 + (1 << 24), "ids of the crashed run never come back");
    assert!(log.recovered_from_crash(), "the crashed run wrote without fsync");
    let meta = log.room("lobby").unwrap().unwrap();
    assert_ne!(meta.epoch, 77, "a new epoch: its last writes may be lost");
    assert_eq!(meta.last_offset, 1, "what was durable is there");
    drop(log);
    // A crash under "always" loses nothing: the epoch stays.
    let log = RedbLog::open(&dir, 100, 1 << 20, false).unwrap();
    let epoch = log.room("lobby").unwrap().unwrap().epoch;
    drop(log);
    let log = RedbLog::open(&dir, 100, 1 << 20, false).unwrap();
    assert!(!log.recovered_from_crash());
    assert_eq!(log.room("lobby").unwrap().unwrap().epoch, epoch);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_second_process_waits_for_the_file() {
    let dir = temp_dir("lock");
    let log = RedbLog::open(&dir, 100, 1 << 20, false).unwrap();
    assert!(matches!(RedbLog::open(&dir, 100, 1 << 20, false), Err(OpenError::Locked(_))));
    log.close(1).unwrap();
    drop(log);
    assert!(RedbLog::open(&dir, 100, 1 << 20, false).is_ok(), "free once closed");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_data_directories_are_named() {
    let dir = temp_dir("bad");
    let file = dir.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let e = RedbLog::open(&file, 100, 1 << 20, false).err().unwrap().to_string();
    assert!(e.contains("not a directory") && e.contains("plain-file"), "{e}");
    let corrupt = dir.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::write(corrupt.join(redb_log::FILE_NAME), vec![0x5a; 64 << 10]).unwrap();
    let e = RedbLog::open(&corrupt, 100, 1 << 20, false).err().unwrap().to_string();
    assert!(e.contains("rooms.redb"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_writer_groups_appends_and_reports_them_in_order() {
    let log: Arc<dyn RoomLog> = Arc::new(MemoryLog::new(1000));
    let (tx, rx) = crossbeam_channel::unbounded();
    let next_id = Arc::new(AtomicU64::new(1));
    let (writer, thread) =
        LogWriter::start(log.clone(), FsyncPolicy::Always, 10_000, next_id, move |c: Committed<u64>| {
            assert!(c.result.is_ok() && c.durable);
            tx.send(c.appends.iter().map(|(_, t)| *t).collect::<Vec<_>>()).unwrap();
        })
        .unwrap();
    for o in 1..=2000 {
        writer.append(append("r", o), o).unwrap();
    }
    writer.sync().unwrap();
    let mut seen = Vec::new();
    while let Ok(batch) = rx.recv_timeout(Duration::from_millis(100)) {
        seen.extend(batch);
    }
    assert_eq!(seen, (1..=2000).collect::<Vec<_>>(), "every append reported once, in order");
    assert_eq!(log.room("r").unwrap().unwrap().last_offset, 2000);
    let stats = writer.stats();
    assert!(stats.commits.load(Ordering::Relaxed) < 2000, "grouped into fewer transactions");
    writer.close().unwrap();
    assert_eq!(writer.append(append("r", 2001), 0), Err(AppendError::Closed));
    thread.join().unwrap();
}

#[test]
fn the_writer_refuses_instead_of_waiting_when_full() {
    struct Slow;
    impl RoomLog for Slow {
        fn room(&self, _: &str) -> Result<Option<RoomMeta>, StoreError> {
            Ok(None)
        }
        fn read(&self, _: &str, _: u64, _: usize) -> Result<Vec<Entry>, StoreError> {
            Ok(Vec::new())
        }
        fn read_last(&self, _: &str, _: usize) -> Result<Vec<Entry>, StoreError> {
            Ok(Vec::new())
        }
        fn write(&self, _: &[Append], _: bool, _: u64) -> Result<(), StoreError> {
            std::thread::sleep(Duration::from_millis(200));
            Err(StoreError("disk full".into()))
        }
        fn sync(&self, _: u64) -> Result<(), StoreError> {
            Ok(())
        }
        fn first_id(&self) -> u64 {
            1
        }
        fn room_names(&self, _: usize) -> Result<(usize, Vec<String>), StoreError> {
            Ok((0, Vec::new()))
        }
        fn close(&self, _: u64) -> Result<(), StoreError> {
            Ok(())
        }
        fn describe(&self) -> String {
            "slow".into()
        }
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let (writer, _thread) = LogWriter::start(
        Arc::new(Slow),
        FsyncPolicy::Always,
        4,
        Arc::new(AtomicU64::new(1)),
        move |c: Committed<u64>| tx.send((c.appends.len(), c.result.is_ok())).unwrap(),
    )
    .unwrap();
    let results: Vec<_> = (1..=20).map(|o| writer.append(append("r", o), o)).collect();
    assert!(results.contains(&Err(AppendError::Overloaded)), "a full queue refuses at once");
    let (n, ok) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(n >= 1 && !ok, "a failed write is reported, never taken for stored");
    assert!(writer.stats().overflows.load(Ordering::Relaxed) > 0);
}
