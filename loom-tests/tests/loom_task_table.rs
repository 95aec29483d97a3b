//! A `TaskTable`, as tokio's task hooks drive it: the after-poll callback of
//! one poll (`leave`) may still run on one thread while the next poll of the
//! same task starts on another (`enter`), or while the task is cancelled
//! there (`remove`). The slot's owner word makes the later call wait, spinning
//! through the sync shim's backoff (a yield under loom), until the leave has
//! given the frame back.
//!
//! The task's frame starts from `X` = 1 and has a hook that stays registered.
//! Thread A (the model's main thread) enters it and leaves it; thread B
//! enters it (the next poll) and leaves it, or removes it (a cancellation),
//! at any point of A's leave.
//!
//! Checked: no two threads use the frame without A's leave ordered before
//! B's use (a loom cell touched by every entry and exit); the hook yields on
//! A, then resumes on B (and yields, or is dropped there, entered);
//! each thread sees the task's `X` while it has it entered and its own
//! frame back after; nothing leaks. The mutant `no_wait` (B takes the slot
//! without waiting) is caught.

#![cfg(spawn_hooks_loom)]

use std::num::NonZeroU64;

use loom::sync::Arc;
use loom_tests::{active, model, spawn, Log, Marker};
use spawn_hooks::{enter, HookGuard, Snapshot, TaskFrame, TaskTable, Variable};

static X: Variable<u32> = Variable::new("x");

fn id() -> NonZeroU64 {
    NonZeroU64::new(3).unwrap()
}

/// The table with the task in it, and the guard of the task's hook (kept
/// to the end of the model: the frame drops the hook when it ends, and the
/// guard then finds nothing to remove).
fn one_task(log: &Log) -> (Arc<TaskTable>, HookGuard) {
    let table = Arc::new(TaskTable::new());
    table.insert(
        id(),
        X.sync_scope(1, || TaskFrame::new(Snapshot::capture())),
    );
    // The task registers a hook in its first poll, on the model's thread.
    table.enter(id()).unwrap();
    let hook = enter(Marker::new(1, log));
    table.leave(id()).unwrap();
    (table, hook)
}

#[test]
fn loom_task_table_next_poll_waits_for_the_leave() {
    model("loom_task_table_next_poll_waits_for_the_leave", || {
        let log = Log::new();
        let (table, _hook) = one_task(&log);

        table.enter(id()).unwrap();
        assert_eq!((X.get(), active()), (Some(1), 2));
        let b = spawn("B", {
            let table = table.clone();
            move || {
                table.enter(id()).unwrap();
                assert_eq!((X.get(), active()), (Some(1), 2));
                table.leave(id()).unwrap();
                assert_eq!((X.get(), active()), (None, 0));
            }
        });
        table.leave(id()).unwrap();
        assert_eq!((X.get(), active()), (None, 0));
        b.join().unwrap();
        table.remove(id()).unwrap();
        assert!(table.is_empty());

        assert_eq!(
            log.lines(),
            [
                "enter 1@main",
                "yield 1@main",
                "resume 1@main",
                "yield 1@main",
                "resume 1@B",
                "yield 1@B",
                "resume 1@main",
                "drop 1@main",
            ]
        );
    });
}

#[test]
fn loom_task_table_cancel_waits_for_the_leave() {
    model("loom_task_table_cancel_waits_for_the_leave", || {
        let log = Log::new();
        let (table, _hook) = one_task(&log);

        table.enter(id()).unwrap();
        let b = spawn("B", {
            let table = table.clone();
            move || {
                table.remove(id()).unwrap();
                assert_eq!((X.get(), active()), (None, 0));
            }
        });
        table.leave(id()).unwrap();
        assert_eq!((X.get(), active()), (None, 0));
        b.join().unwrap();
        assert!(table.is_empty());

        assert_eq!(
            log.lines(),
            [
                "enter 1@main",
                "yield 1@main",
                "resume 1@main",
                "yield 1@main",
                "resume 1@B",
                "drop 1@B",
            ]
        );
    });
}
