//! A `TaskFrame` (the frame an executor drives with enter/leave callbacks)
//! entered on one thread, left, and entered again on another, while a third
//! thread drops one of its bindings.
//!
//! The frame starts from a snapshot (`X` = 0). Thread A (the model's main
//! thread) enters it, binds `X` = 1, registers a hook, hands the binding's
//! guard to thread C and leaves; it hands the frame (and the hook's guard) to
//! thread B. C drops the binding at any point. B enters the frame, leaves,
//! joins C, enters again, drops the hook's guard, leaves, and ends the frame.
//! A and B each have a binding of their own.
//!
//! Checked: the hook yields on A and resumes on B, alternating, and is
//! dropped entered on B; inside, the frame sees `X` = 1 until C's removal is
//! applied and the snapshot's 0 after (never A's or B's values); after every
//! leave the thread has its own frame back; nothing leaks.

#![cfg(spawn_hooks_loom)]

use loom_tests::{active, model, spawn, Counted, Live, Log, Marker};
use spawn_hooks::{enter, Snapshot, TaskFrame, Variable};

static X: Variable<Counted> = Variable::new("x");
static Y: Variable<u32> = Variable::new("y");

fn x() -> Option<u32> {
    X.with(|x| x.map(|x| x.n))
}

#[test]
fn loom_task_frame_migration() {
    model("loom_task_frame_migration", || {
        let log = Log::new();
        let live = Live::new();

        let mut task = X.sync_scope(live.value(0), || TaskFrame::new(Snapshot::capture()));

        // On the model's main thread ("A" above).
        let _y = Y.set(10);
        task.enter().unwrap();
        assert_eq!((x(), Y.get()), (Some(0), None));
        let binding = X.set(live.value(1));
        let hook = enter(Marker::new(1, &log));

        let c = spawn("C", move || drop(binding));
        assert!(matches!(x(), Some(1) | Some(0)));
        task.leave().unwrap();
        assert_eq!((x(), Y.get(), active()), (None, Some(10), 0));

        let b = spawn("B", move || {
            let _y = Y.set(20);
            task.enter().unwrap();
            assert!(matches!(x(), Some(1) | Some(0)));
            assert_eq!((Y.get(), active()), (None, 2));
            task.leave().unwrap();
            assert_eq!((x(), Y.get(), active()), (None, Some(20), 0));
            c.join().unwrap();
            task.enter().unwrap();
            assert_eq!((x(), Y.get()), (Some(0), None));
            drop(hook);
            task.leave().unwrap();
            task.end().unwrap();
            assert_eq!((x(), Y.get(), active()), (None, Some(20), 0));
        });
        b.join().unwrap();
        assert_eq!((x(), Y.get(), active()), (None, Some(10), 0));

        assert_eq!(
            log.lines(),
            [
                "enter 1@main",
                "yield 1@main",
                "resume 1@B",
                "yield 1@B",
                "resume 1@B",
                "drop 1@B",
            ]
        );
        assert_eq!(live.count(), 0, "a counted value leaked");
    });
}
