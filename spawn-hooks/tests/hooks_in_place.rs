//! Hooks are called in place, where their frame keeps them: these tests
//! change a frame's hooks from inside a hook's own callback (the hook
//! removing itself, removing another, registering a new one, panicking,
//! polling a nested frame with hooks of its own) and check the order of the
//! calls and that each hook is dropped once, after its last call. Small
//! enough to run under Miri, which checks the calls in place against the
//! aliasing models.

mod support;

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use spawn_hooks::{enter, FutureExt, HookGuard, Lifecycle, Variable};
use support::{poll_once, yield_once, Log};

/// A guard slot a hook can empty from its own callback.
type Slot = Arc<Mutex<Option<HookGuard>>>;

/// What a hook does in one of its callbacks.
type Act = Box<dyn FnMut() + Send>;

/// Records its calls and its drop; on the call named by `act`, runs it.
struct Hook {
    name: &'static str,
    log: Log,
    act: Option<(&'static str, Act)>,
}

impl Hook {
    fn new(name: &'static str, log: &Log) -> Hook {
        Hook {
            name,
            log: log.clone(),
            act: None,
        }
    }

    fn on(mut self, call: &'static str, act: impl FnMut() + Send + 'static) -> Hook {
        self.act = Some((call, Box::new(act)));
        self
    }

    fn call(&mut self, call: &'static str) {
        self.log.push(format!("{} {call}", self.name));
        if let Some((when, act)) = &mut self.act {
            if *when == call {
                act();
            }
        }
    }
}

impl Lifecycle for Hook {
    fn on_yield(&mut self) {
        self.call("yield");
    }
    fn on_resume(&mut self) {
        self.call("resume");
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.log.push(format!("{} dropped", self.name));
    }
}

/// Runs `body` as a framed future to completion, polling it by hand.
fn run<F: std::future::Future<Output = ()>>(body: F) {
    let mut fut = Box::pin(body.frame());
    while poll_once(fut.as_mut()).is_pending() {}
}

#[test]
fn a_hook_that_drops_its_own_guard_is_dropped_after_its_call() {
    let log = Log::default();
    let l = log.clone();
    run(async move {
        let own: Slot = Arc::new(Mutex::new(None));
        let o = own.clone();
        let hook = Hook::new("self", &l).on("yield", move || drop(o.lock().unwrap().take()));
        *own.lock().unwrap() = Some(enter(hook));
        yield_once().await;
        yield_once().await;
    });
    // Its guard dropped during its own `on_yield`: not called again,
    // dropped (resumed first, as a removed hook is) when the pass ends.
    assert_eq!(
        log.take(),
        ["self yield", "self resume", "self dropped"],
        "a hook removed by its own callback"
    );
}

#[test]
fn a_hook_removed_by_another_is_skipped_then_dropped_entered() {
    let log = Log::default();
    let l = log.clone();
    run(async move {
        let victim: Slot = Arc::new(Mutex::new(Some(enter(Hook::new("victim", &l)))));
        let v = victim.clone();
        let _killer = enter(Hook::new("killer", &l).on("yield", move || {
            drop(v.lock().unwrap().take());
        }));
        yield_once().await;
        yield_once().await;
    });
    // `on_yield` runs newest first: the killer removes the victim before
    // its turn, so the victim is dropped entered, never yielded.
    assert_eq!(
        log.take(),
        [
            "killer yield",
            "victim dropped",
            "killer resume",
            "killer yield",
            "killer resume",
            "killer dropped",
        ]
    );
}

#[test]
fn hooks_registered_by_a_callback_join_after_the_pass() {
    let log = Log::default();
    let l = log.clone();
    run(async move {
        let late: Slot = Arc::new(Mutex::new(None));
        let (s, ll) = (late.clone(), l.clone());
        let mut done = false;
        let _first = enter(Hook::new("first", &l).on("resume", move || {
            if !std::mem::replace(&mut done, true) {
                // Many, so that the frame's list would have to grow.
                let mut guards = Vec::new();
                for _ in 0..8 {
                    guards.push(enter(Hook::new("late", &ll)));
                }
                *s.lock().unwrap() = Some(enter(Hook::new("last", &ll)));
                drop(guards);
            }
        }));
        yield_once().await;
        yield_once().await;
        drop(late.lock().unwrap().take());
    });
    let events = log.take();
    // The eight `late` hooks were dropped by their registering callback,
    // during the pass: never called, dropped once each.
    assert_eq!(events.iter().filter(|e| *e == "late dropped").count(), 8);
    assert!(!events
        .iter()
        .any(|e| e == "late yield" || e == "late resume"));
    let rest: Vec<_> = events.iter().filter(|e| !e.starts_with("late")).collect();
    assert_eq!(
        rest,
        [
            "first yield",
            "first resume",
            // Registered entered during `first`'s resume: yields next.
            "last yield",
            "first yield",
            // `on_resume` oldest first.
            "first resume",
            "last resume",
            "last dropped",
            "first dropped",
        ]
    );
}

#[test]
fn a_panicking_hook_is_dropped_once_and_the_others_still_run() {
    let log = Log::default();
    let l = log.clone();
    let result = panic::catch_unwind(AssertUnwindSafe(move || {
        run(async move {
            let _a = enter(Hook::new("a", &l));
            let _bad = enter(Hook::new("bad", &l).on("yield", || panic!("hook")));
            let _c = enter(Hook::new("c", &l));
            yield_once().await;
        })
    }));
    assert!(result.is_err(), "the hook's panic reaches the poller");
    let events = log.take();
    assert_eq!(events[..3], ["c yield", "bad yield", "a yield"]);
    assert_eq!(events.iter().filter(|e| *e == "bad dropped").count(), 1);
    assert!(events.contains(&"a dropped".to_string()));
    assert!(events.contains(&"c dropped".to_string()));
}

#[test]
fn of_two_hooks_panicking_in_one_pass_the_first_panic_goes_on() {
    let log = Log::default();
    let l = log.clone();
    let result = panic::catch_unwind(AssertUnwindSafe(move || {
        run(async move {
            let _a = enter(Hook::new("a", &l).on("yield", || panic!("a")));
            let _b = enter(Hook::new("b", &l));
            let _c = enter(Hook::new("c", &l).on("yield", || panic!("c")));
            yield_once().await;
        })
    }));
    // `on_yield` runs newest first: `c` panics first.
    let payload = result.expect_err("the hooks' panic reaches the poller");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"c"));
    let events = log.take();
    assert_eq!(events[..3], ["c yield", "b yield", "a yield"]);
    for name in ["a", "b", "c"] {
        let dropped = format!("{name} dropped");
        assert_eq!(
            events.iter().filter(|e| **e == dropped).count(),
            1,
            "{events:?}"
        );
    }
}

#[test]
fn a_callback_may_poll_frames_with_hooks_and_read_and_bind() {
    static V: Variable<u32> = Variable::new("v");
    let log = Log::default();
    let l = log.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    run(async move {
        let _b = V.set(1);
        let (ll, s2) = (l.clone(), s.clone());
        let _outer = enter(Hook::new("outer", &l).on("yield", move || {
            // Inside the outer frame's pass: a nested frame with a hook,
            // polled to completion, and a binding made and dropped.
            let inner_log = ll.clone();
            let nested = async move {
                let _h = enter(Hook::new("inner", &inner_log));
                yield_once().await;
            };
            let mut fut = std::pin::pin!(nested.frame());
            while poll_once(fut.as_mut()).is_pending() {}
            let _b2 = V.set(2);
            s2.lock().unwrap().push(V.get());
        }));
        yield_once().await;
        s.lock().unwrap().push(V.get());
    });
    assert_eq!(*seen.lock().unwrap(), [Some(2), Some(1)]);
    assert_eq!(
        log.take(),
        [
            "outer yield",
            "inner yield",
            "inner resume",
            "inner dropped",
            "outer resume",
            "outer dropped",
        ]
    );
}
