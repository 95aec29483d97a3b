//! The held-across-await detector: a `std::sync::MutexGuard` wrapped in
//! `ctx::no_suspend` and held across an await is reported (a warning with the
//! location where it was wrapped, the counter, and a panic when asked for);
//! dropped before the await, nothing is reported.
#![cfg(feature = "tracing")]
// Holding a lock across an await is what these tests are about.
#![allow(clippy::await_holding_lock)]

mod tracing_support;

use std::sync::Mutex;

use rt_ext as ctx;
use tokio::task::yield_now;
use tracing::info_span;
use tracing_support::{dispatch, Records};

/// The counter and the panic switch are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

static SHARED: Mutex<u32> = Mutex::new(0);

fn warnings(records: &Records) -> Vec<tracing_support::Record> {
    records
        .all()
        .into_iter()
        .filter(|r| r.message.starts_with("a value that must not be held"))
        .collect()
}

#[test]
fn a_mutex_guard_held_across_an_await_is_reported_with_its_location() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (dispatch, records) = dispatch();
    let before = ctx::suspended_while_held();
    let line = tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let span = info_span!("task");
            let _entered = ctx::tracing::enter(&span);
            let line = line!() + 1;
            let mut guard = ctx::no_suspend(SHARED.lock().unwrap());
            **guard += 1;
            yield_now().await; // reported
            yield_now().await; // and again
            drop(guard);
            yield_now().await; // released: silent
            line
        })
    });
    assert_eq!(ctx::suspended_while_held() - before, 2);
    let found = warnings(&records);
    assert_eq!(found.len(), 2, "{found:?}");
    let location = format!("{}:{line}:", file!());
    for w in &found {
        assert!(w.field("location").unwrap().starts_with(&location), "{w:?}");
        assert!(w.field("held").unwrap().contains("MutexGuard"), "{w:?}");
        // Reported inside the task's span, before it exits.
        assert_eq!(w.spans, ["task"]);
    }
}

#[test]
fn a_guard_dropped_before_the_await_is_not_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (dispatch, records) = dispatch();
    let before = ctx::suspended_while_held();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for _ in 0..3 {
                {
                    let mut guard = ctx::no_suspend(SHARED.lock().unwrap());
                    **guard += 1;
                }
                yield_now().await;
            }
            // Never suspended while held, ends with its frame.
            let _held_to_the_end = ctx::no_suspend(SHARED.lock().unwrap());
        });
        // Spawned tasks too.
        rt.block_on(async {
            ctx::spawn(async {
                let n = {
                    let guard = ctx::no_suspend(SHARED.lock().unwrap());
                    **guard
                };
                yield_now().await;
                n
            })
            .await
            .unwrap()
        });
    });
    assert_eq!(ctx::suspended_while_held(), before);
    assert!(warnings(&records).is_empty());
}

#[test]
fn strict_wrappers_and_the_switch_panic() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    // Poisoned by the panics below: that is expected.
    let lock = Mutex::new(0);
    let acquire = || lock.lock().unwrap_or_else(|e| e.into_inner());
    let run = |strict: bool| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                let _guard = if strict {
                    ctx::NoSuspend::strict(acquire())
                } else {
                    ctx::no_suspend(acquire())
                };
                yield_now().await;
            })
        }))
    };
    assert!(run(true).is_err());
    assert!(run(false).is_ok());
    ctx::set_panic_on_suspend(true);
    let switched = run(false);
    ctx::set_panic_on_suspend(false);
    let message = switched.unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("MutexGuard"), "{message}");
    assert!(message.contains(file!()), "{message}");
    // The lock was released by the unwinding task.
    assert!(!matches!(
        lock.try_lock(),
        Err(std::sync::TryLockError::WouldBlock)
    ));
}
