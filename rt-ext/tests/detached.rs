//! `ctx::detached` and `ctx::spawn_detached`: work started outside the
//! caller's context (empty, no span followed), the way out for long-lived
//! work started lazily inside a request; and the `lazy_worker` example.

#[allow(dead_code)]
#[path = "../examples/lazy_worker.rs"]
mod lazy_worker;

use rt_ext as ctx;

static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");

fn runtimes() -> Vec<ctx::Runtime> {
    vec![
        ctx::Builder::new_current_thread().build().unwrap(),
        ctx::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap(),
    ]
}

#[test]
fn detached_work_starts_from_an_empty_context_and_may_bind() {
    for rt in runtimes() {
        rt.block_on(async {
            let _id = REQUEST_ID.set(1);
            let attached = ctx::spawn(async { REQUEST_ID.get() });
            assert_eq!(attached.await.unwrap(), Some(1), "the contrast");
            let detached = ctx::detached(|| ctx::spawn(async { REQUEST_ID.get() }));
            assert_eq!(detached.await.unwrap(), None);
            let detached = ctx::spawn_detached(async {
                let seen = REQUEST_ID.get();
                let _mine = REQUEST_ID.set(2);
                let child = ctx::spawn(async { REQUEST_ID.get() }).await.unwrap();
                (seen, child)
            });
            assert_eq!(detached.await.unwrap(), (None, Some(2)));
            let blocking = ctx::detached(|| ctx::spawn_blocking(|| REQUEST_ID.get()));
            assert_eq!(blocking.await.unwrap(), None);
            // The caller's context is untouched, in and after the closure.
            assert_eq!(ctx::detached(|| 5), 5);
            assert_eq!(REQUEST_ID.get(), Some(1));
        });
    }
}

/// In runtime-hook mode a library's plain `tokio::spawn` inherits too: the
/// same wrapper keeps a lazily started task out of the request's context.
#[cfg(tokio_unstable)]
#[test]
fn detached_applies_to_plain_spawns_in_hook_mode() {
    for rt in runtimes() {
        rt.block_on(async {
            let _id = REQUEST_ID.set(3);
            let attached = tokio::spawn(async { REQUEST_ID.get() });
            assert_eq!(attached.await.unwrap(), Some(3), "the contrast");
            let detached = ctx::detached(|| tokio::spawn(async { REQUEST_ID.get() }));
            assert_eq!(detached.await.unwrap(), None);
        });
    }
}

#[cfg(feature = "tracing")]
#[test]
fn detached_work_follows_no_span() {
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::dispatcher::with_default(&dispatch, || {
        ctx::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let span = tracing::info_span!("request");
                let _entered = ctx::tracing::enter(&span);
                let attached = ctx::spawn(async { tracing::Span::current().id() });
                assert_eq!(attached.await.unwrap(), span.id(), "the contrast");
                let detached = ctx::spawn_detached(async { tracing::Span::current().is_none() });
                assert!(detached.await.unwrap());
            });
    });
}

#[test]
fn the_lazily_started_batcher_flushes_in_its_own_context() {
    lazy_worker::main();
    let flushes = lazy_worker::FLUSHES.lock().unwrap().clone();
    let lines: usize = flushes.iter().map(|(n, _)| n).sum();
    assert_eq!(lines, 12, "{flushes:?}");
    for (_, seen) in &flushes {
        assert_eq!(*seen, None, "a flush carried a request's id: {flushes:?}");
    }
}
