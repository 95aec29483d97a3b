//! An `rt_ext::otel::attach` guard detaches exactly its own context, by
//! identity: dropped before a later guard, it leaves the later context
//! current, now and after every await, and the later guard's drop then
//! restores what was there before both; dropped on another thread while
//! its task is suspended, its context is gone when the task resumes.
#![cfg(feature = "opentelemetry")]

mod otel_support;

use opentelemetry::Context;
use otel_support::{current_marker, marked};
use rt_ext::{self as ctx, FutureExt as _};
use tokio::task::yield_now;

fn runtime() -> ctx::Runtime {
    ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn dropping_an_earlier_guard_keeps_the_later_context_current() {
    runtime().block_on(async {
        let first = ctx::otel::attach(marked(1));
        let second = ctx::otel::attach(marked(2));
        drop(first);
        assert_eq!(current_marker(), Some(2));
        for _ in 0..3 {
            yield_now().await;
            assert_eq!(current_marker(), Some(2));
        }
        // A third, then the second dropped under it: the third stays.
        let third = ctx::otel::attach(Context::current().with_value(otel_support::Marker(3)));
        drop(second);
        yield_now().await;
        assert_eq!(current_marker(), Some(3));
        drop(third);
        assert_eq!(current_marker(), None);
        yield_now().await;
        assert_eq!(current_marker(), None);
    });
}

#[test]
fn out_of_order_drops_in_a_loop_leave_nothing_behind() {
    runtime().block_on(async {
        let base = ctx::otel::attach(marked(7));
        for i in 0..1000 {
            let a = ctx::otel::attach(marked(i));
            let b = ctx::otel::attach(marked(i + 10_000));
            drop(a);
            if i % 100 == 0 {
                yield_now().await;
            }
            assert_eq!(current_marker(), Some(i + 10_000));
            drop(b);
            assert_eq!(current_marker(), Some(7));
        }
        drop(base);
        assert_eq!(current_marker(), None);
    });
}

#[test]
fn a_guard_dropped_elsewhere_while_its_task_waits_is_gone_on_resume() {
    // The drop must come while the task waits: if the other thread is
    // faster than the task's next await (the wait is then over before it
    // starts, and the task never suspends), the removal waits for the
    // task's next resume, which the task then makes itself. Rounds run
    // until one has had the drop while the task was suspended.
    let mut rounds = 0;
    loop {
        rounds += 1;
        let (suspended, seen) = one_round();
        assert_eq!(
            seen,
            Some(1),
            "round {rounds}: the dropped context is still current"
        );
        if suspended {
            break;
        }
        assert!(rounds < 1_000, "the task never suspended before the drop");
    }
}

/// Whether the task was suspended in its wait, and what it saw after.
fn one_round() -> (bool, Option<u64>) {
    runtime().block_on(async {
        let _outer = ctx::otel::attach(marked(1));
        let (send, guard) = std::sync::mpsc::channel();
        let (dropped, mut wait) = tokio::sync::oneshot::channel::<()>();
        let task = ctx::spawn(async move {
            send.send(ctx::otel::attach(marked(2))).unwrap();
            assert_eq!(current_marker(), Some(2));
            let mut suspended = false;
            std::future::poll_fn(|cx| {
                let poll = std::future::Future::poll(std::pin::Pin::new(&mut wait), cx);
                suspended |= poll.is_pending();
                poll
            })
            .await
            .unwrap();
            if !suspended {
                // The guard dropped before the wait began: removed at
                // the next resume.
                yield_now().await;
            }
            // Removed at this resume: the inherited context is back.
            (suspended, current_marker())
        });
        let dropper = std::thread::spawn(move || {
            drop(guard.recv().unwrap());
            dropped.send(()).unwrap();
        });
        let seen = task.await.unwrap();
        dropper.join().unwrap();
        assert_eq!(current_marker(), Some(1));
        seen
    })
}

#[test]
fn a_guard_in_an_inner_frame_is_detached_when_that_frame_suspends() {
    runtime().block_on(async {
        let _outer = ctx::otel::attach(marked(1));
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let inner = async {
            let _inner = ctx::otel::attach(marked(2));
            wait.await.unwrap();
            current_marker()
        }
        .frame();
        let outer_side = async {
            yield_now().await;
            // The inner frame is suspended, holding its guard: the outer
            // frame's context is current here.
            let seen = current_marker();
            go.send(()).unwrap();
            seen
        };
        let (inner_saw, outer_saw) = tokio::join!(inner, outer_side);
        assert_eq!((inner_saw, outer_saw), (Some(2), Some(1)));
        assert_eq!(current_marker(), Some(1));
    });
}
