//! `HookGuard::release_keeping`: the guard's `keep` is called only where the
//! hook's drop has to wait, and what it returns is dropped after the hook,
//! wherever that happens: at the frame's next resume, when a pass over the
//! hooks ends, or at once when the frame has already ended.

mod support;

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::thread;

use futures::executor::block_on;
use spawn_hooks::{enter, FutureExt, HookGuard, Lifecycle};
use support::{poll_once, yield_once, Log};

/// A hook that logs its calls and its drop.
struct Rec(&'static str, Log);

impl Lifecycle for Rec {
    fn on_yield(&mut self) {
        self.1.push(format!("{}:yield", self.0));
    }
    fn on_resume(&mut self) {
        self.1.push(format!("{}:resume", self.0));
    }
}

impl Drop for Rec {
    fn drop(&mut self) {
        self.1.push(format!("{}:drop", self.0));
    }
}

/// What a guard hands over: logs its making and its drop.
struct Kept(Log);

impl Drop for Kept {
    fn drop(&mut self) {
        self.0.push("kept:drop");
    }
}

fn release(guard: HookGuard, log: &Log) {
    guard.release_keeping(|| {
        log.push("kept:made");
        Kept(log.clone())
    });
}

#[test]
fn in_its_frame_nothing_is_kept() {
    let log = Log::default();
    let l = log.clone();
    block_on(
        async move {
            let h = enter(Rec("h", l.clone()));
            yield_once().await;
            release(h, &l);
            l.push("released");
        }
        .frame(),
    );
    assert_eq!(log.lines(), ["h:yield", "h:resume", "h:drop", "released"]);
}

#[test]
fn dropped_on_another_thread_while_its_frame_runs_it_is_kept_until_the_hook_goes() {
    let log = Log::default();
    let l = log.clone();
    block_on(
        async move {
            let h = enter(Rec("h", l.clone()));
            let l2 = l.clone();
            thread::spawn(move || release(h, &l2)).join().unwrap();
            l.push("released");
            yield_once().await;
            l.push("resumed");
        }
        .frame(),
    );
    assert_eq!(
        log.lines(),
        [
            "kept:made",
            "released",
            "h:yield",
            "h:resume",
            "h:drop",
            "kept:drop",
            "resumed"
        ]
    );
}

#[test]
fn dropped_while_its_frame_is_suspended_it_is_kept_until_the_next_resume() {
    let log = Log::default();
    let l = log.clone();
    let slot: Arc<Mutex<Option<HookGuard>>> = Arc::default();
    let s = slot.clone();
    let mut fut = pin!(async move {
        *s.lock().unwrap() = Some(enter(Rec("h", l.clone())));
        yield_once().await;
        l.push("resumed");
    }
    .frame());
    assert!(poll_once(fut.as_mut()).is_pending());
    let h = slot.lock().unwrap().take().unwrap();
    let l = log.clone();
    thread::spawn(move || release(h, &l)).join().unwrap();
    log.push("released");
    assert!(poll_once(fut.as_mut()).is_ready());
    assert_eq!(
        log.lines(),
        [
            "h:yield",
            "kept:made",
            "released",
            "h:resume",
            "h:drop",
            "kept:drop",
            "resumed"
        ]
    );
}

/// A hook whose `on_yield` releases another hook's guard: that hook is
/// marked gone during the pass and dropped when it ends, then what its guard
/// handed over.
struct Releaser {
    other: Arc<Mutex<Option<HookGuard>>>,
    log: Log,
}

impl Lifecycle for Releaser {
    fn on_yield(&mut self) {
        if let Some(guard) = self.other.lock().unwrap().take() {
            release(guard, &self.log);
        }
    }
    fn on_resume(&mut self) {}
}

#[test]
fn dropped_by_another_hook_during_a_pass_it_is_kept_until_the_pass_ends() {
    let log = Log::default();
    let l = log.clone();
    block_on(
        async move {
            let other = Arc::new(Mutex::new(Some(enter(Rec("h", l.clone())))));
            // Newer, so it yields first: `h` goes before its own turn.
            let _r = enter(Releaser {
                other,
                log: l.clone(),
            });
            yield_once().await;
            l.push("resumed");
        }
        .frame(),
    );
    assert_eq!(log.lines(), ["kept:made", "h:drop", "kept:drop", "resumed"]);
}

#[test]
fn dropped_after_its_frame_ended_what_it_keeps_goes_at_once() {
    let log = Log::default();
    let l = log.clone();
    let h = block_on(async move { enter(Rec("h", l)) }.frame());
    log.push("frame ended");
    release(h, &log);
    log.push("released");
    assert_eq!(
        log.lines(),
        [
            "h:drop",
            "frame ended",
            "kept:made",
            "kept:drop",
            "released"
        ]
    );
}
