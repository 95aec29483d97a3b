//! Removals deferred by guards dropped on another thread are applied one at a
//! time, in drop order, each removed hook seeing the context as it was when
//! its guard dropped.
//!
//! A framed future on thread A binds `X`, then registers a hook that logs the
//! value of `X` it sees when it is resumed and dropped; it hands both guards
//! to thread B and suspends. B drops the hook's guard first, then the
//! binding's, at any point after the future decided to suspend (maybe before
//! its `on_yield`, while the frame is still entered on A). When A polls
//! again, the hook must be resumed and dropped with `X` still bound (its
//! guard dropped first), and only then `X` go.

#![cfg(spawn_hooks_loom)]

use loom_tests::{flag_waker, model, poll_once, spawn, Gate, Handoff, Log};
use spawn_hooks::{enter, Binding, FutureExt, HookGuard, Lifecycle, Variable};

static X: Variable<u32> = Variable::new("x");

/// Logs the value of `X` it sees on every call.
struct Sees(Log);

impl Lifecycle for Sees {
    fn on_yield(&mut self) {
        self.0.push(format_args!("yield x={:?}", X.get()));
    }
    fn on_resume(&mut self) {
        self.0.push(format_args!("resume x={:?}", X.get()));
    }
}

impl Drop for Sees {
    fn drop(&mut self) {
        self.0.push(format_args!("drop x={:?}", X.get()));
    }
}

#[test]
fn loom_removals_deferred_elsewhere_apply_in_drop_order() {
    model(
        "loom_removals_deferred_elsewhere_apply_in_drop_order",
        || {
            let log = Log::new();
            let gate = Gate::new();
            let guards = Handoff::<(HookGuard, Binding)>::new();

            let fut = {
                let (log, gate, guards) = (log.clone(), gate.clone(), guards.clone());
                async move {
                    let x = X.set(1);
                    let hook = enter(Sees(log.clone()));
                    guards.put((hook, x));
                    gate.wait().await;
                    log.push(format_args!("inner x={:?}", X.get()));
                }
                .frame()
            };

            let a = spawn("A", move || {
                let mut fut = Box::pin(fut);
                let (waker, woken) = flag_waker();
                assert!(poll_once(fut.as_mut(), &waker).is_pending());
                woken.wait();
                assert!(poll_once(fut.as_mut(), &waker).is_ready());
            });
            let b = spawn("B", move || {
                gate.wait_armed();
                let (hook, x) = guards.take();
                drop(hook);
                drop(x);
                gate.open();
            });
            a.join().unwrap();
            b.join().unwrap();

            assert_eq!(
                log.lines(),
                [
                    "yield x=Some(1)@A",
                    "resume x=Some(1)@A",
                    "drop x=Some(1)@A",
                    "inner x=None@A",
                ]
            );
        },
    );
}
