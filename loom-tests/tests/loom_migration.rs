//! A framed future suspended on one thread and finished on another.
//!
//! Thread A polls a framed future that binds a variable and registers a hook,
//! then awaits a nested framed future that does the same; the nested one
//! returns `Pending` waiting on a gate, and so the outer one does. Thread B opens the gate (waking the
//! future, while A may still be inside that poll), takes the future over and
//! polls it to completion. Each thread has a binding of its own in its base
//! frame.
//!
//! Checked: the hooks yield on A (inner first) and resume on B (outer first),
//! alternating, on the polling thread, before the future goes on; each frame
//! sees its own mapping (its binding, over what it inherited where it was
//! made on A: A's base binding, not B's); after every poll the polling thread
//! is back in its own frame with its own binding, and no hook is in effect.

#![cfg(spawn_hooks_loom)]

use loom_tests::{
    active, logging_waker, model, poll_once, spawn, BoxFuture, Gate, Handoff, Log, Marker,
};
use spawn_hooks::{enter, FutureExt, Variable};

/// Bound in the framed future.
static X: Variable<u32> = Variable::new("x");
/// Bound in each thread's base frame.
static Y: Variable<u32> = Variable::new("y");

#[test]
fn loom_migration() {
    model("loom_migration", || {
        let log = Log::new();
        let gate = Gate::new();
        let handoff = Handoff::<BoxFuture<()>>::new();

        let a = spawn("A", {
            let (log, handoff, gate) = (log.clone(), handoff.clone(), gate.clone());
            move || {
                let _y = Y.set(10);
                // Made here: the frames start from A's context.
                let fut: BoxFuture<()> = {
                    let (log, gate) = (log.clone(), gate.clone());
                    Box::pin(
                        async move {
                            let _x = X.set(1);
                            let _hook = enter(Marker::new(1, &log));
                            // A nested frame, suspended and resumed inside the outer.
                            async {
                                let _x = X.set(2);
                                let _hook = enter(Marker::new(2, &log));
                                gate.wait().await;
                                log.push(format_args!(
                                    "inner x={:?} y={:?} active={}",
                                    X.get(),
                                    Y.get(),
                                    active()
                                ));
                            }
                            .frame()
                            .await;
                            log.push(format_args!("outer x={:?} active={}", X.get(), active()));
                        }
                        .frame(),
                    )
                };
                let mut fut = fut;
                let waker = logging_waker(&log);
                assert!(poll_once(fut.as_mut(), &waker).is_pending());
                assert_eq!((X.get(), Y.get(), active()), (None, Some(10), 0));
                handoff.put(fut);
                assert_eq!((X.get(), Y.get(), active()), (None, Some(10), 0));
            }
        });
        let b = spawn("B", move || {
            let _y = Y.set(20);
            gate.wait_armed();
            gate.open();
            let mut fut = handoff.take();
            loom::future::block_on(fut.as_mut());
            assert_eq!((X.get(), Y.get(), active()), (None, Some(20), 0));
            drop(fut);
            assert_eq!((X.get(), Y.get(), active()), (None, Some(20), 0));
        });
        a.join().unwrap();
        b.join().unwrap();

        // The wake comes from B at some point after the future armed the
        // gate; everything else is in program order.
        let mut lines = log.lines();
        let wakes = lines.iter().filter(|l| *l == "wake@B").count();
        lines.retain(|l| l != "wake@B");
        assert_eq!(wakes, 1, "{lines:?}");
        assert_eq!(
            lines,
            [
                "enter 1@A",
                "enter 2@A",
                "yield 2@A",
                "yield 1@A",
                "resume 1@B",
                "resume 2@B",
                "inner x=Some(2) y=Some(10) active=6@B",
                "drop 2@B",
                "outer x=Some(1) active=2@B",
                "drop 1@B",
            ]
        );
        assert_eq!((X.get(), Y.get()), (None, None));
    });
}
