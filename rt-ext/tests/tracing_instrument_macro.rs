//! Span guards under `#[rt_ext::instrument]`: a guard taken in an
//! instrumented async fn, or in a callee of one, logs every event after
//! every await under `outer:inner`, with tasks migrating between two
//! workers; the same code under tracing's own `#[tracing::instrument]` nests
//! the wrong way, and each call site of `enter` is reported once, with its
//! file and line.
#![cfg(all(feature = "tracing", feature = "macros"))]

mod tracing_support;

use std::future::Future;
use std::pin::Pin;

use rt_ext as ctx;
use tokio::task::yield_now;
use tracing::{info, info_span};
use tracing_support::{
    assert_nested_right, dispatch, line_in_fn, nesting_warnings, record_tasks_on_two_workers,
    retry_until_a_task_migrates, Record, Records,
};

const TASKS: u64 = 16;
const AWAITS: u64 = 6;

// ===== under #[rt_ext::instrument] =====

#[rt_ext::instrument(name = "outer")]
async fn ours_body(task: u64) {
    let inner = info_span!("inner");
    let _g = ctx::tracing::enter(&inner);
    for step in 0..AWAITS {
        yield_now().await;
        info!(task, step, "step");
    }
}

#[rt_ext::instrument(name = "outer")]
async fn ours_caller(task: u64) {
    ours_callee(task).await;
}

async fn ours_callee(task: u64) {
    let inner = info_span!("inner");
    let _g = ctx::tracing::enter(&inner);
    for step in 0..AWAITS {
        yield_now().await;
        info!(task, step, "step");
    }
}

// ===== the same under #[tracing::instrument] =====

#[tracing::instrument(name = "outer")]
async fn tracings_body(task: u64) {
    let inner = info_span!("inner");
    let _g = ctx::tracing::enter(&inner);
    for step in 0..AWAITS {
        yield_now().await;
        info!(task, step, "step");
    }
}

#[tracing::instrument(name = "outer")]
async fn tracings_caller(task: u64) {
    tracings_callee(task).await;
}

async fn tracings_callee(task: u64) {
    let inner = info_span!("inner");
    let _g = ctx::tracing::enter(&inner);
    for step in 0..AWAITS {
        yield_now().await;
        info!(task, step, "step");
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Attribute {
    /// `#[rt_ext::instrument]`.
    Ours,
    /// `#[tracing::instrument]`.
    Tracing,
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

fn task(attribute: Attribute, task: u64, in_callee: bool) -> Task {
    match (attribute, in_callee) {
        (Attribute::Ours, false) => Box::pin(ours_body(task)),
        (Attribute::Ours, true) => Box::pin(ours_caller(task)),
        (Attribute::Tracing, false) => Box::pin(tracings_body(task)),
        (Attribute::Tracing, true) => Box::pin(tracings_caller(task)),
    }
}

/// Runs `TASKS` tasks on two workers and returns the records.
fn run(attribute: Attribute, in_callee: bool) -> Records {
    record_tasks_on_two_workers(TASKS, |t| ctx::spawn(task(attribute, t, in_callee)))
}

/// The spans a step must be under: `inner`, in its task's `outer`.
fn expected_spans(r: &Record) -> [String; 2] {
    [
        "inner".to_string(),
        format!("outer{{task={}}}", r.field("task").unwrap()),
    ]
}

#[test]
fn guards_under_rt_ext_instrument_stay_inside_the_span_after_every_await() {
    for in_callee in [false, true] {
        // Retried until the interleaving this test is about happened: a
        // task moved between the workers mid-way.
        retry_until_a_task_migrates(|| {
            let records = run(Attribute::Ours, in_callee);
            let steps = assert_nested_right(&records, TASKS * AWAITS);
            for r in &steps {
                // Exactly these two: the frame adds no span of its own.
                assert_eq!(r.spans.len(), 2, "{r:?}");
            }
            steps
        });
    }
}

#[test]
fn guards_under_tracings_instrument_nest_wrong_and_are_reported_once_per_call_site() {
    for in_callee in [false, true] {
        let records = run(Attribute::Tracing, in_callee);
        let steps = records.with_message("step");
        assert_eq!(steps.len() as u64, TASKS * AWAITS);
        // The control: after an await the guard's span is entered first and
        // tracing's on top of it, so steps are not under `outer:inner`.
        let wrong = steps.iter().filter(|r| r.spans != expected_spans(r));
        assert!(wrong.count() > 0, "{steps:?}");
        // One warning for the call site, naming its file and line, though
        // every task resumed its guard several times.
        let warned = nesting_warnings(&records);
        assert_eq!(warned.len(), 1, "{warned:?}");
        let location = warned[0].field("location").unwrap();
        let function = if in_callee {
            "tracings_callee"
        } else {
            "tracings_body"
        };
        let expected = format!(
            "tests/tracing_instrument_macro.rs:{}:",
            line_of_enter(function)
        );
        assert!(location.contains(&expected), "{location} is not {expected}");
        assert!(warned[0].message.contains("#[rt_ext::instrument]"));

        // Another run: that call site is not reported again.
        assert!(nesting_warnings(&run(Attribute::Tracing, in_callee)).is_empty());
    }
}

/// The line of the `enter` call in function `name` of this file.
fn line_of_enter(name: &str) -> usize {
    line_in_fn(
        include_str!("tracing_instrument_macro.rs"),
        name,
        "ctx::tracing::enter(&inner)",
    )
}

// ===== futures returned by synchronous functions =====

struct Service;

impl Service {
    /// What `#[async_trait]` makes of an `async fn`: the boxed future gets
    /// the frame, inside the span tracing puts around it.
    #[rt_ext::instrument(name = "outer", skip(self))]
    fn boxed(&self, task: u64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let inner = info_span!("inner");
            let _g = ctx::tracing::enter(&inner);
            for step in 0..AWAITS {
                yield_now().await;
                info!(task, step, "step");
            }
        })
    }
}

/// A bare async block returned, likewise.
#[rt_ext::instrument(name = "outer")]
fn returns_a_future(task: u64) -> impl Future<Output = ()> {
    async move {
        let inner = info_span!("inner");
        let _g = ctx::tracing::enter(&inner);
        for step in 0..AWAITS {
            yield_now().await;
            info!(task, step, "step");
        }
    }
}

#[test]
fn a_future_returned_by_an_instrumented_sync_fn_gets_the_frame_too() {
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        ctx::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let boxed = ctx::spawn(Service.boxed(0));
                let bare = ctx::spawn(returns_a_future(1));
                boxed.await.unwrap();
                bare.await.unwrap();
            });
    });
    let steps = records.with_message("step");
    assert_eq!(steps.len() as u64, 2 * AWAITS);
    for r in &steps {
        assert_eq!(r.spans, expected_spans(r), "{r:?}");
    }
    assert!(
        nesting_warnings(&records).is_empty(),
        "{:?}",
        nesting_warnings(&records)
    );
}

// ===== in a plain tokio task =====

static USER: ctx::Variable<u64> = ctx::Variable::new("user");

#[rt_ext::instrument(name = "outer")]
async fn binds(task: u64) -> Option<u64> {
    let _user = USER.set(task); // would panic in the unframed task itself
    let inner = info_span!("inner");
    let _g = ctx::tracing::enter(&inner);
    yield_now().await;
    info!(task, step = 0u64, "step");
    USER.get()
}

#[test]
fn the_body_may_bind_in_a_plain_tokio_task() {
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let seen = rt.block_on(async { tokio::spawn(binds(4)).await.unwrap() });
        assert_eq!(seen, Some(4));
    });
    let steps = records.with_message("step");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].spans, expected_spans(&steps[0]));
}

// ===== trait methods =====

/// A trait whose futures are boxed by `#[async_trait]` (object-safe), and
/// one with a native `async fn`.
#[async_trait::async_trait]
trait Boxed {
    async fn run(&self, task: u64);
}

trait Native {
    fn run(&self, task: u64) -> impl Future<Output = ()> + Send;
}

struct Worker;

#[async_trait::async_trait]
impl Boxed for Worker {
    #[rt_ext::instrument(name = "outer", skip(self))]
    async fn run(&self, task: u64) {
        let inner = info_span!("inner");
        let _g = ctx::tracing::enter(&inner);
        for step in 0..AWAITS {
            yield_now().await;
            info!(task, step, "step");
        }
    }
}

impl Native for Worker {
    #[rt_ext::instrument(name = "outer", skip(self))]
    async fn run(&self, task: u64) {
        let inner = info_span!("inner");
        let _g = ctx::tracing::enter(&inner);
        for step in 0..AWAITS {
            yield_now().await;
            info!(task, step, "step");
        }
    }
}

#[test]
fn trait_methods_async_trait_and_native_nest_right() {
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        ctx::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let boxed: &'static (dyn Boxed + Sync) = &Worker;
                let first = ctx::spawn(boxed.run(0));
                let second = ctx::spawn(Native::run(&Worker, 1));
                first.await.unwrap();
                second.await.unwrap();
            });
    });
    let steps = records.with_message("step");
    assert_eq!(steps.len() as u64, 2 * AWAITS);
    for r in &steps {
        assert_eq!(r.spans, expected_spans(r), "{r:?}");
    }
    assert!(
        nesting_warnings(&records).is_empty(),
        "{:?}",
        nesting_warnings(&records)
    );
}
