//! Spans follow plain `tokio::spawn` in runtime-hook mode (`--cfg
//! tokio_unstable` and the `tracing` feature): a task that a library spawns
//! starts inside its spawner's current span, exactly as a `ctx::spawn` task
//! does, with the same switches; the span is the task's outermost (its own
//! span guards nest inside it); a `ctx::spawn` task is in it once; and the
//! span is closed when the task ends (the frame keeps nothing).
#![cfg(all(tokio_unstable, feature = "tracing"))]

mod tracing_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rt_ext as ctx;
use tracing::{info, info_span, Dispatch};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_support::{dispatch, Records};

/// Stands in for a library that spawns its own tasks with plain tokio.
fn library_spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(f)
}

/// Runs `f` on each flavor of hook-mode runtime whose threads record into
/// `dispatch`; `follow` is the runtime's `spans_follow_spawns` switch.
fn on_runtimes(dispatch: &Dispatch, follow: Option<bool>, f: impl Fn(&ctx::Runtime)) {
    for multi in [false, true] {
        let mut builder = if multi {
            let mut b = ctx::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        } else {
            ctx::Builder::new_current_thread()
        };
        let for_threads = dispatch.clone();
        builder.enable_all().on_thread_start(move || {
            std::mem::forget(tracing::dispatcher::set_default(&for_threads));
        });
        if let Some(on) = follow {
            builder.spans_follow_spawns(on);
        }
        let rt = builder.build().unwrap();
        assert!(rt.frames_every_task());
        tracing::dispatcher::with_default(dispatch, || f(&rt));
    }
}

fn spans_of(records: &Records, message: &str) -> Vec<Vec<String>> {
    let found: Vec<_> = records
        .with_message(message)
        .into_iter()
        .map(|r| r.spans)
        .collect();
    assert_eq!(
        found.len(),
        2,
        "{message}: one per runtime flavor: {found:?}"
    );
    found
}

#[test]
fn a_plain_spawn_starts_in_the_spawners_span_and_nests_its_own_inside() {
    let (dispatch, records) = dispatch();
    on_runtimes(&dispatch, None, |rt| {
        rt.block_on(async {
            let span = info_span!("request");
            let _entered = ctx::tracing::enter(&span);
            library_spawn(async {
                info!("plain");
                let inner = info_span!("inner");
                let _inner = ctx::tracing::enter(&inner);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                    info!("nested");
                }
                library_spawn(async { info!("grandchild") }).await.unwrap();
            })
            .await
            .unwrap();
            ctx::spawn(async { info!("ctx") }).await.unwrap();
        });
    });
    for spans in spans_of(&records, "plain") {
        assert_eq!(spans, ["request"]);
    }
    let nested = records.with_message("nested");
    assert_eq!(nested.len(), 6);
    for r in nested {
        assert_eq!(r.spans, ["inner", "request"], "resumed in the wrong order");
    }
    for spans in spans_of(&records, "grandchild") {
        assert_eq!(spans, ["inner", "request"]);
    }
    // Once, not twice: the task is not framed a second time by the runtime.
    for spans in spans_of(&records, "ctx") {
        assert_eq!(spans, ["request"]);
    }
}

#[test]
fn the_switches_of_ctx_spawn_apply_to_plain_spawns() {
    let (dispatch, records) = dispatch();
    on_runtimes(&dispatch, None, |rt| {
        rt.block_on(async {
            let span = info_span!("request");
            let _entered = ctx::tracing::enter(&span);
            let task = ctx::tracing::without_span(|| library_spawn(async { info!("without") }));
            task.await.unwrap();
            {
                let _off = ctx::tracing::set_spans_follow_spawns(false);
                library_spawn(async { info!("switched off") })
                    .await
                    .unwrap();
            }
            library_spawn(async { info!("on again") }).await.unwrap();
        });
    });
    on_runtimes(&dispatch, Some(false), |rt| {
        rt.block_on(async {
            let span = info_span!("request");
            let _entered = ctx::tracing::enter(&span);
            library_spawn(async { info!("runtime off") }).await.unwrap();
        });
    });
    for message in ["without", "switched off", "runtime off"] {
        for spans in spans_of(&records, message) {
            assert!(spans.is_empty(), "{message}: {spans:?}");
        }
    }
    for spans in spans_of(&records, "on again") {
        assert_eq!(spans, ["request"]);
    }
}

/// Counts spans closed (every handle to them dropped).
#[derive(Clone, Default)]
struct Closed(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for Closed {
    fn on_close(&self, _: tracing::span::Id, _: Context<'_, S>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_followed_span_is_released_when_its_task_ends() {
    const TASKS: usize = 2_000;
    let closed = Closed::default();
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(closed.clone()));
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..TASKS {
                let span = info_span!("per_task", i);
                let _entered = ctx::tracing::enter(&span);
                tasks.push(library_spawn(async {
                    tokio::task::yield_now().await;
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
    });
    for _ in 0..500 {
        if closed.0.load(Ordering::SeqCst) == TASKS {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        closed.0.load(Ordering::SeqCst),
        TASKS,
        "spans kept by ended tasks"
    );
    assert_eq!(rt.framed_tasks(), Some(0));
}
