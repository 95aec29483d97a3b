//! Invariant 1, no bleed: a binding made in one task or frame is never
//! observed by a task or frame that did not inherit it, and after any poll
//! the thread is back in exactly the frame it was in before.

mod support;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rt_ext::{self as ctx, FutureExt as _, Lifecycle};
use support::Rng;

static TASK: ctx::Variable<usize> = ctx::Variable::new("task");

thread_local! {
    /// Which framed task's hook is entered on this thread (0: none).
    static ENTERED: Cell<usize> = const { Cell::new(0) };
}

/// Marks the thread as running task `id` while the task's frame is entered.
struct Marker(usize);

impl Lifecycle for Marker {
    fn on_yield(&mut self) {
        ENTERED.with(|e| e.set(0));
    }
    fn on_resume(&mut self) {
        ENTERED.with(|e| e.set(self.0));
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        ENTERED.with(|e| e.set(0));
    }
}

async fn pause(rng: &mut Rng) {
    match rng.below(3) {
        0 => tokio::task::yield_now().await,
        1 => tokio::time::sleep(Duration::from_micros(rng.below(500))).await,
        _ => {}
    }
}

#[test]
fn ten_thousand_tasks_never_see_each_others_bindings() {
    const FRAMED: usize = 10_000;
    const PLAIN: usize = 2_000;
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let plain_checks = Arc::new(AtomicUsize::new(0));
    let framed_checks = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        // The root binding is inherited by ctx tasks only until they rebind.
        let _root = TASK.set(usize::MAX);
        let mut handles = Vec::with_capacity(FRAMED + PLAIN);
        for i in 0..FRAMED + PLAIN {
            let checks = if i % 6 == 5 {
                plain_checks.clone()
            } else {
                framed_checks.clone()
            };
            if i % 6 == 5 {
                // Unframed: polled in the worker's base frame, which must be
                // empty and unmarked whatever ran on the thread before. (In
                // runtime-hook mode it has a frame of its own, inherited from
                // the root: never another task's.)
                let expect = cfg!(tokio_unstable).then_some(usize::MAX);
                handles.push(tokio::spawn(async move {
                    let mut rng = Rng::new(i as u64);
                    for _ in 0..8 {
                        assert_eq!(TASK.get(), expect, "plain task saw a binding");
                        assert_eq!(ENTERED.with(Cell::get), 0, "plain task saw a hook");
                        assert_eq!(
                            ctx::Snapshot::capture().len(),
                            usize::from(expect.is_some())
                        );
                        checks.fetch_add(1, Ordering::Relaxed);
                        pause(&mut rng).await;
                    }
                }));
            } else {
                handles.push(ctx::spawn(async move {
                    let mut rng = Rng::new(i as u64);
                    assert_eq!(TASK.get(), Some(usize::MAX), "not inherited");
                    let _mine = TASK.set(i);
                    ENTERED.with(|e| e.set(i));
                    let _hook = ctx::enter(Marker(i));
                    for _ in 0..8 {
                        pause(&mut rng).await;
                        assert_eq!(TASK.get(), Some(i), "task {i} lost its binding");
                        assert_eq!(ENTERED.with(Cell::get), i, "task {i} not re-entered");
                        checks.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
        }
        for h in handles {
            h.await.expect("a task failed");
        }
        assert_eq!(
            TASK.get(),
            Some(usize::MAX),
            "a child's binding reached the root"
        );
    });
    assert_eq!(framed_checks.load(Ordering::Relaxed), FRAMED * 8);
    assert_eq!(plain_checks.load(Ordering::Relaxed), PLAIN * 8);
    // Back on this thread, outside the runtime: nothing left over.
    assert_eq!(TASK.get(), None);
}

#[test]
fn framed_join_branches_are_isolated() {
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let _outer = TASK.set(1);
        let left = async {
            let _b = TASK.set(2);
            for _ in 0..3 {
                tokio::task::yield_now().await;
                assert_eq!(TASK.get(), Some(2));
            }
            TASK.get()
        };
        let right = async {
            let mut seen = Vec::new();
            for _ in 0..3 {
                tokio::task::yield_now().await;
                seen.push(TASK.get());
            }
            seen
        };
        let (l, r) = tokio::join!(left.frame(), right.frame());
        assert_eq!(l, Some(2));
        assert_eq!(
            r,
            vec![Some(1); 3],
            "the right branch saw the left's binding"
        );
        assert_eq!(TASK.get(), Some(1));
    });
}

#[test]
fn unframed_join_branches_share_the_task_frame() {
    // The documented limit that `.frame()` exists for: without it, a guard
    // held across an await in one branch is visible to the other.
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let left = async {
            let _b = TASK.set(2);
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        };
        let right = async {
            tokio::task::yield_now().await;
            TASK.get()
        };
        let ((), r) = tokio::join!(left, right);
        assert_eq!(r, Some(2));
    });
}

#[test]
fn a_poll_returns_the_thread_to_its_previous_frame() {
    // Nested frames polled by hand: after each poll of the inner frame the
    // outer frame is current again, with its own value.
    let mut outer = Box::pin(
        async {
            let _o = TASK.set(10);
            let mut inner = Box::pin(
                async {
                    let _i = TASK.set(20);
                    support::yield_once().await;
                    assert_eq!(TASK.get(), Some(20));
                    support::yield_once().await;
                }
                .frame(),
            );
            while support::poll_once(inner.as_mut()).is_pending() {
                assert_eq!(TASK.get(), Some(10));
            }
            assert_eq!(TASK.get(), Some(10));
            support::yield_once().await;
            TASK.get()
        }
        .frame(),
    );
    assert!(support::poll_once(outer.as_mut()).is_pending());
    assert_eq!(TASK.get(), None);
    assert_eq!(
        support::poll_once(outer.as_mut()),
        std::task::Poll::Ready(Some(10))
    );
    assert_eq!(TASK.get(), None);
}
