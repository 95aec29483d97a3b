//! Span guards held across awaits: with `ctx::tracing::enter`, two tasks
//! interleaving on one thread have every event under exactly their own span,
//! and events outside them under none; with plain `span.enter()` guards the
//! same scenario misattributes (the control that proves the check can fail).
#![cfg(feature = "tracing")]

mod tracing_support;

use rt_ext::{self as ctx, FutureExt as _};
use tokio::task::{yield_now, LocalSet};
use tracing::{info, info_span, Instrument as _};
use tracing_support::{dispatch, Record};

#[derive(Clone, Copy)]
enum Guard {
    Ctx,
    Plain,
}

async fn task(id: u64, guard: Guard) {
    let span = info_span!("task", id);
    match guard {
        Guard::Ctx => {
            let _entered = ctx::tracing::enter(&span);
            steps(id).await;
        }
        Guard::Plain => {
            let _entered = span.enter();
            steps(id).await;
        }
    }
}

async fn steps(id: u64) {
    for step in 0..4 {
        info!(task = id, step, "step");
        yield_now().await;
    }
}

/// Runs two tasks and the root interleaving on one thread; returns every
/// event recorded.
fn interleave(guard: Guard) -> Vec<Record> {
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        let local = LocalSet::new();
        rt.block_on(local.run_until(async move {
            info!("outside");
            let a = ctx::spawn_local(task(1, guard));
            let b = ctx::spawn_local(task(2, guard));
            for _ in 0..6 {
                yield_now().await;
                info!("outside");
            }
            a.await.unwrap();
            b.await.unwrap();
            info!("outside");
        }));
    });
    records.all()
}

/// Events not under exactly their own span: a `step` must be under
/// `task{id=N}` alone, an `outside` event under no span.
fn misattributed(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| match r.field("task") {
            Some(id) => r.spans != [format!("task{{id={id}}}")],
            None => !r.spans.is_empty(),
        })
        .collect()
}

#[test]
fn each_event_is_under_exactly_its_own_span() {
    let records = interleave(Guard::Ctx);
    assert_eq!(
        records.iter().filter(|r| r.field("task").is_some()).count(),
        8
    );
    assert_eq!(
        records.iter().filter(|r| r.field("task").is_none()).count(),
        8
    );
    // The tasks did interleave: the second started before the first ended.
    let pos = |task: &str, step: &str| {
        records
            .iter()
            .position(|r| r.field("task") == Some(task) && r.field("step") == Some(step))
            .unwrap()
    };
    assert!(pos("2", "0") < pos("1", "3"));
    assert_eq!(misattributed(&records), Vec::<&Record>::new());
}

#[test]
fn control_plain_guards_misattribute() {
    let records = interleave(Guard::Plain);
    assert_eq!(records.len(), 16);
    let wrong = misattributed(&records);
    assert!(!wrong.is_empty(), "plain guards should misattribute");
    // Among them, events outside the tasks logged under a task's span.
    assert!(wrong
        .iter()
        .any(|r| r.field("task").is_none() && !r.spans.is_empty()));
}

/// A nested span guard and a call to an instrumented async fn whose framed
/// body holds its own guard, in two tasks: every event under its own chain.
#[test]
fn nested_guards_and_instrumented_calls() {
    async fn render(id: u64) {
        async move {
            let span = info_span!("chunk");
            let _chunk = ctx::tracing::enter(&span);
            yield_now().await;
            info!(task = id, "rendered");
        }
        .frame()
        .instrument(info_span!("render"))
        .await
    }

    async fn request(id: u64) {
        let span = info_span!("task", id);
        let _task = ctx::tracing::enter(&span);
        {
            let span = info_span!("load");
            let _load = ctx::tracing::enter(&span);
            yield_now().await;
            info!(task = id, "loaded");
        }
        render(id).await;
        yield_now().await;
        info!(task = id, "done");
    }

    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let a = ctx::spawn(request(1));
            let b = ctx::spawn(request(2));
            yield_now().await;
            info!("outside");
            a.await.unwrap();
            b.await.unwrap();
        });
    });
    for r in records.all() {
        let expected: Vec<String> = match (r.message.as_str(), r.field("task")) {
            ("loaded", Some(id)) => vec!["load".into(), format!("task{{id={id}}}")],
            ("rendered", Some(id)) => {
                vec!["chunk".into(), "render".into(), format!("task{{id={id}}}")]
            }
            ("done", Some(id)) => vec![format!("task{{id={id}}}")],
            ("outside", None) => vec![],
            _ => panic!("unexpected event {r:?}"),
        };
        assert_eq!(r.spans, expected, "{r:?}");
    }
    assert_eq!(records.all().len(), 7);
}

/// A guard dropped on another thread than its task's exits the span on the
/// task's thread when the task next runs, never on the dropping thread.
#[test]
fn guard_dropped_elsewhere_exits_with_its_task() {
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let span = info_span!("task", id = 1);
            let guard = ctx::tracing::enter(&span);
            std::thread::scope(|s| {
                s.spawn(move || drop(guard));
            });
            yield_now().await;
            info!("outside");
        });
    });
    let records = records.all();
    assert_eq!(records.len(), 1);
    assert!(records[0].spans.is_empty(), "{records:?}");
}

/// A task that panics, and a task aborted while suspended, each holding a
/// span guard, leave no span entered on the thread.
#[test]
fn no_span_left_entered_after_a_panic_or_a_cancellation() {
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let panicking = ctx::spawn(async {
                let span = info_span!("task", id = 1);
                let _entered = ctx::tracing::enter(&span);
                yield_now().await;
                info!(task = 1, "about to panic");
                panic!("expected by the test");
            });
            assert!(panicking.await.unwrap_err().is_panic());
            info!("outside");

            let cancelled = ctx::spawn(async {
                let span = info_span!("task", id = 2);
                let _entered = ctx::tracing::enter(&span);
                info!(task = 2, "waiting");
                std::future::pending::<()>().await;
            });
            yield_now().await;
            cancelled.abort();
            assert!(cancelled.await.unwrap_err().is_cancelled());
            info!("outside");
            assert!(tracing::Span::current().is_none());
        });
    });
    let records = records.all();
    assert_eq!(records.len(), 4, "{records:?}");
    assert_eq!(misattributed(&records), Vec::<&Record>::new());
}

/// A span guard dropped inside a nested frame (a `.frame()`d block, a
/// `sync_scope` closure) exits its span at once: the events after the drop
/// are no longer in it, before and after the next suspension.
#[test]
fn a_span_guard_dropped_in_a_nested_frame_exits_its_span_at_once() {
    static V: ctx::Variable<u8> = ctx::Variable::new("v");
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let outer = info_span!("outer");
            let _o = ctx::tracing::enter(&outer);
            let inner = info_span!("inner");
            let g = ctx::tracing::enter(&inner);
            async move { drop(g) }.frame().await;
            info!("after frame drop");
            yield_now().await;
            info!("after frame drop, resumed");

            let g = ctx::tracing::enter(&inner);
            V.sync_scope(1, move || drop(g));
            info!("after closure drop");
            yield_now().await;
            info!("after closure drop, resumed");
        });
    });
    for message in [
        "after frame drop",
        "after frame drop, resumed",
        "after closure drop",
        "after closure drop, resumed",
    ] {
        let got = records.with_message(message);
        assert_eq!(got.len(), 1, "{message}");
        assert_eq!(got[0].spans, ["outer"], "{message}");
    }
}
