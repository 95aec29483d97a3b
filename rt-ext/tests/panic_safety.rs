//! Invariant 4, panic safety: a panic in a polled future, a hook, or a
//! value's destructor never leaves a foreign frame installed and never aborts
//! the process.

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use rt_ext::{self as ctx, FutureExt as _, Lifecycle};
use support::{yield_once, Event, Log, Recorder};

static VALUE: ctx::Variable<u32> = ctx::Variable::new("value");

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// Asserts that the calling thread is in an empty base frame.
fn assert_clean() {
    assert_eq!(VALUE.get(), None, "a binding was left installed");
    assert!(
        ctx::Snapshot::capture().is_empty(),
        "a context was left installed"
    );
}

#[test]
fn a_task_panicking_mid_poll_leaves_the_worker_clean() {
    let log = log();
    // One worker thread, so the next task certainly runs where the panic was.
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    let l = log.clone();
    rt.block_on(async move {
        let failed = ctx::spawn(async move {
            let _v = VALUE.set(1);
            let _h = ctx::enter(Recorder::new("h", &l));
            yield_once().await;
            let _w = VALUE.set(2);
            panic!("boom mid-poll");
        });
        let err = failed.await.unwrap_err();
        assert!(err.is_panic());
        // A plain task, polled in the worker's base frame, finds it clean.
        tokio::spawn(async { assert_clean() }).await.unwrap();
    });
    assert_clean();
    use Event::*;
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            Yield("h"),
            Resume("h"),
            // Unwinding drops the async block's locals, guards included,
            // while its frame is still current: the hook goes entered.
            Dropped {
                name: "h",
                entered: true
            },
        ]
    );
}

#[test]
fn a_panic_in_a_framed_future_restores_the_outer_frame() {
    let _outer = VALUE.set(7);
    let result = catch_unwind(AssertUnwindSafe(|| {
        futures::executor::block_on(
            async {
                let _inner = VALUE.set(8);
                panic!("inner");
            }
            .frame(),
        )
    }));
    assert!(result.is_err());
    assert_eq!(VALUE.get(), Some(7));
}

struct PanicsOn {
    on_yield: bool,
    on_resume: bool,
    log: Log,
}

impl Lifecycle for PanicsOn {
    fn on_yield(&mut self) {
        self.log.lock().unwrap().push(Event::Note("yield".into()));
        if self.on_yield {
            panic!("hook panics on yield");
        }
    }
    fn on_resume(&mut self) {
        self.log.lock().unwrap().push(Event::Note("resume".into()));
        if self.on_resume {
            panic!("hook panics on resume");
        }
    }
}

#[test]
fn a_hook_panicking_on_yield_or_resume_leaves_the_worker_clean() {
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    for (on_yield, on_resume) in [(true, false), (false, true)] {
        let log = log();
        let l = log.clone();
        rt.block_on(async move {
            let task = ctx::spawn(async move {
                let _v = VALUE.set(3);
                let _other = ctx::enter(Recorder::new("other", &l));
                let _p = ctx::enter(PanicsOn {
                    on_yield,
                    on_resume,
                    log: l.clone(),
                });
                yield_once().await;
                yield_once().await;
            });
            assert!(task.await.unwrap_err().is_panic());
            tokio::spawn(async { assert_clean() }).await.unwrap();
        });
        // The other hook still alternated and was dropped entered.
        let log = log.lock().unwrap();
        let other: Vec<_> = log
            .iter()
            .filter(|e| !matches!(e, Event::Note(_)))
            .cloned()
            .collect();
        assert_eq!(
            other.last(),
            Some(&Event::Dropped {
                name: "other",
                entered: true
            }),
            "{log:?}"
        );
    }
    assert_clean();
}

/// A value whose destructor panics.
#[derive(Clone)]
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("value destructor panics");
        }
        // Panicking while unwinding would abort: the core must not put us
        // here, so make that case loud too.
        panic!("value destructor panics during unwinding");
    }
}

static NOISY: ctx::Variable<PanicsOnDrop> = ctx::Variable::new("noisy");

#[test]
fn a_panicking_value_destructor_never_aborts_and_restores_the_frame() {
    // Left behind in a closure frame that unwinds: the core drops it while
    // unwinding, catches its panic and discards it instead of aborting.
    let result = catch_unwind(|| {
        ctx::Snapshot::empty().run(|| {
            std::mem::forget(NOISY.set(PanicsOnDrop));
            panic!("closure panics");
        })
    });
    assert!(result.is_err());
    assert_clean();

    // Left behind in a task that completes: the panic surfaces from the
    // task, after its frame is gone from the worker.
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let task = ctx::spawn(async {
            std::mem::forget(NOISY.set(PanicsOnDrop));
            yield_once().await;
        });
        assert!(task.await.unwrap_err().is_panic());
        tokio::spawn(async { assert_clean() }).await.unwrap();
    });

    // Dropped by its guard: the panic goes to the code that dropped it, and
    // the binding is gone all the same.
    let result = catch_unwind(|| {
        let binding = NOISY.set(PanicsOnDrop);
        drop(binding);
    });
    assert!(result.is_err());
    assert!(NOISY.with(|v| v.is_none()));
    assert_clean();
}

#[test]
fn a_task_panicking_with_a_leaked_hook_is_yielded_then_torn_down() {
    // A guard that outlives the unwinding (forgotten) leaves the hook in the
    // frame: the unwinding poll runs its on_yield, and dropping the task
    // resumes it before dropping it.
    let log = log();
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    let l = log.clone();
    rt.block_on(async move {
        let task = ctx::spawn(async move {
            std::mem::forget(ctx::enter(Recorder::new("h", &l)));
            yield_once().await;
            panic!("boom");
        });
        assert!(task.await.unwrap_err().is_panic());
        tokio::spawn(async { assert_clean() }).await.unwrap();
    });
    use Event::*;
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            Yield("h"),
            Resume("h"),
            Yield("h"),
            Resume("h"),
            Dropped {
                name: "h",
                entered: true
            },
        ]
    );
}
