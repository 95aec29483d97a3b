//! A framed future that panics after migrating, then is cancelled elsewhere.
//!
//! Thread A polls a framed future that binds a variable and registers a hook
//! (whose guard it hands out, so the hook outlives the panic); it suspends on
//! a gate. Thread B takes it over, opens the gate and polls it: the future
//! panics, B catches the panic and hands the future back; A drops it.
//!
//! Checked: the panicking poll still runs `on_yield`, on B, before it unwinds
//! out of `poll`, and B is back in its own frame with no hook in effect; the
//! cancellation on A resumes the hook on A and drops it entered; the guard,
//! dropped after its frame ended, does nothing.

#![cfg(spawn_hooks_loom)]

use std::panic::{self, AssertUnwindSafe};

use loom_tests::{
    active, logging_waker, model, poll_once, spawn, BoxFuture, Gate, Handoff, Log, Marker,
    DELIBERATE,
};
use spawn_hooks::{enter, FutureExt, HookGuard, Variable};

/// Bound in the framed future.
static X: Variable<u32> = Variable::new("x");
/// Bound in each thread's base frame.
static Y: Variable<u32> = Variable::new("y");

#[test]
fn loom_unwind_yields_then_cancel_resumes() {
    model("loom_unwind_yields_then_cancel_resumes", || {
        let log = Log::new();
        let gate = Gate::new();
        let guard = Handoff::<HookGuard>::new();
        let there = Handoff::<BoxFuture<()>>::new();
        let back = Handoff::<BoxFuture<()>>::new();

        let fut: BoxFuture<()> = {
            let (log, gate, guard) = (log.clone(), gate.clone(), guard.clone());
            Box::pin(
                async move {
                    let _x = X.set(1);
                    guard.put(enter(Marker::new(1, &log)));
                    gate.wait().await;
                    panic::panic_any(DELIBERATE);
                }
                .frame(),
            )
        };

        let a = spawn("A", {
            let (log, there, back) = (log.clone(), there.clone(), back.clone());
            move || {
                let _y = Y.set(10);
                let mut fut = fut;
                assert!(poll_once(fut.as_mut(), &logging_waker(&log)).is_pending());
                assert_eq!((X.get(), Y.get(), active()), (None, Some(10), 0));
                there.put(fut);
                let fut = back.take();
                drop(fut);
                assert_eq!((X.get(), Y.get(), active()), (None, Some(10), 0));
            }
        });
        let b = spawn("B", move || {
            let _y = Y.set(20);
            let mut fut = there.take();
            gate.open();
            let polled = panic::catch_unwind(AssertUnwindSafe(|| {
                poll_once(fut.as_mut(), &loom_tests::logging_waker(&Log::new()))
            }));
            assert!(polled.is_err(), "the future should have panicked");
            assert_eq!((X.get(), Y.get(), active()), (None, Some(20), 0));
            back.put(fut);
        });
        a.join().unwrap();
        b.join().unwrap();
        // Dropped after its frame ended: nothing left to remove.
        drop(guard.take());

        let mut lines = log.lines();
        lines.retain(|l| l != "wake@B");
        assert_eq!(
            lines,
            [
                "enter 1@A",
                "yield 1@A",
                "resume 1@B",
                "yield 1@B",
                "resume 1@A",
                "drop 1@A",
            ]
        );
    });
}
