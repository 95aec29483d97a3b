//! Guards dropped on another thread while their frame ends: the frame's
//! shared part (the deferred-removal queue, its `pending` flag and the
//! `closed` flag) under contention.
//!
//! A frame on one thread binds `X` (counted) then `Y` and registers a hook;
//! it hands the guards of `X` and of the hook to another thread, which drops
//! them while the frame reads and then ends: a closure frame returning, a
//! suspended framed future being cancelled, or a thread's base frame ending
//! with its thread. The dropping thread has a binding of its own, made first
//! (same id within its frame as `X` within the other). A fourth model has two
//! threads drop two guards of one frame at once (two producers on the queue).
//!
//! Checked: whichever comes first (the drop applied at a read, at the end,
//! or after the end), `X` goes exactly once and `Y` stays until the end; the
//! hook is dropped at most once, entered, on the frame's thread, and
//! alternates; the dropping thread's binding is untouched; nothing leaks,
//! including the frame's shared part (loom checks every `Arc` of the core is
//! freed at the end of each execution).

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

/// The other thread's side: a binding of its own, then the frame's guards
/// dropped here.
fn drop_elsewhere(live: &Live, guards: &Handoff<Guards>) {
    let _own = X.set(live.value(20));
    let (binding, hook) = guards.take();
    drop(binding);
    drop(hook);
    assert_eq!(x(), Some(20), "this thread's own binding was removed");
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
            move || drop_elsewhere(&live, &guards)
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
            move || drop_elsewhere(&live, &guards)
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

#[test]
fn loom_guard_drop_races_thread_exit() {
    model("loom_guard_drop_races_thread_exit", || {
        let log = Log::new();
        let live = Live::new();
        let guards = Handoff::<Guards>::new();

        // B binds and registers in its base frame, hands the guards out and
        // exits: its base frame ends when its thread-locals are destroyed,
        // while A drops the guards.
        let b = spawn("B", {
            let (log, live, guards) = (log.clone(), live.clone(), guards.clone());
            move || {
                let x_binding = X.set(live.value(1));
                let _y = Y.set(2);
                guards.put((x_binding, enter(Marker::new(1, &log))));
                check_read();
            }
        });
        let a = spawn("A", {
            let live = live.clone();
            move || drop_elsewhere(&live, &guards)
        });
        a.join().unwrap();
        b.join().unwrap();

        // The hook goes at most once, entered: at a read on B, or with B's
        // base frame as B exits. Loom's `join` may return before B's
        // thread-locals are destroyed, so it may still be there, with its
        // binding's value; loom's leak check, after every thread is gone,
        // covers what remains (the frame's shared part, mapping, value).
        let lines = log.lines();
        assert!(
            lines == ["enter 1@B"]
                || lines == ["enter 1@B", "drop 1@B"]
                || lines == ["enter 1@B", "drop 1@exited"],
            "{lines:?}"
        );
        assert!(live.count() <= 1, "a counted value leaked");
    });
}

#[test]
fn loom_guards_dropped_on_two_threads() {
    model("loom_guards_dropped_on_two_threads", || {
        let live = Live::new();
        let to_b = Handoff::<Binding>::new();
        let to_c = Handoff::<Binding>::new();

        let b = spawn("B", {
            let to_b = to_b.clone();
            move || drop(to_b.take())
        });
        let c = spawn("C", {
            let to_c = to_c.clone();
            move || drop(to_c.take())
        });
        // A frame binds X, Y, then X again; B drops the first X binding and C
        // the last, concurrently, while the frame reads.
        Snapshot::empty().run(|| {
            to_b.put(X.set(live.value(1)));
            let _y = Y.set(2);
            to_c.put(X.set(live.value(3)));
            for _ in 0..2 {
                assert!(matches!(x(), Some(3) | Some(1) | None));
                assert_eq!(Y.get(), Some(2));
            }
            b.join().unwrap();
            c.join().unwrap();
            assert_eq!((x(), Y.get()), (None, Some(2)));
        });
        assert_eq!((x(), Y.get()), (None, None));
        assert_eq!(live.count(), 0, "a counted value leaked");
    });
}
