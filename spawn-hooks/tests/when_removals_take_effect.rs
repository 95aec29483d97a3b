//! When a dropped guard's removal takes effect: at once when its frame is
//! entered on the dropping thread (current, or further down that thread's
//! stack of entered frames), otherwise at the frame's next resume or end,
//! one removal at a time in drop order, each removed hook seeing the context
//! as it was when its guard dropped.

mod support;

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::thread;

use futures::executor::block_on;
use spawn_hooks::{enter, FutureExt, HookGuard, Lifecycle, Variable};
use support::{poll_once, yield_once, Log};

static V: Variable<u32> = Variable::new("v");

/// A hook that logs its calls with the value of `V` it sees.
struct Rec {
    name: &'static str,
    log: Log,
}

impl Rec {
    fn enter(name: &'static str, log: &Log) -> HookGuard {
        enter(Rec {
            name,
            log: log.clone(),
        })
    }
    fn note(&self, what: &str) {
        self.log
            .push(format!("{}:{what} v={:?}", self.name, V.get()));
    }
}

impl Lifecycle for Rec {
    fn on_yield(&mut self) {
        self.note("yield");
    }
    fn on_resume(&mut self) {
        self.note("resume");
    }
}

impl Drop for Rec {
    fn drop(&mut self) {
        self.note("drop");
    }
}

// ===== D3: a guard dropped in a nested frame on its own thread =====

#[test]
fn a_hook_guard_dropped_in_a_nested_future_frame_removes_the_hook_at_once() {
    let log = Log::default();
    let l = log.clone();
    block_on(
        async move {
            let h = Rec::enter("h", &l);
            async move { drop(h) }.frame().await;
            l.push("guard dropped");
            yield_once().await;
            l.push("resumed");
        }
        .frame(),
    );
    assert_eq!(
        log.lines(),
        ["h:drop v=None", "guard dropped", "resumed"],
        "the hook acted after its guard dropped"
    );
}

#[test]
fn a_hook_guard_dropped_in_a_nested_closure_frame_removes_the_hook_at_once() {
    let log = Log::default();
    let l = log.clone();
    block_on(
        async move {
            let h = Rec::enter("h", &l);
            V.sync_scope(1, move || drop(h));
            l.push("guard dropped");
            yield_once().await;
            l.push("resumed");
        }
        .frame(),
    );
    // The hook is dropped where its guard drops: inside the closure's frame.
    assert_eq!(
        log.lines(),
        ["h:drop v=Some(1)", "guard dropped", "resumed"]
    );
}

#[test]
fn a_guard_dropped_two_frames_down_is_removed_at_once() {
    let log = Log::default();
    let l = log.clone();
    block_on(
        async move {
            let _b = V.set(5);
            let h = Rec::enter("h", &l);
            async move {
                let _inner = V.set(6);
                V.sync_scope(7, move || drop(h));
            }
            .frame()
            .await;
            l.push(format!("after v={:?}", V.get()));
            yield_once().await;
        }
        .frame(),
    );
    assert_eq!(log.lines(), ["h:drop v=Some(7)", "after v=Some(5)"]);
}

#[test]
fn a_binding_dropped_in_a_nested_frame_is_gone_when_the_nested_frame_returns() {
    block_on(
        async {
            let b = V.set(1);
            let seen_inside = async move {
                drop(b);
                // The nested frame took its context when it was created.
                V.get()
            }
            .frame()
            .await;
            assert_eq!(seen_inside, Some(1));
            assert_eq!(V.get(), None);
        }
        .frame(),
    );
}

#[test]
fn a_guard_dropped_on_the_base_frames_thread_inside_a_closure_frame_acts_at_once() {
    // A plain thread's base frame accepts hooks; it is entered below every
    // frame of its thread.
    thread::spawn(|| {
        let log = Log::default();
        let h = Rec::enter("h", &log);
        V.sync_scope(3, || drop(h));
        log.push("guard dropped");
        assert_eq!(log.lines(), ["h:drop v=Some(3)", "guard dropped"]);
    })
    .join()
    .unwrap();
}

#[test]
fn a_guard_dropped_on_another_thread_while_its_frame_runs_defers() {
    // The frame is entered on this thread, the guard dropped on another: the
    // removal waits for the frame's next resume.
    let log = Log::default();
    let l = log.clone();
    block_on(
        async move {
            let h = Rec::enter("h", &l);
            thread::spawn(move || drop(h)).join().unwrap();
            l.push("guard dropped");
            yield_once().await;
            l.push("resumed");
        }
        .frame(),
    );
    // Still registered when the frame yields; removed at the next resume,
    // where it is resumed first (a hook is always dropped entered).
    assert_eq!(
        log.lines(),
        [
            "guard dropped",
            "h:yield v=None",
            "h:resume v=None",
            "h:drop v=None",
            "resumed"
        ]
    );
}

#[test]
fn a_guard_dropped_on_its_frames_thread_while_the_frame_is_suspended_defers() {
    // The task's frame was entered below a nested frame during its poll,
    // then suspended: its guard, dropped on the same thread before the
    // next poll, finds the frame suspended, not entered below, and defers.
    // (Were the frame still marked entered here, the guard would remove
    // the hook at once, in a frame it does not run in: between polls, or
    // while another thread polls it.)
    for nested in [false, true] {
        let log = Log::default();
        let l = log.clone();
        let handoff: Arc<Mutex<Option<HookGuard>>> = Arc::default();
        let h2 = handoff.clone();
        let mut task = pin!(async move {
            *h2.lock().unwrap() = Some(Rec::enter("h", &l));
            if nested {
                async { yield_once().await }.frame().await;
            } else {
                yield_once().await;
            }
            l.push("resumed");
        }
        .frame());
        assert!(poll_once(task.as_mut()).is_pending());
        let h = handoff.lock().unwrap().take().unwrap();
        drop(h);
        log.push("guard dropped");
        assert!(poll_once(task.as_mut()).is_ready());
        assert_eq!(
            log.lines(),
            [
                "h:yield v=None",
                "guard dropped",
                "h:resume v=None",
                "h:drop v=None",
                "resumed"
            ],
            "nested: {nested}"
        );
    }
}

// ===== D4: deferred removals one at a time, in drop order =====

#[test]
fn deferred_removals_are_applied_one_at_a_time_in_drop_order() {
    let log = Log::default();
    let l = log.clone();
    let handoff: Arc<Mutex<Option<(HookGuard, spawn_hooks::Binding)>>> = Arc::default();
    let h2 = handoff.clone();
    let mut task = pin!(async move {
        let b = V.set(9);
        let h = Rec::enter("h", &l);
        *h2.lock().unwrap() = Some((h, b));
        yield_once().await;
        l.push(format!("resumed v={:?}", V.get()));
    }
    .frame());
    assert!(poll_once(task.as_mut()).is_pending());
    // Another thread drops the hook's guard, then the binding's.
    let (h, b) = handoff.lock().unwrap().take().unwrap();
    thread::spawn(move || {
        drop(h);
        drop(b);
    })
    .join()
    .unwrap();
    assert!(poll_once(task.as_mut()).is_ready());
    // Dropped in place, the hook would see its value: so it must here.
    assert_eq!(
        log.lines(),
        [
            "h:yield v=Some(9)",
            "h:resume v=Some(9)",
            "h:drop v=Some(9)",
            "resumed v=None"
        ]
    );
}

#[test]
fn removals_deferred_for_a_cancelled_frame_keep_their_order() {
    let log = Log::default();
    let l = log.clone();
    let handoff: Arc<Mutex<Vec<HookGuard>>> = Arc::default();
    let bindings: Arc<Mutex<Vec<spawn_hooks::Binding>>> = Arc::default();
    let (h2, b2) = (handoff.clone(), bindings.clone());
    let mut task = Box::pin(
        async move {
            b2.lock().unwrap().push(V.set(1));
            h2.lock().unwrap().push(Rec::enter("a", &l));
            b2.lock().unwrap().push(V.set(2));
            h2.lock().unwrap().push(Rec::enter("b", &l));
            yield_once().await;
        }
        .frame(),
    );
    assert!(poll_once(task.as_mut()).is_pending());
    log.take();
    let hooks = std::mem::take(&mut *handoff.lock().unwrap());
    let binds = std::mem::take(&mut *bindings.lock().unwrap());
    // Dropped elsewhere in this order: b, the binding of 2, a, the binding of 1.
    thread::spawn(move || {
        let mut hooks = hooks;
        let mut binds = binds;
        drop(hooks.pop());
        drop(binds.pop());
        drop(hooks.pop());
        drop(binds.pop());
    })
    .join()
    .unwrap();
    drop(task); // cancelled: resumed, removals applied, then teardown
    assert_eq!(
        log.lines(),
        [
            "b:resume v=Some(2)",
            "b:drop v=Some(2)",
            "a:resume v=Some(1)",
            "a:drop v=Some(1)",
        ]
    );
}

// ===== D5: a binding dropped inside a `with` callback =====

#[test]
fn a_binding_dropped_inside_a_with_callback_is_not_read_back() {
    let seen = V.sync_scope(1, || {
        let g = V.set(2);
        V.with(move |_| {
            drop(g);
            V.get()
        })
    });
    assert_eq!(seen, Some(1));
}

#[test]
fn a_binding_dropped_inside_a_with_callback_is_gone_after_it() {
    V.sync_scope(1, || {
        let g = V.set(2);
        let outer = V.with(move |v| {
            let v = v.copied();
            drop(g);
            v
        });
        assert_eq!(outer, Some(2));
        assert_eq!(V.get(), Some(1));
    });
}

#[test]
fn a_hook_guard_dropped_inside_a_with_callback_is_dropped_when_the_callback_returns() {
    let log = Log::default();
    V.sync_scope(1, || {
        let h = Rec::enter("h", &log);
        V.with(|_| drop(h));
        log.push("after with");
    });
    assert_eq!(log.lines(), ["h:drop v=Some(1)", "after with"]);
}
