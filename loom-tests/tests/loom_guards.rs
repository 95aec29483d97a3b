//! `Binding` and `HookGuard` moved to another thread and dropped there, while
//! their frame is suspended and while it is being polled.
//!
//! In both models a framed future on thread A binds `X` (counted) then `Y`
//! and registers hooks 1 and 2; it hands the guards of `X` and of hook 2 to
//! thread B, which drops them. B has a binding of its own in its base frame,
//! made first, so it has the same id within its frame as `X` has within the
//! future's: a removal by anything but identity hits the wrong one.
//!
//! Checked: exactly the dropped binding and hook go (`Y` and hook 1 stay);
//! the removal is applied on the frame's thread (A), by the time the frame is
//! next resumed or read after the drop; a hook removed while suspended is
//! resumed, then dropped, before the frame's other hooks resume and before
//! the future goes on; B's own binding is untouched; nothing leaks.

#![cfg(spawn_hooks_loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom_tests::{
    active, flag_waker, model, poll_once, spawn, Counted, Gate, Handoff, Live, Log, Marker,
};
use spawn_hooks::{enter, Binding, FutureExt, HookGuard, Variable};

/// Bound in the framed future (dropped on B), and in B's base frame.
static X: Variable<Counted> = Variable::new("x");
/// Bound in the framed future after `X` (kept).
static Y: Variable<u32> = Variable::new("y");

fn x() -> Option<u32> {
    X.with(|x| x.map(|x| x.n))
}

type Guards = (Binding, HookGuard);

/// B's side: its own binding, then the other frame's guards dropped here.
fn drop_on_b(live: &Live, guards: &Handoff<Guards>) -> Binding {
    let own = X.set(live.value(20));
    let (binding, hook) = guards.take();
    drop(binding);
    drop(hook);
    assert_eq!(x(), Some(20), "B's own binding was removed");
    own
}

#[test]
fn loom_guards_dropped_elsewhere_while_suspended() {
    model("loom_guards_dropped_elsewhere_while_suspended", || {
        let log = Log::new();
        let live = Live::new();
        let gate = Gate::new();
        let guards = Handoff::<Guards>::new();

        let fut = {
            let (log, live, gate, guards) =
                (log.clone(), live.clone(), gate.clone(), guards.clone());
            async move {
                let x_binding = X.set(live.value(1));
                let _y = Y.set(2);
                let _hook1 = enter(Marker::new(1, &log));
                let hook2 = enter(Marker::new(2, &log));
                guards.put((x_binding, hook2));
                gate.wait().await;
                // First thing after the resume: the removals must be done.
                log.push("inner");
                log.push(format_args!(
                    "x={:?} y={:?} active={}",
                    x(),
                    Y.get(),
                    active()
                ));
            }
            .frame()
        };

        let a = spawn("A", move || {
            // Polled again only once woken (by the gate), never spuriously:
            // the second poll comes after B's drops.
            let mut fut = Box::pin(fut);
            let (waker, woken) = flag_waker();
            assert!(poll_once(fut.as_mut(), &waker).is_pending());
            woken.wait();
            assert!(poll_once(fut.as_mut(), &waker).is_ready());
            assert_eq!((x(), Y.get(), active()), (None, None, 0));
        });
        let b = spawn("B", {
            let live = live.clone();
            move || {
                // Wait until the future has decided to suspend, so the drops
                // happen before its next poll (maybe before its `on_yield`).
                gate.wait_armed();
                let own = drop_on_b(&live, &guards);
                gate.open();
                drop(own);
            }
        });
        a.join().unwrap();
        b.join().unwrap();

        assert_eq!(
            log.lines(),
            [
                "enter 1@A",
                "enter 2@A",
                "yield 2@A",
                "yield 1@A",
                "resume 2@A",
                "drop 2@A",
                "resume 1@A",
                "inner@A",
                "x=None y=Some(2) active=2@A",
                "drop 1@A",
            ]
        );
        assert_eq!(live.count(), 0, "a counted value leaked");
    });
}

#[test]
fn loom_guards_dropped_elsewhere_while_polled() {
    model("loom_guards_dropped_elsewhere_while_polled", || {
        let log = Log::new();
        let live = Live::new();
        let guards = Handoff::<Guards>::new();
        let done = Arc::new(AtomicBool::new(false));

        let fut = {
            let (log, live, guards, done) =
                (log.clone(), live.clone(), guards.clone(), done.clone());
            async move {
                let x_binding = X.set(live.value(1));
                let _y = Y.set(2);
                let _hook1 = enter(Marker::new(1, &log));
                let hook2 = enter(Marker::new(2, &log));
                guards.put((x_binding, hook2));
                // Stay inside this poll, reading, while B drops the guards:
                // X may go at any read, Y never does.
                let mut seen_gone = false;
                while !done.load(Ordering::Acquire) {
                    let now = x();
                    assert!(now == Some(1) || now.is_none());
                    assert!(!(seen_gone && now.is_some()), "X came back");
                    seen_gone |= now.is_none();
                    assert_eq!(Y.get(), Some(2));
                    loom::thread::yield_now();
                }
                // B's drops happened before: the next read applies them.
                log.push(format_args!(
                    "x={:?} y={:?} active={}",
                    x(),
                    Y.get(),
                    active()
                ));
            }
            .frame()
        };

        let a = spawn("A", move || {
            loom::future::block_on(fut);
            assert_eq!((x(), Y.get(), active()), (None, None, 0));
        });
        let b = spawn("B", {
            let live = live.clone();
            move || {
                let own = drop_on_b(&live, &guards);
                done.store(true, Ordering::Release);
                drop(own);
            }
        });
        a.join().unwrap();
        b.join().unwrap();

        assert_eq!(
            log.lines(),
            [
                "enter 1@A",
                "enter 2@A",
                "drop 2@A",
                "x=None y=Some(2) active=2@A",
                "drop 1@A",
            ]
        );
        assert_eq!(live.count(), 0, "a counted value leaked");
    });
}
