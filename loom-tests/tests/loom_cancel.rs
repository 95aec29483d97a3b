//! A suspended frame dropped (cancelled) on another thread.
//!
//! Thread A polls a framed future that binds a counted value, registers a
//! hook, holds a probe (a value whose destructor reads the context) and
//! captures a snapshot; the future suspends. A hands the future to thread B,
//! which drops it, while A keeps reading and then drops the snapshot that
//! shares the future's mapping.
//!
//! Checked: cancelling resumes the frame on B (the hook's `on_resume` runs on
//! B), the future's destructors run in its context (the probe sees its
//! binding), the hook is dropped entered, on B; both threads are back in
//! their own frames; nothing leaks (every counted value is dropped, and loom
//! finds no leaked `Arc` of the core).

#![cfg(spawn_hooks_loom)]

use loom_tests::{
    active, logging_waker, model, poll_once, spawn, BoxFuture, Counted, Gate, Handoff, Live, Log,
    Marker, Probe,
};
use spawn_hooks::{enter, FutureExt, Snapshot, Variable};

/// Bound in the framed future.
static X: Variable<Counted> = Variable::new("x");
/// Bound in each thread's base frame.
static Y: Variable<u32> = Variable::new("y");

fn x() -> Option<u32> {
    X.with(|x| x.map(|x| x.n))
}

#[test]
fn loom_cancel_elsewhere() {
    model("loom_cancel_elsewhere", || {
        let log = Log::new();
        let live = Live::new();
        let gate = Gate::new();
        let handoff = Handoff::<BoxFuture<()>>::new();
        let snapshot = Handoff::<Snapshot>::new();

        let fut: BoxFuture<()> = {
            let (log, live, gate, snapshot) =
                (log.clone(), live.clone(), gate.clone(), snapshot.clone());
            Box::pin(
                async move {
                    let _x = X.set(live.value(1));
                    let _hook = enter(Marker::new(1, &log));
                    let _probe = Probe::new(&log, || format!("probe x={:?}", x()));
                    snapshot.put(Snapshot::capture());
                    gate.wait().await;
                    unreachable!("the gate never opens");
                }
                .frame(),
            )
        };

        let a = spawn("A", {
            let (log, handoff) = (log.clone(), handoff.clone());
            move || {
                let _y = Y.set(10);
                let mut fut = fut;
                assert!(poll_once(fut.as_mut(), &logging_waker(&log)).is_pending());
                assert_eq!((x(), Y.get(), active()), (None, Some(10), 0));
                let snapshot = snapshot.take();
                handoff.put(fut);
                // Reads of the future's mapping, racing with its cancellation.
                assert_eq!(snapshot.get(&X).map(|x| x.n), Some(1));
                // `Y` is not in it: the frame took its context where it was
                // made, on the model's main thread, before A bound `Y`.
                assert_eq!(snapshot.run(|| (x(), Y.get())), (Some(1), None));
                drop(snapshot);
                assert_eq!((x(), Y.get(), active()), (None, Some(10), 0));
            }
        });
        let b = spawn("B", move || {
            let _y = Y.set(20);
            let fut = handoff.take();
            drop(fut);
            assert_eq!((x(), Y.get(), active()), (None, Some(20), 0));
        });
        a.join().unwrap();
        b.join().unwrap();
        drop(gate);

        assert_eq!(
            log.lines(),
            [
                "enter 1@A",
                "yield 1@A",
                "resume 1@B",
                "probe x=Some(1)@B",
                "drop 1@B",
            ]
        );
        assert_eq!(live.count(), 0, "a counted value leaked");
    });
}
