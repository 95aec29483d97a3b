//! Guards dropped on another thread while their frame ends: the frame's
//! shared part (the deferred-removal queue, its `pending` flag and the
//! `closed` flag) under contention.
//!
//! A frame on thread A binds `X` (counted) then `Y` and registers a hook; it
//! hands the guards of `X` and of the hook to thread B, which drops them
//! while the frame reads and then ends: a closure frame returning, or a
//! suspended framed future being cancelled. B has a binding of its own, made
//! first (same id within its frame as `X` within A's).
//!
//! Checked: whichever comes first (the drop applied at a read, at the end,
//! or after the end), `X` goes exactly once and `Y` stays until the end; the
//! hook is dropped exactly once, entered, on A, and alternates; B's binding is
//! untouched; nothing leaks, including the queue's frame state (loom checks
//! every `Arc` of the core is freed).

#![cfg(spawn_hooks_loom)]

use loom_tests::{
    active, logging_waker, model, poll_once, spawn, Counted, Gate, Handoff, Live, Log, Marker,
};
use spawn_hooks::{enter, Binding, FutureExt, HookGuard, Snapshot, Variable};

static X: Variable<Counted> = Variable::new("x");
static Y: Variable<u32> = Variable::new("y");

fn x() -> Option<u32> {
    X.with(|x| x.map(|x| x.n))
}

type Guards = (Binding, HookGuard);

/// B's side: its own binding, then the other frame's guards dropped here.
fn drop_on_b(live: &Live, guards: &Handoff<Guards>) {
    let _own = X.set(live.value(20));
    let (binding, hook) = guards.take();
    drop(binding);
    drop(hook);
    assert_eq!(x(), Some(20), "B's own binding was removed");
}

/// What the frame checks at a read: `X` is there or gone, `Y` is there.
fn check_read() {
    assert!(matches!(x(), Some(1) | None));
    assert_eq!(Y.get(), Some(2));
}

#[test]
fn loom_guard_drop_races_frame_end() {
    model("loom_guard_drop_races_frame_end", || {
        let log = Log::new();
        let live = Live::new();
        let guards = Handoff::<Guards>::new();

        let a = spawn("A", {
            let (log, live, guards) = (log.clone(), live.clone(), guards.clone());
            move || {
                Snapshot::empty().run(|| {
                    let x_binding = X.set(live.value(1));
                    let _y = Y.set(2);
                    guards.put((x_binding, enter(Marker::new(1, &log))));
                    check_read();
                    check_read();
                });
                assert_eq!((x(), Y.get(), active()), (None, None, 0));
            }
        });
        let b = spawn("B", {
            let live = live.clone();
            move || drop_on_b(&live, &guards)
        });
        a.join().unwrap();
        b.join().unwrap();

        assert_eq!(log.lines(), ["enter 1@A", "drop 1@A"]);
        assert_eq!(live.count(), 0, "a counted value leaked");
    });
}

#[test]
fn loom_guard_drop_races_cancel() {
    model("loom_guard_drop_races_cancel", || {
        let log = Log::new();
        let live = Live::new();
        let gate = Gate::new();
        let guards = Handoff::<Guards>::new();

        let mut fut = {
            let (log, live, gate, guards) =
                (log.clone(), live.clone(), gate.clone(), guards.clone());
            Box::pin(
                async move {
                    let x_binding = X.set(live.value(1));
                    let _y = Y.set(2);
                    guards.put((x_binding, enter(Marker::new(1, &log))));
                    check_read();
                    gate.wait().await;
                    unreachable!("the gate never opens");
                }
                .frame(),
            )
        };

        let a = spawn("A", {
            let log = log.clone();
            move || {
                assert!(poll_once(fut.as_mut(), &logging_waker(&log)).is_pending());
                drop(fut);
                assert_eq!((x(), Y.get(), active()), (None, None, 0));
            }
        });
        let b = spawn("B", {
            let live = live.clone();
            move || drop_on_b(&live, &guards)
        });
        a.join().unwrap();
        b.join().unwrap();
        drop(gate);

        // Removed at the read inside the first poll, or else yielded with
        // the frame and resumed to be dropped by the cancellation.
        let lines = log.lines();
        assert!(
            lines == ["enter 1@A", "drop 1@A"]
                || lines == ["enter 1@A", "yield 1@A", "resume 1@A", "drop 1@A"],
            "{lines:?}"
        );
        assert_eq!(live.count(), 0, "a counted value leaked");
    });
}
