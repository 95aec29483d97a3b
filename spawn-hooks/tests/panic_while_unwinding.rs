//! Invariant 4 where it is hardest: user code that panics while the thread is
//! already unwinding (a future polled or dropped from a destructor during a
//! panic), and destructors that panic after a future's `Ready`. The process
//! must never abort, and hooks are dropped entered, in their frame.
//!
//! A scenario that used to abort runs in a child process (this test binary,
//! re-executed with only that test selected), so that an abort fails the test
//! instead of killing the suite.

mod support;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use spawn_hooks::{enter, FutureExt, Inherit, Inheritance, Lifecycle, Snapshot, Variable};
use support::{poll_once, yield_once};

static V: Variable<u32> = Variable::new("v");

const CHILD: &str = "SPAWN_HOOKS_TEST_CHILD";
const DONE: &str = "scenario finished";

/// Runs `scenario` in a child process (this test binary, selecting only
/// `test`), and asserts that it ran to its end and the child exited normally.
fn in_child(test: &str, scenario: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(test) {
        scenario();
        println!("{DONE}");
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(DONE),
        "the child running `{test}` did not finish: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

type Log = Arc<Mutex<Vec<String>>>;

/// A hook that logs what it sees, and panics in the callbacks it is told to.
struct Hook {
    log: Log,
    panic_on_resume: bool,
    panic_on_drop: bool,
}

impl Hook {
    fn new(log: &Log) -> Hook {
        Hook {
            log: log.clone(),
            panic_on_resume: false,
            panic_on_drop: false,
        }
    }
    fn panicking_on_resume(mut self) -> Hook {
        self.panic_on_resume = true;
        self
    }
    fn panicking_on_drop(mut self) -> Hook {
        self.panic_on_drop = true;
        self
    }
    fn note(&self, what: &str) {
        if let Ok(mut log) = self.log.lock() {
            log.push(format!("{what} v={:?}", V.get()));
        }
    }
}

impl Lifecycle for Hook {
    fn on_yield(&mut self) {
        self.note("yield");
    }
    fn on_resume(&mut self) {
        self.note("resume");
        if self.panic_on_resume {
            panic!("hook: on_resume");
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.note("drop");
        if self.panic_on_drop {
            panic!("hook: drop");
        }
    }
}

/// Polls its future once when dropped.
struct PollOnDrop(Option<Pin<Box<dyn Future<Output = ()>>>>);

impl Drop for PollOnDrop {
    fn drop(&mut self) {
        if let Some(mut f) = self.0.take() {
            let _ = poll_once(f.as_mut());
        }
    }
}

// ===== D1: a hook's `on_resume` panics while the thread unwinds =====

#[test]
fn a_hook_panicking_on_resume_during_unwinding_does_not_abort() {
    in_child(
        "a_hook_panicking_on_resume_during_unwinding_does_not_abort",
        || {
            let log = Log::default();
            let l = log.clone();
            let mut f: Pin<Box<dyn Future<Output = ()>>> = Box::pin(
                async move {
                    let _h = enter(Hook::new(&l).panicking_on_resume());
                    yield_once().await;
                    l.lock().unwrap().push("body went on".into());
                }
                .frame(),
            );
            assert!(poll_once(f.as_mut()).is_pending());
            let outer = catch_unwind(AssertUnwindSafe(|| {
                let _d = PollOnDrop(Some(f));
                panic!("outer");
            }));
            assert!(outer.is_err());
            // The hook's panic is discarded (the thread was unwinding), the
            // hook dropped, and the poll went on without it.
            assert_eq!(
                *log.lock().unwrap(),
                [
                    "yield v=None",
                    "resume v=None",
                    "drop v=None",
                    "body went on"
                ]
            );
            assert!(Snapshot::capture().is_empty());
        },
    );
}

#[test]
fn a_hook_panicking_on_resume_outside_unwinding_panics_the_poll() {
    let log = Log::default();
    let l = log.clone();
    let mut f = Box::pin(
        async move {
            let _h = enter(Hook::new(&l).panicking_on_resume());
            yield_once().await;
            l.lock().unwrap().push("body went on".into());
        }
        .frame(),
    );
    assert!(poll_once(f.as_mut()).is_pending());
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(f.as_mut()))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"hook: on_resume"));
    assert_eq!(
        *log.lock().unwrap(),
        ["yield v=None", "resume v=None", "drop v=None"]
    );
    assert!(Snapshot::capture().is_empty());
}

// ===== D2: a future whose destructor panics after `Ready` =====

/// Registers a hook (its guard forgotten) and returns `Ready`; its own
/// destructor panics.
struct ReadyThenPanicOnDrop {
    hook: Option<Hook>,
}

impl Future for ReadyThenPanicOnDrop {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        std::mem::forget(enter(self.hook.take().unwrap()));
        Poll::Ready(())
    }
}

impl Drop for ReadyThenPanicOnDrop {
    fn drop(&mut self) {
        panic!("future: drop");
    }
}

#[test]
fn a_future_panicking_in_drop_after_ready_still_ends_its_frame() {
    let log = Log::default();
    let mut f = Box::pin(V.scope(
        60,
        ReadyThenPanicOnDrop {
            hook: Some(Hook::new(&log)),
        },
    ));
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(f.as_mut()))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"future: drop"));
    // The hook is dropped in its frame, entered: never yielded.
    assert_eq!(*log.lock().unwrap(), ["drop v=Some(60)"]);
    drop(f);
    assert_eq!(log.lock().unwrap().len(), 1);
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn a_future_and_its_hook_both_panicking_in_drop_after_ready_do_not_abort() {
    in_child(
        "a_future_and_its_hook_both_panicking_in_drop_after_ready_do_not_abort",
        || {
            let log = Log::default();
            let mut f = Box::pin(V.scope(
                60,
                ReadyThenPanicOnDrop {
                    hook: Some(Hook::new(&log).panicking_on_drop()),
                },
            ));
            let err = catch_unwind(AssertUnwindSafe(|| poll_once(f.as_mut()))).unwrap_err();
            assert_eq!(err.downcast_ref::<&str>(), Some(&"future: drop"));
            assert_eq!(*log.lock().unwrap(), ["drop v=Some(60)"]);
            drop(f);
            assert!(Snapshot::capture().is_empty());
        },
    );
}

// ===== a hook's guard dropped in its frame, the hook panicking in drop =====

#[test]
fn a_hook_panicking_in_drop_panics_out_of_its_guards_drop() {
    let log = Log::default();
    let l = log.clone();
    let mut f = Box::pin(
        async move {
            let _v = V.set(7);
            let guard = enter(Hook::new(&l).panicking_on_drop());
            yield_once().await;
            // Dropped in its frame: removed at once, and its panic goes on
            // from here.
            drop(guard);
            unreachable!("the guard's drop panics");
        }
        .frame(),
    );
    assert!(poll_once(f.as_mut()).is_pending());
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(f.as_mut()))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"hook: drop"));
    // Yielded, resumed, then dropped once, entered, in its frame.
    assert_eq!(
        *log.lock().unwrap(),
        ["yield v=Some(7)", "resume v=Some(7)", "drop v=Some(7)"]
    );
    drop(f);
    assert_eq!(log.lock().unwrap().len(), 3, "the hook was dropped twice");
    assert!(Snapshot::capture().is_empty());
}

#[test]
fn a_hook_guard_dropped_while_its_future_unwinds_with_a_panicking_hook_does_not_abort() {
    in_child(
        "a_hook_guard_dropped_while_its_future_unwinds_with_a_panicking_hook_does_not_abort",
        || {
            let log = Log::default();
            let l = log.clone();
            let mut f = Box::pin(
                async move {
                    let _v = V.set(8);
                    let _guard = enter(Hook::new(&l).panicking_on_drop());
                    yield_once().await;
                    panic!("body");
                }
                .frame(),
            );
            assert!(poll_once(f.as_mut()).is_pending());
            // The body's panic unwinds through the guard, which drops the
            // hook in its frame; the hook's panic is discarded, not a second
            // panic during unwinding.
            let err = catch_unwind(AssertUnwindSafe(|| poll_once(f.as_mut()))).unwrap_err();
            assert_eq!(err.downcast_ref::<&str>(), Some(&"body"));
            assert_eq!(
                *log.lock().unwrap(),
                ["yield v=Some(8)", "resume v=Some(8)", "drop v=Some(8)"]
            );
            drop(f);
            assert!(Snapshot::capture().is_empty());
        },
    );
}

// ===== inherited hooks (a spawn's child hook) =====

/// Gives each child a [`Hook`] that panics on resume (and on drop, if told).
struct GivesPanicking {
    log: Log,
    panic_on_drop: bool,
}

impl Inherit for GivesPanicking {
    type Hook = Hook;

    fn child(&self, _: &Snapshot) -> Option<Hook> {
        let hook = Hook::new(&self.log).panicking_on_resume();
        Some(if self.panic_on_drop {
            hook.panicking_on_drop()
        } else {
            hook
        })
    }
}

#[test]
fn an_inherited_hook_panicking_while_the_thread_unwinds_does_not_abort() {
    in_child(
        "an_inherited_hook_panicking_while_the_thread_unwinds_does_not_abort",
        || {
            for panic_on_drop in [false, true] {
                let log = Log::default();
                let gives = GivesPanicking {
                    log: log.clone(),
                    panic_on_drop,
                };
                let l = log.clone();
                // Polled for the first time from a destructor, during a panic.
                let child: Pin<Box<dyn Future<Output = ()>>> =
                    Box::pin(Inheritance::capture(&gives).scope(async move {
                        l.lock().unwrap().push("body ran".into());
                    }));
                let outer = catch_unwind(AssertUnwindSafe(|| {
                    let _d = PollOnDrop(Some(child));
                    panic!("outer");
                }));
                assert!(outer.is_err());
                // The hook's panics are discarded, the hook dropped, and the
                // poll went on without it.
                assert_eq!(
                    *log.lock().unwrap(),
                    ["resume v=None", "drop v=None", "body ran"]
                );
            }
        },
    );
}

#[test]
fn an_inherited_hook_panicking_outside_unwinding_panics_the_poll() {
    let log = Log::default();
    let gives = GivesPanicking {
        log: log.clone(),
        panic_on_drop: false,
    };
    let mut child = Box::pin(Inheritance::capture(&gives).scope(async {}));
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(child.as_mut()))).unwrap_err();
    assert_eq!(err.downcast_ref::<&str>(), Some(&"hook: on_resume"));
    assert_eq!(*log.lock().unwrap(), ["resume v=None", "drop v=None"]);
    // Gone with its panic: nothing is called again when the child drops.
    drop(child);
    assert_eq!(log.lock().unwrap().len(), 2);
}
