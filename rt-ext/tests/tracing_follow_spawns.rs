//! Spans follow spawns: work spawned through rt-ext inside an entered span
//! starts in that span (`Span::current()` is the spawner's span, its events
//! are under it) on every spawn path, and in no span where the switch is off:
//! per spawn (`without_span`), per frame (`set_spans_follow_spawns`), per
//! runtime (`Builder::spans_follow_spawns`).
#![cfg(feature = "tracing")]

mod tracing_support;

use rt_ext as ctx;
use tokio::task::LocalSet;
use tracing::{info, info_span, Dispatch, Id, Span};
use tracing_support::{dispatch, Records};

/// Runs `f` with a current-thread runtime whose threads (blocking pool
/// included) record into `dispatch`, which is also the caller's default;
/// `follow` is the runtime's `spans_follow_spawns` switch, if set.
fn with_runtime<R>(
    dispatch: &Dispatch,
    follow: Option<bool>,
    f: impl FnOnce(&ctx::Runtime) -> R,
) -> R {
    let for_threads = dispatch.clone();
    let mut builder = ctx::Builder::new_current_thread();
    builder.enable_all().on_thread_start(move || {
        std::mem::forget(tracing::dispatcher::set_default(&for_threads));
    });
    if let Some(on) = follow {
        builder.spans_follow_spawns(on);
    }
    let rt = builder.build().unwrap();
    tracing::dispatcher::with_default(dispatch, || f(&rt))
}

fn current() -> Option<Id> {
    Span::current().id()
}

fn spans_of(records: &Records, message: &str) -> Vec<String> {
    let found = records.with_message(message);
    assert_eq!(found.len(), 1, "{message}: {found:?}");
    found[0].spans.clone()
}

#[test]
fn children_start_in_the_spawners_span_on_every_path() {
    let (dispatch, records) = dispatch();
    let d = dispatch.clone();
    with_runtime(&dispatch, None, |rt| {
        rt.block_on(async {
            let span = info_span!("parent");
            let _entered = ctx::tracing::enter(&span);
            let id = span.id();

            let seen = ctx::spawn(async {
                info!("spawn");
                current()
            });
            assert_eq!(seen.await.unwrap(), id);

            let seen = ctx::spawn_blocking(|| {
                info!("spawn_blocking");
                current()
            });
            assert_eq!(seen.await.unwrap(), id);

            let mut set = ctx::JoinSet::new();
            set.spawn(async {
                info!("join_set");
                current()
            });
            assert_eq!(set.join_next().await.unwrap().unwrap(), id);

            let tracker = ctx::TaskTracker::new();
            let seen = tracker.spawn(async {
                info!("task_tracker");
                current()
            });
            assert_eq!(seen.await.unwrap(), id);

            let seen = ctx::Handle::current().spawn(async {
                info!("handle");
                current()
            });
            assert_eq!(seen.await.unwrap(), id);

            let local = LocalSet::new();
            let seen = local
                .run_until(async {
                    ctx::spawn_local(async {
                        info!("spawn_local");
                        current()
                    })
                    .await
                })
                .await;
            assert_eq!(seen.unwrap(), id);

            let seen = ctx::thread::spawn(move || {
                let _default = tracing::dispatcher::set_default(&d);
                info!("thread");
                current()
            });
            assert_eq!(seen.join().unwrap(), id);

            // A grandchild follows the child's own span.
            let seen = ctx::spawn(async {
                let span = info_span!("child");
                let _entered = ctx::tracing::enter(&span);
                ctx::spawn(async { info!("grandchild") }).await.unwrap();
            });
            seen.await.unwrap();
        });
    });
    for message in [
        "spawn",
        "spawn_blocking",
        "join_set",
        "task_tracker",
        "handle",
        "spawn_local",
        "thread",
    ] {
        assert_eq!(spans_of(&records, message), ["parent"], "{message}");
    }
    assert_eq!(spans_of(&records, "grandchild"), ["child", "parent"]);
}

#[test]
fn a_plain_entered_span_is_followed_too() {
    let (dispatch, records) = dispatch();
    with_runtime(&dispatch, None, |rt| {
        rt.block_on(async {
            let span = info_span!("parent");
            let child = span.in_scope(|| ctx::spawn(async { info!("child") }));
            child.await.unwrap();
        });
    });
    assert_eq!(spans_of(&records, "child"), ["parent"]);
}

#[test]
fn without_span_turns_it_off_for_one_spawn() {
    let (dispatch, records) = dispatch();
    with_runtime(&dispatch, None, |rt| {
        rt.block_on(async {
            let span = info_span!("parent");
            let _entered = ctx::tracing::enter(&span);
            let detached = ctx::tracing::without_span(|| {
                ctx::spawn(async {
                    info!("detached");
                    // What the detached task spawns follows its spans again.
                    let span = info_span!("own");
                    let _entered = ctx::tracing::enter(&span);
                    ctx::spawn(async { info!("detached child") }).await.unwrap();
                })
            });
            detached.await.unwrap();
            let blocking =
                ctx::tracing::without_span(|| ctx::spawn_blocking(|| info!("detached blocking")));
            blocking.await.unwrap();
            ctx::spawn(async { info!("attached") }).await.unwrap();
        });
    });
    assert!(spans_of(&records, "detached").is_empty());
    assert!(spans_of(&records, "detached blocking").is_empty());
    assert_eq!(spans_of(&records, "detached child"), ["own"]);
    assert_eq!(spans_of(&records, "attached"), ["parent"]);
}

#[test]
fn set_spans_follow_spawns_is_inherited() {
    let (dispatch, records) = dispatch();
    with_runtime(&dispatch, None, |rt| {
        rt.block_on(async {
            let span = info_span!("parent");
            let _entered = ctx::tracing::enter(&span);
            let off = ctx::tracing::set_spans_follow_spawns(false);
            ctx::spawn(async {
                info!("off");
                assert!(!ctx::tracing::spans_follow_spawns());
                let span = info_span!("inner");
                let _entered = ctx::tracing::enter(&span);
                ctx::spawn(async { info!("off, inherited") }).await.unwrap();
            })
            .await
            .unwrap();
            drop(off);
            ctx::spawn(async { info!("on again") }).await.unwrap();
        });
    });
    assert!(spans_of(&records, "off").is_empty());
    assert!(spans_of(&records, "off, inherited").is_empty());
    assert_eq!(spans_of(&records, "on again"), ["parent"]);
}

#[test]
fn builder_switch_turns_it_off_for_the_runtime() {
    let (dispatch, records) = dispatch();
    with_runtime(&dispatch, Some(false), |rt| {
        rt.block_on(async {
            assert!(!ctx::tracing::spans_follow_spawns());
            let span = info_span!("parent");
            let _entered = ctx::tracing::enter(&span);
            ctx::spawn(async { info!("task") }).await.unwrap();
            ctx::spawn_blocking(|| info!("blocking")).await.unwrap();
            // Turned back on in one frame, it follows there.
            let _on = ctx::tracing::set_spans_follow_spawns(true);
            ctx::spawn(async { info!("on in this frame") })
                .await
                .unwrap();
        });
        rt.spawn(async { info!("runtime spawn") });
        rt.block_on(async { tokio::task::yield_now().await });
    });
    assert!(spans_of(&records, "task").is_empty());
    assert!(spans_of(&records, "blocking").is_empty());
    assert!(spans_of(&records, "runtime spawn").is_empty());
    assert_eq!(spans_of(&records, "on in this frame"), ["parent"]);
}
