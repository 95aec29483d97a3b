//! Inheritance: every way of spawning work starts the child with the
//! spawner's context at the moment of the spawn; nothing the child binds
//! reaches the spawner, and nothing the spawner binds afterwards reaches the
//! child.
//!
//! Each check forces its order with channels: the child reads only after the
//! spawner has made its later bindings, and the spawner reads while the child
//! still holds its own. Each runs on a multi-thread and a current-thread
//! runtime.

use std::future::Future;
use std::pin::Pin;

use rt_ext::{self as ctx, FutureExt as _};
use tokio::sync::oneshot;

static NAME: ctx::Variable<&'static str> = ctx::Variable::new("name");
/// Bound by the spawner only after the spawn.
static LATE: ctx::Variable<u32> = ctx::Variable::new("late");
/// Bound by the child only.
static CHILD: ctx::Variable<u32> = ctx::Variable::new("child");

/// What a child observed.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// `NAME` at the child's start.
    at_start: Option<&'static str>,
    /// `NAME` and `LATE` once the spawner has bound them again.
    after_spawner_rebound: (Option<&'static str>, Option<u32>),
    /// `NAME` and `CHILD` after the child's own bindings.
    own: (Option<&'static str>, Option<u32>),
}

const EXPECTED: Seen = Seen {
    at_start: Some("spawner"),
    after_spawner_rebound: (Some("spawner"), None),
    own: (Some("child"), Some(1)),
};

/// The channels that order a child against its spawner.
struct ChildEnd {
    go: oneshot::Receiver<()>,
    bound: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

struct SpawnerEnd {
    go: oneshot::Sender<()>,
    bound: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

fn channels() -> (SpawnerEnd, ChildEnd) {
    let (go_tx, go_rx) = oneshot::channel();
    let (bound_tx, bound_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    (
        SpawnerEnd {
            go: go_tx,
            bound: bound_rx,
            release: release_tx,
        },
        ChildEnd {
            go: go_rx,
            bound: bound_tx,
            release: release_rx,
        },
    )
}

/// The body of an async child.
async fn async_child(end: ChildEnd) -> Seen {
    let at_start = NAME.get();
    end.go.await.unwrap();
    let after_spawner_rebound = (NAME.get(), LATE.get());
    let _name = NAME.set("child");
    let _child = CHILD.set(1);
    let own = (NAME.get(), CHILD.get());
    end.bound.send(()).unwrap();
    // Hold the bindings, suspended, while the spawner looks.
    end.release.await.unwrap();
    Seen {
        at_start,
        after_spawner_rebound,
        own,
    }
}

/// The body of a blocking child (a closure on a pool or thread).
fn blocking_child(end: ChildEnd) -> Seen {
    let at_start = NAME.get();
    end.go.blocking_recv().unwrap();
    let after_spawner_rebound = (NAME.get(), LATE.get());
    let _name = NAME.set("child");
    let _child = CHILD.set(1);
    let own = (NAME.get(), CHILD.get());
    end.bound.send(()).unwrap();
    end.release.blocking_recv().unwrap();
    Seen {
        at_start,
        after_spawner_rebound,
        own,
    }
}

type Joined = Pin<Box<dyn Future<Output = Seen>>>;

/// Runs the spawner's side in an async context: binds, spawns with `spawn`
/// (which returns a future of the child's result), binds again, lets the child
/// read, checks it sees none of the child's bindings, and checks the result.
async fn spawner(spawn: impl FnOnce(ChildEnd) -> Joined) {
    let _name = NAME.set("spawner");
    let (end, child_end) = channels();
    let joined = spawn(child_end);

    let _renamed = NAME.set("spawner, later");
    let _late = LATE.set(9);
    end.go.send(()).unwrap();

    end.bound.await.unwrap();
    // The child holds its bindings right now.
    assert_eq!(
        (NAME.get(), CHILD.get(), LATE.get()),
        (Some("spawner, later"), None, Some(9))
    );
    end.release.send(()).unwrap();

    assert_eq!(joined.await, EXPECTED);
    assert_eq!(
        (NAME.get(), CHILD.get(), LATE.get()),
        (Some("spawner, later"), None, Some(9))
    );
}

fn multi_thread() -> ctx::Runtime {
    ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn current_thread() -> ctx::Runtime {
    ctx::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `check` on both runtime flavours.
fn on_both(check: impl Fn(&ctx::Runtime)) {
    check(&multi_thread());
    check(&current_thread());
}

// ===== tasks =====

#[test]
fn spawn_inherits_and_isolates() {
    on_both(|rt| {
        rt.block_on(spawner(|end| {
            let handle = ctx::spawn(async_child(end));
            Box::pin(async { handle.await.unwrap() })
        }))
    });
}

#[test]
fn plain_tokio_spawn_does_not_inherit() {
    // Control: the inheritance above is `ctx::spawn`'s doing (on a runtime
    // that does not frame every task; runtime-hook mode is tested apart).
    let plain = |b: &mut ctx::Builder| {
        #[cfg(tokio_unstable)]
        b.frame_every_task(false);
        b.enable_all().build().unwrap()
    };
    let runtimes = [
        plain(ctx::Builder::new_multi_thread().worker_threads(2)),
        plain(&mut ctx::Builder::new_current_thread()),
    ];
    runtimes.iter().for_each(|rt| {
        rt.block_on(async {
            let _name = NAME.set("spawner");
            let seen = tokio::spawn(async { NAME.get() }).await.unwrap();
            assert_eq!(seen, None);
            assert_eq!(
                ctx::spawn(async { NAME.get() }).await.unwrap(),
                Some("spawner")
            );
        })
    });
}

#[test]
fn nested_spawns_inherit_at_each_level() {
    static LEVEL: ctx::Variable<u32> = ctx::Variable::new("level");

    /// Level `depth` reads what its parent had at the spawn, then spawns the
    /// next level and rebinds after the spawn.
    fn level(
        depth: u32,
        go: oneshot::Receiver<()>,
    ) -> Pin<Box<dyn Future<Output = Vec<Option<u32>>> + Send>> {
        Box::pin(async move {
            go.await.unwrap();
            let mut seen = vec![LEVEL.get()];
            if depth < 3 {
                let _mine = LEVEL.set(depth);
                let (tx, rx) = oneshot::channel();
                let child = ctx::spawn(level(depth + 1, rx));
                let _later = LEVEL.set(100 + depth);
                tx.send(()).unwrap();
                seen.extend(child.await.unwrap());
                assert_eq!(LEVEL.get(), Some(100 + depth));
            }
            seen
        })
    }

    on_both(|rt| {
        rt.block_on(async {
            let _root = LEVEL.set(0);
            let (tx, rx) = oneshot::channel();
            let first = ctx::spawn(level(1, rx));
            let _later = LEVEL.set(100);
            tx.send(()).unwrap();
            assert_eq!(first.await.unwrap(), [Some(0), Some(1), Some(2)]);
            assert_eq!(LEVEL.get(), Some(100));
        })
    });
}

#[test]
fn spawn_local_inherits_and_isolates() {
    let rt = current_thread();
    let local = tokio::task::LocalSet::new();
    rt.block_on(local.run_until(spawner(|end| {
        let handle = ctx::spawn_local(async_child(end));
        Box::pin(async { handle.await.unwrap() })
    })));
}

#[test]
fn runtime_and_handle_spawn_inherit_and_isolate() {
    on_both(|rt| {
        // `Handle::spawn` from inside the runtime.
        rt.block_on(spawner(|end| {
            let handle = ctx::Handle::current().spawn(async_child(end));
            Box::pin(async { handle.await.unwrap() })
        }));
        // A cloned handle used from inside.
        let cloned = rt.handle().clone();
        rt.block_on(spawner(move |end| {
            let handle = cloned.spawn(async_child(end));
            Box::pin(async { handle.await.unwrap() })
        }));
    });
}

#[test]
fn runtime_spawn_from_outside_inherits_and_isolates() {
    on_both(|rt| {
        // The spawner is the test thread's base frame, outside the runtime.
        let _name = NAME.set("spawner");
        let (end, child_end) = channels();
        let handle = rt.spawn(async_child(child_end));
        let _renamed = NAME.set("spawner, later");
        let _late = LATE.set(9);
        end.go.send(()).unwrap();
        rt.block_on(end.bound).unwrap();
        assert_eq!(
            (NAME.get(), CHILD.get(), LATE.get()),
            (Some("spawner, later"), None, Some(9))
        );
        end.release.send(()).unwrap();
        assert_eq!(rt.block_on(handle).unwrap(), EXPECTED);
        assert_eq!(
            (NAME.get(), CHILD.get(), LATE.get()),
            (Some("spawner, later"), None, Some(9))
        );
    });
}

#[test]
fn handle_block_on_starts_from_the_caller_and_never_leaks_back() {
    on_both(|rt| {
        let handle = rt.handle().clone();
        let seen = std::thread::spawn(move || {
            let _name = NAME.set("caller");
            let inside = handle.block_on(async {
                let at_start = NAME.get();
                let _name = NAME.set("inside");
                let _child = CHILD.set(1);
                tokio::task::yield_now().await;
                let held = (NAME.get(), CHILD.get());
                (at_start, held)
            });
            (inside, (NAME.get(), CHILD.get()))
        })
        .join()
        .unwrap();
        assert_eq!(
            seen,
            (
                (Some("caller"), (Some("inside"), Some(1))),
                (Some("caller"), None)
            )
        );

        // `Runtime::block_on` likewise, from the test thread.
        let _name = NAME.set("caller");
        let inside = rt.block_on(async {
            let at_start = NAME.get();
            let _name = NAME.set("inside");
            let _child = CHILD.set(1);
            tokio::task::yield_now().await;
            // Tasks spawned inside inherit block_on's frame.
            let spawned = ctx::spawn(async { (NAME.get(), CHILD.get()) })
                .await
                .unwrap();
            (at_start, spawned)
        });
        assert_eq!(inside, (Some("caller"), (Some("inside"), Some(1))));
        assert_eq!((NAME.get(), CHILD.get()), (Some("caller"), None));
    });
}

// ===== blocking closures and threads =====

#[test]
fn spawn_blocking_inherits_and_isolates() {
    on_both(|rt| {
        rt.block_on(spawner(|end| {
            let handle = ctx::spawn_blocking(move || blocking_child(end));
            Box::pin(async { handle.await.unwrap() })
        }));
        rt.block_on(spawner(|end| {
            let handle = ctx::Handle::current().spawn_blocking(move || blocking_child(end));
            Box::pin(async { handle.await.unwrap() })
        }));
    });
}

#[test]
fn runtime_spawn_blocking_from_outside_inherits() {
    on_both(|rt| {
        let _name = NAME.set("spawner");
        let (end, child_end) = channels();
        let handle = rt.spawn_blocking(move || blocking_child(child_end));
        let _renamed = NAME.set("spawner, later");
        let _late = LATE.set(9);
        end.go.send(()).unwrap();
        end.bound.blocking_recv().unwrap();
        assert_eq!((NAME.get(), CHILD.get()), (Some("spawner, later"), None));
        end.release.send(()).unwrap();
        assert_eq!(rt.block_on(handle).unwrap(), EXPECTED);
    });
}

#[test]
fn thread_spawn_inherits_and_isolates() {
    // From a task on a runtime.
    on_both(|rt| {
        rt.block_on(spawner(|end| {
            let handle = ctx::thread::spawn(move || blocking_child(end));
            Box::pin(async {
                tokio::task::spawn_blocking(move || handle.join().unwrap())
                    .await
                    .unwrap()
            })
        }));
        rt.block_on(spawner(|end| {
            let handle = ctx::thread::Builder::new()
                .name("inheriting".into())
                .spawn(move || {
                    assert_eq!(std::thread::current().name(), Some("inheriting"));
                    blocking_child(end)
                })
                .unwrap();
            Box::pin(async {
                tokio::task::spawn_blocking(move || handle.join().unwrap())
                    .await
                    .unwrap()
            })
        }));
    });

    // From a plain thread outside any runtime.
    let _name = NAME.set("spawner");
    let (end, child_end) = channels();
    let handle = ctx::thread::spawn(move || blocking_child(child_end));
    let _renamed = NAME.set("spawner, later");
    let _late = LATE.set(9);
    end.go.send(()).unwrap();
    end.bound.blocking_recv().unwrap();
    assert_eq!((NAME.get(), CHILD.get()), (Some("spawner, later"), None));
    end.release.send(()).unwrap();
    assert_eq!(handle.join().unwrap(), EXPECTED);

    // Control: a plain std thread starts empty.
    assert_eq!(std::thread::spawn(|| NAME.get()).join().unwrap(), None);
}

// ===== JoinSet and TaskTracker =====

#[test]
fn join_set_spawns_inherit_and_isolate() {
    on_both(|rt| {
        rt.block_on(spawner(|end| {
            let mut set = ctx::JoinSet::new();
            set.spawn(async_child(end));
            Box::pin(async move { set.join_next().await.unwrap().unwrap() })
        }));
        rt.block_on(spawner(|end| {
            let mut set = ctx::JoinSet::new();
            set.spawn_blocking(move || blocking_child(end));
            Box::pin(async move { set.join_next().await.unwrap().unwrap() })
        }));
    });

    let rt = current_thread();
    let local = tokio::task::LocalSet::new();
    rt.block_on(local.run_until(spawner(|end| {
        let mut set = ctx::JoinSet::new();
        set.spawn_local(async_child(end));
        Box::pin(async move { set.join_next().await.unwrap().unwrap() })
    })));
}

#[test]
fn task_tracker_spawns_inherit_and_isolate() {
    on_both(|rt| {
        let tracker = ctx::TaskTracker::new();
        let t = tracker.clone();
        rt.block_on(spawner(move |end| {
            let handle = t.spawn(async_child(end));
            Box::pin(async { handle.await.unwrap() })
        }));
        let t = tracker.clone();
        rt.block_on(spawner(move |end| {
            let handle = t.spawn_blocking(move || blocking_child(end));
            Box::pin(async { handle.await.unwrap() })
        }));
        tracker.close();
        rt.block_on(tracker.wait());
        assert!(tracker.is_empty());
    });

    let rt = current_thread();
    let local = tokio::task::LocalSet::new();
    let tracker = ctx::TaskTracker::new();
    rt.block_on(local.run_until(spawner(|end| {
        let handle = tracker.spawn_local(async_child(end));
        Box::pin(async { handle.await.unwrap() })
    })));
}

/// A `.frame()` made at the top level of a spawned task takes the task's
/// context (inherited, plus what the task bound), wherever it is polled.
#[test]
fn a_frame_made_at_the_top_of_a_spawned_task_sees_the_tasks_context() {
    static V: ctx::Variable<&str> = ctx::Variable::new("v");
    static W: ctx::Variable<&str> = ctx::Variable::new("w");
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let seen = rt.block_on(V.scope("spawner", async {
        ctx::spawn(async {
            let _w = W.set("task");
            let inner = async {
                tokio::task::yield_now().await;
                (V.get(), W.get())
            }
            .frame();
            // Polled from a context of its own: the frame keeps the task's.
            V.scope("poller", inner).await
        })
        .await
        .unwrap()
    }));
    assert_eq!(seen, (Some("spawner"), Some("task")));
}
