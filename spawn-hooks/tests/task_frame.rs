//! `TaskFrame`, the frame an executor drives with enter/leave callbacks:
//! the protocol when used as documented, and what happens when an executor
//! breaks the rules (left out of order, moved to another thread while
//! entered, dropped while current): wrong contexts at worst, never a frame
//! freed while a thread still points to it.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use spawn_hooks::{enter, Lifecycle, Snapshot, TaskFrame, TaskTable, Variable};

static V: Variable<u32> = Variable::new("v");

type Log = Arc<Mutex<Vec<&'static str>>>;

struct Hook(Log);

impl Lifecycle for Hook {
    fn on_yield(&mut self) {
        self.0.lock().unwrap().push("yield");
    }
    fn on_resume(&mut self) {
        self.0.lock().unwrap().push("resume");
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.0.lock().unwrap().push("drop");
    }
}

fn frame_with(v: u32) -> TaskFrame {
    V.sync_scope(v, || TaskFrame::new(Snapshot::capture()))
}

#[test]
fn hooks_alternate_across_enter_and_leave_and_drop_entered() {
    let log: Log = Arc::default();
    let mut task = frame_with(1);
    task.enter().unwrap();
    let guard = enter(Hook(log.clone()));
    task.leave().unwrap();
    assert_eq!(V.get(), None);
    task.enter().unwrap();
    assert_eq!(V.get(), Some(1));
    task.leave().unwrap();
    task.end().unwrap();
    drop(guard); // after the end: nothing left to remove
    assert_eq!(
        *log.lock().unwrap(),
        ["yield", "resume", "yield", "resume", "drop"]
    );
}

#[test]
fn leaving_out_of_order_does_nothing_until_the_order_is_right() {
    let mut a = frame_with(1);
    let mut b = frame_with(2);
    a.enter().unwrap();
    b.enter().unwrap();
    // `a` is not the current frame: its leave is ignored.
    a.leave().unwrap();
    assert!(a.is_entered());
    assert_eq!(V.get(), Some(2));
    b.leave().unwrap();
    assert_eq!(V.get(), Some(1), "b restored a, which is still entered");
    a.leave().unwrap();
    assert_eq!(V.get(), None);
    assert!(!a.is_entered());
}

#[test]
fn a_frame_moved_to_another_thread_while_entered_is_leaked_not_freed() {
    let mut a = frame_with(7);
    a.enter().unwrap();
    let _bound = V.set(8);
    // The executor (wrongly) ends and drops it on another thread while this
    // thread still has it current.
    thread::spawn(move || {
        a.leave().unwrap(); // not current there: nothing
        a.end().unwrap(); // may be current elsewhere: leaked
        assert_eq!(V.get(), None, "the other thread's own frame is untouched");
    })
    .join()
    .unwrap();
    // This thread still reads the frame it entered: it was not freed.
    assert_eq!(V.get(), Some(8));
}

#[test]
fn dropping_a_current_frame_ends_it_and_restores_the_previous_one() {
    let log: Log = Arc::default();
    let _outer = V.set(1);
    let mut task = frame_with(5);
    task.enter().unwrap();
    let _hook = enter(Hook(log.clone()));
    assert_eq!(V.get(), Some(5));
    drop(task);
    assert_eq!(V.get(), Some(1));
    assert_eq!(*log.lock().unwrap(), ["drop"]);
}

#[test]
fn frames_can_be_entered_inside_a_with_callback() {
    let _outer = V.set(1);
    let (inside, nested) = V.with(|v| {
        let nested = Snapshot::empty().run(|| {
            let _b = V.set(3);
            V.get()
        });
        (v.copied(), nested)
    });
    assert_eq!((inside, nested), (Some(1), Some(3)));
    assert_eq!(V.get(), Some(1));
}

// ===== enter_paired / leave_paired =====

// ===== TaskTable: frames by task id, for callbacks that get only the id =====

fn id(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

fn table_with(tasks: &[(u64, u32)]) -> TaskTable {
    let table = TaskTable::new();
    for &(n, v) in tasks {
        table.insert(id(n), frame_with(v));
    }
    table
}

#[test]
fn table_entries_run_the_protocol_like_enter_and_leave() {
    let log: Log = Arc::default();
    let _outer = V.set(1);
    let table = table_with(&[(7, 2)]);
    table.enter(id(7)).unwrap();
    assert_eq!(V.get(), Some(2));
    let guard = enter(Hook(log.clone()));
    table.leave(id(7)).unwrap();
    assert_eq!(V.get(), Some(1));
    table.enter(id(7)).unwrap();
    assert_eq!(V.get(), Some(2));
    drop(guard);
    table.leave(id(7)).unwrap();
    assert_eq!(V.get(), Some(1));
    assert_eq!(*log.lock().unwrap(), ["yield", "resume", "drop"]);
    table.remove(id(7)).unwrap();
    assert!(table.is_empty());
}

#[test]
fn a_table_ignores_ids_it_does_not_hold_and_leaves_not_entered_here() {
    let table = table_with(&[(1, 4)]);
    table.enter(id(2)).unwrap(); // unknown: nothing
    table.leave(id(1)).unwrap(); // not entered: nothing
    assert_eq!(V.get(), None);
    table.enter(id(1)).unwrap();
    table.leave(id(2)).unwrap(); // another id: nothing
    assert_eq!(V.get(), Some(4));
    table.enter(id(1)).unwrap(); // entered here already: nothing
    table.leave(id(1)).unwrap();
    assert_eq!(V.get(), None);
    table.leave(id(1)).unwrap(); // left already: nothing
    table.remove(id(3)).unwrap(); // unknown: nothing
    assert_eq!(table.len(), 1);
}

#[test]
fn the_next_poll_on_another_thread_waits_until_this_one_has_left() {
    let log: Log = Arc::default();
    let table = Arc::new(table_with(&[(5, 5)]));
    table.enter(id(5)).unwrap();
    let _hook = enter(Hook(log.clone()));
    let waiting = Arc::new(AtomicBool::new(false));
    let left = Arc::new(AtomicBool::new(false));
    let next_poll = thread::spawn({
        let (table, waiting, left) = (table.clone(), waiting.clone(), left.clone());
        move || {
            waiting.store(true, Ordering::Release);
            table.enter(id(5)).unwrap();
            let left_first = left.load(Ordering::Acquire);
            let seen = V.get();
            table.leave(id(5)).unwrap();
            (left_first, seen)
        }
    });
    while !waiting.load(Ordering::Acquire) {
        thread::yield_now();
    }
    thread::sleep(std::time::Duration::from_millis(20));
    // Still this thread's: the other one cannot have entered.
    assert_eq!(V.get(), Some(5));
    left.store(true, Ordering::Release);
    table.leave(id(5)).unwrap();
    assert_eq!(
        next_poll.join().unwrap(),
        (true, Some(5)),
        "the next poll entered before this one had left"
    );
    // The hook yielded here, resumed and yielded there.
    assert_eq!(*log.lock().unwrap(), ["yield", "resume", "yield"]);
}

#[test]
fn removing_waits_for_a_leave_elsewhere_and_drops_hooks_entered() {
    let log: Log = Arc::default();
    let table = Arc::new(table_with(&[(9, 9)]));
    table.enter(id(9)).unwrap();
    let hook = enter(Hook(log.clone()));
    std::mem::forget(hook); // lives as long as the frame
    let left = Arc::new(AtomicBool::new(false));
    let cancel = thread::spawn({
        let (table, left) = (table.clone(), left.clone());
        move || {
            table.remove(id(9)).unwrap();
            left.load(Ordering::Acquire)
        }
    });
    thread::sleep(std::time::Duration::from_millis(20));
    left.store(true, Ordering::Release);
    table.leave(id(9)).unwrap();
    assert!(cancel.join().unwrap(), "removed before the leave");
    assert_eq!(*log.lock().unwrap(), ["yield", "resume", "drop"]);
    assert!(table.is_empty());
}

#[test]
fn table_entries_nest_with_each_other_and_with_scoped_frames() {
    let _outer = V.set(1);
    let table = table_with(&[(1, 10), (2, 20)]);
    table.enter(id(1)).unwrap();
    let inner = Snapshot::empty().run(|| {
        // A table entry inside a scoped frame inside a table entry.
        table.enter(id(2)).unwrap();
        let seen = V.get();
        table.leave(id(2)).unwrap();
        (seen, V.get())
    });
    assert_eq!(inner, (Some(20), None));
    assert_eq!(V.get(), Some(10));
    table.leave(id(1)).unwrap();
    assert_eq!(V.get(), Some(1));

    // Directly nested, twice over: the saved frames come back in order.
    for _ in 0..2 {
        table.enter(id(1)).unwrap();
        table.enter(id(2)).unwrap();
        assert_eq!(V.get(), Some(20));
        // Out of order: stays entered until left in order.
        table.leave(id(1)).unwrap();
        assert_eq!(V.get(), Some(20));
        table.leave(id(2)).unwrap();
        assert_eq!(V.get(), Some(10));
        table.leave(id(1)).unwrap();
        assert_eq!(V.get(), Some(1));
    }
}

#[test]
fn removing_inside_the_last_poll_restores_the_frames_around_it() {
    let log: Log = Arc::default();
    let _outer = V.set(1);
    let table = table_with(&[(1, 10), (2, 20)]);
    table.enter(id(1)).unwrap();
    table.enter(id(2)).unwrap();
    let _hook = enter(Hook(log.clone()));
    // The task ends inside its poll (as a completed tokio task does).
    table.remove(id(2)).unwrap();
    assert_eq!(*log.lock().unwrap(), ["drop"]);
    assert_eq!(V.get(), Some(10));
    table.leave(id(2)).unwrap(); // gone: nothing
    assert_eq!(V.get(), Some(10));
    table.leave(id(1)).unwrap();
    assert_eq!(V.get(), Some(1));
    assert_eq!(table.len(), 1);
}

#[test]
fn a_stale_frame_under_a_reused_id_is_ended_and_replaced() {
    let log: Log = Arc::default();
    let table = table_with(&[(3, 30)]);
    table.enter(id(3)).unwrap();
    let hook = enter(Hook(log.clone()));
    std::mem::forget(hook);
    table.leave(id(3)).unwrap();
    table.insert(id(3), frame_with(31));
    assert_eq!(*log.lock().unwrap(), ["yield", "resume", "drop"]);
    table.enter(id(3)).unwrap();
    assert_eq!(V.get(), Some(31));
    table.leave(id(3)).unwrap();
    assert_eq!(table.len(), 1);
}

#[test]
fn tasks_beyond_the_table_go_to_the_overflow_and_come_back_out() {
    // Ids whose first places collide (the table has 4096 slots): only two
    // places per id, the rest overflow.
    let table = TaskTable::new();
    let ids: Vec<u64> = (0..8).map(|k| 1 + k * 4096).collect();
    for (k, &n) in ids.iter().enumerate() {
        table.insert(id(n), frame_with(k as u32));
    }
    assert_eq!(table.len(), ids.len());
    for (k, &n) in ids.iter().enumerate() {
        table.enter(id(n)).unwrap();
        assert_eq!(V.get(), Some(k as u32));
        table.leave(id(n)).unwrap();
    }
    for &n in &ids {
        table.remove(id(n)).unwrap();
    }
    assert!(table.is_empty());
}

#[test]
fn dropping_a_table_ends_the_frames_it_still_holds() {
    let log: Log = Arc::default();
    let table = table_with(&[(1, 1), (4097, 2), (8193, 3)]);
    for n in [1, 4097, 8193] {
        table.enter(id(n)).unwrap();
        std::mem::forget(enter(Hook(log.clone())));
        table.leave(id(n)).unwrap();
    }
    log.lock().unwrap().clear();
    drop(table);
    assert_eq!(
        *log.lock().unwrap(),
        ["resume", "drop", "resume", "drop", "resume", "drop"]
    );
}
