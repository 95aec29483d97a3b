//! OpenTelemetry's current `Context` follows every rt-ext spawn path: a
//! task that attached a context with `rt_ext::otel::attach` spawns a child,
//! a grandchild, a `spawn_blocking` closure, a `thread::spawn` thread, and
//! tasks through `JoinSet`, `TaskTracker`, `Handle::spawn` and
//! `spawn_local` in a `LocalSet`; each sees that context after every await,
//! on a two-worker runtime where tasks move between workers (runs are
//! repeated until one did). `Runtime::spawn` from outside the runtime takes
//! the spawning thread's context. Nothing sees another task's context.
#![cfg(feature = "opentelemetry")]

mod otel_support;

use std::time::Duration;

use opentelemetry::Context;
use otel_support::{current_marker, marked, retry_until_a_task_migrates, Log, Seen};
use rt_ext as ctx;
use tokio::task::yield_now;

const TASKS: u64 = 8;
const AWAITS: u64 = 4;
/// Async pieces of work per task: the parent, child, grandchild, JoinSet,
/// TaskTracker, Handle and spawn_local tasks; and two synchronous ones.
const ASYNC_PER_TASK: u64 = 7;
const SYNC_PER_TASK: u64 = 2;

/// Awaits `AWAITS` times (yields and short sleeps, so that wake-ups come
/// from the timer too, on either worker), recording what it sees after each.
async fn awaits(log: Log, label: String, expected: u64) {
    for step in 0..AWAITS {
        if step % 2 == 0 {
            yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        log.record(label.clone(), expected);
    }
}

/// Attaches its own context across awaits, then spawns on every path.
async fn parent(log: Log, i: u64) {
    let _cx = ctx::otel::attach(marked(i));
    awaits(log.clone(), format!("parent {i}"), i).await;

    let l = log.clone();
    let child = ctx::spawn(async move {
        awaits(l.clone(), format!("child {i}"), i).await;
        ctx::spawn(awaits(l, format!("grandchild {i}"), i))
            .await
            .unwrap();
    });

    let l = log.clone();
    let blocking = ctx::spawn_blocking(move || l.record(format!("spawn_blocking {i}"), i));

    let l = log.clone();
    let thread = ctx::thread::spawn(move || l.record(format!("thread {i}"), i));

    let mut set = ctx::JoinSet::new();
    set.spawn(awaits(log.clone(), format!("JoinSet {i}"), i));

    let tracker = ctx::TaskTracker::new();
    tracker.spawn(awaits(log.clone(), format!("TaskTracker {i}"), i));
    tracker.close();

    let handle = ctx::Handle::current().spawn(awaits(log.clone(), format!("Handle {i}"), i));

    // A LocalSet driven on a blocking thread, which runs with this task's
    // context attached (inherited); the local task is spawned under another
    // context, attached by a plain guard only around the spawn, and must
    // see that one whenever it runs.
    let l = log.clone();
    let local = ctx::spawn_blocking(move || {
        let set = ctx::LocalSet::new();
        ctx::Handle::current().block_on(set.run_until(async move {
            let spawned = {
                let _plain = marked(1000 + i).attach();
                ctx::spawn_local(awaits(l, format!("spawn_local {i}"), 1000 + i))
            };
            assert_eq!(current_marker(), Some(i));
            spawned.await.unwrap();
        }));
    });

    child.await.unwrap();
    blocking.await.unwrap();
    thread.join().unwrap();
    set.join_next().await.unwrap().unwrap();
    tracker.wait().await;
    handle.await.unwrap();
    local.await.unwrap();
    log.record(format!("parent {i}"), i);
}

/// One run: `TASKS` parents on a two-worker runtime, plus a task spawned
/// with `Runtime::spawn` from this thread under a plain attached context.
fn run() -> Vec<Seen> {
    let log = Log::default();
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let from_outside = {
        let _plain = marked(900).attach();
        rt.spawn(awaits(log.clone(), "Runtime::spawn".into(), 900))
    };
    assert_eq!(current_marker(), None);
    rt.block_on(async {
        let parents: Vec<_> = (0..TASKS)
            .map(|i| ctx::spawn(parent(log.clone(), i)))
            .collect();
        for p in parents {
            p.await.unwrap();
        }
        from_outside.await.unwrap();
        // Between and after all of that, the workers carry no context of
        // anyone's: a plain task sees none.
        let plain = rt_ext_free_task().await;
        assert_eq!(plain, None);
    });
    let all = log.all();
    for s in &all {
        assert_eq!(s.seen, Some(s.expected), "{s:?}");
    }
    let expected = TASKS * (ASYNC_PER_TASK * AWAITS + SYNC_PER_TASK + 1) + AWAITS;
    assert_eq!(all.len() as u64, expected);
    for path in [
        "parent",
        "child",
        "grandchild",
        "spawn_blocking",
        "thread",
        "JoinSet",
        "TaskTracker",
        "Handle",
        "spawn_local",
    ] {
        assert!(
            all.iter().any(|s| s.label.starts_with(&format!("{path} "))),
            "nothing recorded by {path}"
        );
    }
    all
}

/// What a task spawned with plain tokio (not through rt-ext) sees.
async fn rt_ext_free_task() -> Option<u64> {
    tokio::spawn(async {
        yield_now().await;
        current_marker()
    })
    .await
    .unwrap()
}

#[test]
fn every_spawn_path_runs_with_the_spawners_context_across_awaits_and_workers() {
    retry_until_a_task_migrates(run);
}

#[test]
fn a_child_keeps_the_context_of_its_spawn_not_the_spawners_later_one() {
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let first = ctx::otel::attach(marked(1));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let child = ctx::spawn(async move {
            wait.await.unwrap();
            current_marker()
        });
        drop(first);
        let _second = ctx::otel::attach(marked(2));
        go.send(()).unwrap();
        assert_eq!(child.await.unwrap(), Some(1));
        assert_eq!(current_marker(), Some(2));
        // And nothing a child attaches reaches its parent.
        ctx::spawn(async {
            let _mine = ctx::otel::attach(marked(3));
            yield_now().await;
            assert_eq!(current_marker(), Some(3));
        })
        .await
        .unwrap();
        assert_eq!(current_marker(), Some(2));
    });
    assert_eq!(Context::current().get::<otel_support::Marker>(), None);
}
