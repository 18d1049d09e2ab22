//! The room's state machine, without sockets.

use super::*;

fn id(loop_index: usize, slot: u64) -> ConnId {
    // Layout of reactor::ConnId: loop 8 bits, service 8, generation 24, slot 24.
    ConnId::from_u64(((loop_index as u64) << 56) | (1 << 24) | slot)
}

fn entry(offset: u64) -> Arc<Entry> {
    Arc::new(Entry {
        offset,
        id: 100 + offset,
        ts_us: offset,
        from: "a".into(),
        text: format!("m{offset}").into(),
    })
}

fn room(loops: usize) -> RoomState {
    RoomState::new("r".into(), None, 7, Vec::new(), loops)
}

/// Publishes message `offset` the way the driver does.
fn publish(r: &mut RoomState, offset: u64, sender: Option<ConnId>) -> Vec<ConnId> {
    let o = r.next_offset();
    assert_eq!(o, offset);
    r.publish_message(entry(o), Bytes::from(format!("f{o}")), sender, 100, 1 << 20)
}

/// What loop `l` would send now: (recipients, frame) pairs, then marks it
/// delivered.
fn drain(r: &mut RoomState, l: usize) -> Vec<(Vec<ConnId>, String)> {
    let out = {
        let (ids, events) = r.undelivered(l);
        events
            .map(|e| {
                let to: Vec<ConnId> = ids.iter().copied().filter(|&i| Some(i) != e.skip).collect();
                (to, String::from_utf8(e.payload.to_vec()).unwrap())
            })
            .collect()
    };
    r.delivered(l);
    out
}

#[test]
fn each_loop_delivers_the_one_stream_in_order() {
    let mut r = room(2);
    let (a, b, c) = (id(0, 1), id(1, 2), id(1, 3));
    r.add_member(a, "a".into());
    r.add_member(b, "b".into());
    r.add_member(c, "c".into());
    publish(&mut r, 1, Some(a));
    publish(&mut r, 2, Some(b));
    // Loop 0 delivers first, then loop 1 catches up on both, in order.
    assert_eq!(drain(&mut r, 0), vec![(vec![], "f1".into()), (vec![a], "f2".into())]);
    publish(&mut r, 3, None);
    assert_eq!(
        drain(&mut r, 1),
        vec![(vec![b, c], "f1".into()), (vec![c], "f2".into()), (vec![b, c], "f3".into())]
    );
    assert_eq!(drain(&mut r, 0), vec![(vec![a], "f3".into())]);
    // Delivered by both: the stream is empty again.
    assert!(r.events.is_empty());
}

#[test]
fn a_member_gets_exactly_what_is_published_while_it_is_in() {
    let mut r = room(2);
    let (a, b) = (id(0, 1), id(0, 2));
    r.add_member(a, "a".into());
    publish(&mut r, 1, None);
    assert_eq!(drain(&mut r, 0).len(), 1, "the loop delivers before the join");
    r.add_member(b, "b".into());
    publish(&mut r, 2, None);
    assert_eq!(drain(&mut r, 0), vec![(vec![a, b], "f2".into())]);
    // Leave: the loop delivers first, then the member goes.
    publish(&mut r, 3, None);
    assert_eq!(drain(&mut r, 0), vec![(vec![a, b], "f3".into())]);
    assert_eq!(r.remove_member(b).as_deref(), Some("b"));
    publish(&mut r, 4, None);
    assert_eq!(drain(&mut r, 0), vec![(vec![a], "f4".into())]);
    assert_eq!(r.remove_member(b), None, "not a member any more");
}

#[test]
fn a_loop_without_members_holds_no_events() {
    let mut r = room(3);
    r.add_member(id(0, 1), "a".into());
    publish(&mut r, 1, None);
    publish(&mut r, 2, None);
    assert_eq!(r.loops_with_members().collect::<Vec<_>>(), vec![0]);
    drain(&mut r, 0);
    assert!(r.events.is_empty(), "loops 1 and 2 have nobody to deliver to");
    // A first member on loop 2 starts at the head, not at old events.
    r.add_member(id(2, 5), "e".into());
    assert!(drain(&mut r, 2).is_empty());
}

#[test]
fn a_room_without_members_keeps_no_stream_but_keeps_its_tail() {
    let mut r = room(1);
    publish(&mut r, 1, None);
    assert!(r.events.is_empty());
    assert_eq!(r.history(None, 10, 10), HistoryPlan::Tail { entries: vec![entry(1)], recovered: false });
    let a = id(0, 1);
    r.add_member(a, "a".into());
    publish(&mut r, 2, None);
    r.remove_member(a);
    assert!(r.events.is_empty(), "the last member leaving drops the stream");
    assert!(r.is_idle());
}

#[test]
fn queue_marks_coalesce_wakes() {
    let mut r = room(2);
    r.add_member(id(1, 1), "a".into());
    assert!(r.queue_for(1));
    assert!(!r.queue_for(1), "queued once until it delivers");
    r.queue_reset(1);
    assert!(r.queue_for(1));
    assert!(!r.queue_for(9), "no such loop");
}

#[test]
fn waiters_are_released_by_the_next_message() {
    let mut r = room(1);
    let w = id(0, 9);
    r.wait(w);
    r.wait(w);
    assert!(!r.is_idle());
    assert_eq!(publish(&mut r, 1, None), vec![w], "registered once");
    assert!(publish(&mut r, 2, None).is_empty());
    r.wait(w);
    r.stop_waiting(w);
    assert!(r.is_idle());
}

#[test]
fn held_messages_keep_the_room_and_come_back_by_offset() {
    let mut r = room(1);
    let (o1, o2) = (r.next_offset(), r.next_offset());
    r.wrote();
    r.wrote();
    r.hold(entry(o1), None);
    r.hold(entry(o2), Some(id(0, 1)));
    assert!(!r.is_idle());
    assert_eq!(r.release(o2).map(|(e, s)| (e.offset, s)), Some((2, Some(id(0, 1)))));
    assert!(r.release(o2).is_none());
    assert!(r.release(o1).is_some());
    r.written();
    r.written();
    assert!(r.is_idle());
    assert_eq!(r.last_offset(), 0, "nothing published: offsets were handed out, not used");
}

#[test]
fn the_tail_is_bounded_by_count_and_bytes() {
    let mut r = room(1);
    for o in 1..=10 {
        let off = r.next_offset();
        r.publish_message(entry(off), Bytes::new(), None, 4, 1 << 20);
        assert_eq!(off, o);
    }
    assert_eq!(r.tail.len(), 4);
    let one = entry(11).heap_size();
    let off = r.next_offset();
    r.publish_message(entry(off), Bytes::new(), None, 100, one * 2);
    assert_eq!(r.tail.len(), 2, "bytes bound");
    assert_eq!(r.tail.back().map(|e| e.offset), Some(11));
}

#[test]
fn resume_is_exact_only_within_the_same_log() {
    let meta = RoomMeta { epoch: 7, last_offset: 50, trimmed: 10 };
    let tail: Vec<Entry> = (41..=50).map(|o| (*entry(o)).clone()).collect();
    let r = RoomState::new("r".into(), Some(meta), 99, tail, 1);
    let at = |epoch, offset| Position { epoch, offset };
    assert_eq!(r.resume(at(7, 45), 1000), Resume::Exact);
    assert_eq!(r.resume(at(7, 50), 1000), Resume::Exact, "up to date");
    assert_eq!(r.resume(at(7, 10), 1000), Resume::Exact, "the oldest kept position");
    assert_eq!(r.resume(at(7, 9), 1000), Resume::Lost, "trimmed away");
    assert_eq!(r.resume(at(8, 45), 1000), Resume::Lost, "another epoch");
    assert_eq!(r.resume(at(7, 51), 1000), Resume::Lost, "ahead of the room");
    assert_eq!(r.resume(at(7, 20), 10), Resume::Lost, "more than the recover limit behind");
    assert_eq!(r.resume(at(0, 0), 1000), Resume::Lost, "from the start, but the start is trimmed");
}

#[test]
fn history_comes_from_the_tail_or_the_log() {
    let meta = RoomMeta { epoch: 7, last_offset: 50, trimmed: 0 };
    let tail: Vec<Entry> = (41..=50).map(|o| (*entry(o)).clone()).collect();
    let r = RoomState::new("r".into(), Some(meta), 99, tail, 1);
    let offsets = |p: HistoryPlan| match p {
        HistoryPlan::Tail { entries, recovered } => {
            (entries.iter().map(|e| e.offset).collect::<Vec<_>>(), recovered)
        }
        other => panic!("expected the tail, got {other:?}"),
    };
    let at = |offset| Some(Position { epoch: 7, offset });
    assert_eq!(offsets(r.history(at(47), 5, 1000)), (vec![48, 49, 50], true), "exact, even past history_len");
    assert_eq!(offsets(r.history(at(40), 5, 1000)).0.len(), 10, "the tail starts right after 40");
    assert_eq!(r.history(at(20), 5, 1000), HistoryPlan::FromLog { after: 20, limit: 30 });
    assert_eq!(offsets(r.history(at(50), 5, 1000)), (vec![], true));
    assert_eq!(offsets(r.history(None, 3, 1000)), (vec![48, 49, 50], false));
    assert_eq!(offsets(r.history(Some(Position { epoch: 1, offset: 47 }), 2, 1000)), (vec![49, 50], false));
    assert_eq!(
        r.history(Some(Position { epoch: 1, offset: 0 }), 2, 1000),
        HistoryPlan::FromLog { after: 0, limit: 50 }
    );
}

#[test]
fn a_reloaded_room_continues_its_offsets() {
    let meta = RoomMeta { epoch: 3, last_offset: 12, trimmed: 2 };
    let mut r = RoomState::new("r".into(), Some(meta), 99, Vec::new(), 1);
    assert_eq!(r.epoch(), 3, "the stored epoch, not the fresh one");
    assert_eq!(r.next_offset(), 13);
    assert_eq!(r.tail_after(12, 10), Some(vec![]));
    assert_eq!(r.tail_after(5, 10), None, "older than the (empty) tail: read the log");
}
