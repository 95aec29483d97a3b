//! Span guards under instrumentation: a guard taken inside a future
//! instrumented with `rt_ext::tracing::Instrument` (or in a callee of one)
//! logs every event after every await under `outer:inner`, with tasks
//! migrating between two workers; the same code under tracing's own
//! `Instrument` nests the wrong way, and the broken nesting is reported
//! with a warning, once per call site of `enter`, naming it.
#![cfg(feature = "tracing")]

mod tracing_support;

use rt_ext as ctx;
use tokio::task::yield_now;
use tracing::{info, info_span};
use tracing_support::{
    assert_nested_right, line_in_fn, nesting_warnings, record_tasks_on_two_workers,
    retry_until_a_task_migrates, Record, Records,
};

const TASKS: u64 = 16;
const AWAITS: u64 = 6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wrapper {
    /// `rt_ext::tracing::Instrument::instrument`.
    Ours,
    /// `tracing::Instrument::instrument`.
    Tracing,
}

/// Takes the guard and logs after each of several awaits.
async fn body(task: u64) {
    let inner = info_span!("inner");
    let _g = ctx::tracing::enter(&inner);
    for step in 0..AWAITS {
        yield_now().await;
        info!(task, step, "step");
    }
}

/// The same, one call further down (and its own call site of `enter`).
async fn caller(task: u64) {
    callee(task).await;
}

async fn callee(task: u64) {
    let inner = info_span!("inner");
    let _g = ctx::tracing::enter(&inner);
    for step in 0..AWAITS {
        yield_now().await;
        info!(task, step, "step");
    }
}

fn instrumented(wrapper: Wrapper, task: u64, in_callee: bool) -> tokio::task::JoinHandle<()> {
    let fut: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = if in_callee {
        Box::pin(caller(task))
    } else {
        Box::pin(body(task))
    };
    let span = info_span!("outer", task);
    match wrapper {
        Wrapper::Ours => ctx::spawn(ctx::tracing::Instrument::instrument(fut, span)),
        Wrapper::Tracing => ctx::spawn(tracing::Instrument::instrument(fut, span)),
    }
}

/// Runs `TASKS` instrumented tasks on two workers and returns the records.
fn run(wrapper: Wrapper, in_callee: bool) -> Records {
    record_tasks_on_two_workers(TASKS, |t| instrumented(wrapper, t, in_callee))
}

fn steps(records: &Records) -> Vec<Record> {
    records.with_message("step")
}

#[test]
fn guards_under_our_instrument_stay_inside_the_span_after_every_await() {
    for in_callee in [false, true] {
        // Retried until the interleaving this test is about happened: a
        // task moved between the workers mid-way.
        retry_until_a_task_migrates(|| {
            let records = run(Wrapper::Ours, in_callee);
            assert_nested_right(&records, TASKS * AWAITS)
        });
    }
}

#[test]
fn guards_under_tracings_instrument_nest_wrong_and_are_reported_once_per_call_site() {
    for in_callee in [false, true] {
        let records = run(Wrapper::Tracing, in_callee);
        let steps = steps(&records);
        // The control: after an await, the guard's span is entered first and
        // the wrapper's on top of it, so events are not under `outer:inner`.
        assert!(steps
            .iter()
            .any(|r| r.spans.first().map(String::as_str) != Some("inner")));
        // One warning per call site of `enter`, naming it, though every one
        // of the tasks resumed that guard several times.
        let warned = nesting_warnings(&records);
        assert_eq!(warned.len(), 1, "{warned:?}");
        let location = warned[0].field("location").unwrap();
        let line = if in_callee { "callee" } else { "body" };
        let expected = format!(
            "tests/tracing_instrument_nesting.rs:{}",
            line_of_enter(line)
        );
        assert!(location.contains(&expected), "{location} is not {expected}");
        assert!(warned[0].message.contains("rt_ext::tracing::Instrument"));

        // Another run: that call site is not reported again.
        assert!(nesting_warnings(&run(Wrapper::Tracing, in_callee)).is_empty());
    }
}

/// The line of the `enter` call in function `name` of this file.
fn line_of_enter(name: &str) -> usize {
    line_in_fn(
        include_str!("tracing_instrument_nesting.rs"),
        name,
        "ctx::tracing::enter(&inner)",
    )
}

/// Takes a guard at one call site of its own, and logs after an await.
async fn sampled(task: u64) {
    let inner = info_span!("inner");
    let _g = ctx::tracing::enter(&inner);
    yield_now().await;
    info!(task, "sampled");
}

/// A call site's nesting is checked on its first guard on a thread, then on
/// one in 64: a call site that nested right at first, and then nests wrong
/// for some callers, is still reported, within 64 of its guards.
#[test]
fn a_call_site_that_starts_to_nest_wrong_is_reported_within_64_guards() {
    let (dispatch, records) = tracing_support::dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for task in 0..10 {
                let span = info_span!("outer", task);
                ctx::spawn(ctx::tracing::Instrument::instrument(sampled(task), span))
                    .await
                    .unwrap();
            }
            assert!(nesting_warnings(&records).is_empty());
            for task in 10..74 {
                let span = info_span!("outer", task);
                ctx::spawn(tracing::Instrument::instrument(sampled(task), span))
                    .await
                    .unwrap();
            }
        });
    });
    let warned = nesting_warnings(&records);
    assert_eq!(warned.len(), 1, "{warned:?}");
    let expected = format!(
        "tests/tracing_instrument_nesting.rs:{}",
        line_in_fn(
            include_str!("tracing_instrument_nesting.rs"),
            "sampled",
            "ctx::tracing::enter(&inner)",
        )
    );
    let location = warned[0].field("location").unwrap();
    assert!(location.contains(&expected), "{location} is not {expected}");
}
