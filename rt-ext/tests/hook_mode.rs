//! Runtime-hook mode (`--cfg tokio_unstable`): tasks spawned with plain
//! `tokio::spawn`, as a third-party library would, get a frame of their own:
//! they inherit, may bind without leaking, run their hooks across migration,
//! stay clean after panics, and their frames are freed when they end.
#![cfg(tokio_unstable)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rt_ext::{self as ctx, Lifecycle};
use support::{yield_once, Event, Log, Recorder};

static REQUEST: ctx::Variable<u64> = ctx::Variable::new("request");

/// Stands in for a library that spawns its own tasks with plain tokio.
mod third_party {
    use tokio::task::JoinHandle;

    pub(crate) fn spawn_worker<F>(f: F) -> JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::spawn(f)
    }
}

/// The number of frames the runtime holds once every finished task has been
/// terminated. tokio wakes a task's `JoinHandle` before it runs the terminate
/// hook on the worker, so right after the last join a worker may still be
/// about to end a frame: wait (bounded) for the count to settle. A frame
/// that is really kept never goes away, and the assertion then fails.
fn settled_frames(rt: &ctx::Runtime) -> Option<usize> {
    for _ in 0..500 {
        if rt.framed_tasks() == Some(0) {
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    rt.framed_tasks()
}

fn runtimes() -> Vec<ctx::Runtime> {
    vec![
        ctx::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        ctx::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ]
}

#[test]
fn plain_tokio_spawn_inherits_and_isolates() {
    for rt in runtimes() {
        rt.block_on(async {
            let _r = REQUEST.set(7);
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
            let task = third_party::spawn_worker(async move {
                let inherited = REQUEST.get();
                let grandchild = third_party::spawn_worker(async { REQUEST.get() });
                let _mine = REQUEST.set(8); // a frame of its own: allowed
                go_rx.await.unwrap(); // the parent rebinds meanwhile
                let after = REQUEST.get();
                (inherited, grandchild.await.unwrap(), after)
            });
            {
                let _later = REQUEST.set(9);
                go_tx.send(()).unwrap();
                assert_eq!(task.await.unwrap(), (Some(7), Some(7), Some(8)));
            }
            assert_eq!(
                REQUEST.get(),
                Some(7),
                "the child's binding reached the parent"
            );
        });
        assert_eq!(settled_frames(&rt), Some(0));
    }
}

#[test]
fn hooks_in_plain_tasks_alternate_and_follow_migration() {
    struct Where(Arc<Mutex<Vec<(bool, thread::ThreadId)>>>);
    impl Lifecycle for Where {
        fn on_yield(&mut self) {
            self.0.lock().unwrap().push((false, thread::current().id()));
        }
        fn on_resume(&mut self) {
            self.0.lock().unwrap().push((true, thread::current().id()));
        }
    }
    let rt = &runtimes()[1];
    let migrations = rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let hog = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_micros(300));
                tokio::task::yield_now().await;
            }
        });
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            tasks.push(third_party::spawn_worker(async move {
                let log = Arc::new(Mutex::new(Vec::new()));
                let _r = REQUEST.set(t);
                let _h = ctx::enter(Where(log.clone()));
                let mut moved = 0;
                for _ in 0..300 {
                    let before = thread::current().id();
                    log.lock().unwrap().clear();
                    tokio::task::yield_now().await;
                    let after = thread::current().id();
                    assert_eq!(*log.lock().unwrap(), vec![(false, before), (true, after)]);
                    assert_eq!(REQUEST.get(), Some(t));
                    moved += usize::from(before != after);
                }
                moved
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        hog.await.unwrap();
        total
    });
    assert!(
        migrations > 0,
        "no task migrated; migration was not exercised"
    );
}

#[test]
fn a_plain_task_panicking_mid_poll_leaves_the_worker_clean() {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let rt = &runtimes()[0];
    let l = log.clone();
    rt.block_on(async move {
        let failed = third_party::spawn_worker(async move {
            let _r = REQUEST.set(1);
            std::mem::forget(ctx::enter(Recorder::new("h", &l)));
            yield_once().await;
            panic!("boom");
        });
        assert!(failed.await.unwrap_err().is_panic());
        let clean =
            third_party::spawn_worker(async { (REQUEST.get(), ctx::Snapshot::capture().len()) });
        // The next plain task inherits the root's (empty) context only.
        assert_eq!(clean.await.unwrap(), (None, 0));
    });
    use Event::*;
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            Yield("h"),
            Resume("h"),
            // tokio drops the panicked future and terminates the task inside
            // the same poll, while its frame is still entered: the hook goes
            // entered, without a yield first.
            Dropped {
                name: "h",
                entered: true
            },
        ]
    );
    assert_eq!(settled_frames(rt), Some(0));
}

#[test]
fn a_hundred_thousand_tasks_leave_no_frame_behind() {
    let rt = &runtimes()[1];
    rt.block_on(async {
        let mut handles = Vec::new();
        for i in 0..100_000u64 {
            let h = tokio::spawn(async move {
                let _r = REQUEST.set(i);
                match i % 10 {
                    0 => std::future::pending::<()>().await, // aborted below
                    1 => panic!("task {i} panics"),
                    2 => {
                        yield_once().await;
                        panic!("task {i} panics after a yield")
                    }
                    _ => yield_once().await,
                }
            });
            if i % 10 == 0 {
                h.abort();
            }
            handles.push(h);
            if handles.len() == 10_000 {
                for h in handles.drain(..) {
                    let _ = h.await;
                }
            }
        }
        for h in handles {
            let _ = h.await;
        }
    });
    assert_eq!(
        settled_frames(rt),
        Some(0),
        "frames of finished tasks were kept"
    );
}

#[test]
fn tasks_pending_at_shutdown_are_torn_down_entered() {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let l = log.clone();
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::oneshot::channel();
        third_party::spawn_worker(async move {
            let _h = ctx::enter(Recorder::new("h", &l));
            tx.send(()).unwrap();
            std::future::pending::<()>().await
        });
        rx.await.unwrap();
    });
    drop(rt);
    let log = log.lock().unwrap();
    assert_eq!(
        log.last(),
        Some(&Event::Dropped {
            name: "h",
            entered: true
        }),
        "{log:?}"
    );
}

#[test]
fn user_task_hooks_still_run_inside_the_frame() {
    static SPAWNS: AtomicUsize = AtomicUsize::new(0);
    static BEFORE: AtomicUsize = AtomicUsize::new(0);
    static AFTER: AtomicUsize = AtomicUsize::new(0);
    static ENDS: AtomicUsize = AtomicUsize::new(0);
    static SEEN_IN_HOOK: Mutex<Vec<Option<u64>>> = Mutex::new(Vec::new());
    let rt = ctx::Builder::new_current_thread()
        .on_task_spawn(|_| {
            SPAWNS.fetch_add(1, Ordering::SeqCst);
        })
        .on_before_task_poll(|_| {
            BEFORE.fetch_add(1, Ordering::SeqCst);
            SEEN_IN_HOOK.lock().unwrap().push(REQUEST.get());
        })
        .on_after_task_poll(|_| {
            AFTER.fetch_add(1, Ordering::SeqCst);
        })
        .on_task_terminate(|_| {
            ENDS.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    rt.block_on(async {
        let _r = REQUEST.set(5);
        tokio::spawn(async { yield_once().await }).await.unwrap();
    });
    assert_eq!(SPAWNS.load(Ordering::SeqCst), 1);
    assert_eq!(BEFORE.load(Ordering::SeqCst), 2);
    assert_eq!(AFTER.load(Ordering::SeqCst), 2);
    assert_eq!(ENDS.load(Ordering::SeqCst), 1);
    assert_eq!(*SEEN_IN_HOOK.lock().unwrap(), vec![Some(5), Some(5)]);
}

#[test]
fn framing_every_task_can_be_turned_off() {
    let rt = ctx::Builder::new_current_thread()
        .frame_every_task(false)
        .build()
        .unwrap();
    assert_eq!(rt.framed_tasks(), None);
    rt.block_on(async {
        let _r = REQUEST.set(1);
        let plain = tokio::spawn(async { (REQUEST.get(), REQUEST.try_set(2).is_err()) });
        assert_eq!(plain.await.unwrap(), (None, true));
    });
}

/// More live tasks than the registry's table has slots: tasks whose slots are
/// both taken go to the overflow map. Every task, wherever its frame is kept,
/// still reads its own inherited value after each resume, keeps its own
/// binding across yields on both workers, and its frame is freed at the end.
#[test]
fn more_live_tasks_than_slots_each_keep_their_own_frame() {
    const TASKS: u64 = 20_000;
    let rt = &runtimes()[1];
    let wrong = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        let mut handles = Vec::new();
        for i in 0..TASKS {
            let mut go = go_rx.clone();
            let wrong = wrong.clone();
            // The value is inherited at spawn: each task gets its own.
            let h = REQUEST.sync_scope(i, || {
                third_party::spawn_worker(async move {
                    // All tasks are alive at once while they wait here.
                    go.wait_for(|go| *go).await.unwrap();
                    if REQUEST.get() != Some(i) {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    let _own = REQUEST.set(i + TASKS);
                    for _ in 0..3 {
                        yield_once().await;
                        if REQUEST.get() != Some(i + TASKS) {
                            wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            });
            handles.push(h);
        }
        // Every task has been spawned (and so holds a frame) before any ends:
        // more frames than the table's 4,096 slots.
        let held = rt.framed_tasks().unwrap();
        assert!(held >= TASKS as usize, "{held} frames held");
        go_tx.send(true).unwrap();
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "a task read another's value"
    );
    assert_eq!(settled_frames(rt), Some(0), "frames were kept");
}

/// A runtime driven inside `block_in_place` polls its tasks on the worker
/// thread, inside the poll of the task that called it: their frames are
/// entered and left nested in that task's frame, and every frame comes back
/// in order (the inner task binds and yields; the outer task and the runtime
/// around it see their own values before, between and after).
#[test]
fn task_polls_nested_in_a_task_poll_keep_their_frames_apart() {
    // Between polls a worker is back in its base frame: checked each time a
    // worker parks (a wrong frame left installed reads a value, or worse).
    static PARKED_WITH_A_VALUE: AtomicUsize = AtomicUsize::new(0);
    static PARKS: AtomicUsize = AtomicUsize::new(0);
    let outer = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_park(|| {
            PARKS.fetch_add(1, Ordering::Relaxed);
            if REQUEST.get().is_some() {
                PARKED_WITH_A_VALUE.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build()
        .unwrap();
    let (nested, after, sibling) = outer.block_on(async {
        let _root = REQUEST.set(1);
        let nested = third_party::spawn_worker(async {
            let _own = REQUEST.set(2);
            yield_once().await;
            let inside = tokio::task::block_in_place(|| {
                let inner = ctx::Builder::new_current_thread().build().unwrap();
                let from_inner_task = inner.block_on(async {
                    third_party::spawn_worker(async {
                        let inherited = REQUEST.get();
                        let _b = REQUEST.set(3);
                        yield_once().await;
                        (inherited, REQUEST.get())
                    })
                    .await
                    .unwrap()
                });
                (from_inner_task, REQUEST.get())
            });
            yield_once().await;
            (inside, REQUEST.get())
        })
        .await
        .unwrap();
        let after = REQUEST.get();
        let sibling = third_party::spawn_worker(async { REQUEST.get() })
            .await
            .unwrap();
        (nested, after, sibling)
    });
    // The inner task inherited the outer task's value, bound its own, and
    // the outer task's frame was back after the inner runtime returned.
    assert_eq!(nested, (((Some(2), Some(3)), Some(2)), Some(2)));
    assert_eq!((after, sibling), (Some(1), Some(1)));
    drop(outer);
    assert!(PARKS.load(Ordering::Relaxed) > 0);
    assert_eq!(PARKED_WITH_A_VALUE.load(Ordering::Relaxed), 0);
}

/// A lifecycle hook that panics in a plain task cannot unwind into tokio's
/// worker loop: the panic is caught, the hook is dropped, the task goes on
/// and the worker stays clean.
#[test]
fn a_hook_panicking_in_a_plain_task_is_dropped_and_the_task_goes_on() {
    struct PanicsOnYield(Arc<AtomicUsize>);
    impl Lifecycle for PanicsOnYield {
        fn on_yield(&mut self) {
            panic!("hook panics on yield");
        }
        fn on_resume(&mut self) {}
    }
    impl Drop for PanicsOnYield {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    for rt in &runtimes()[1..] {
        let dropped = Arc::new(AtomicUsize::new(0));
        let d = dropped.clone();
        let (done, clean) = rt.block_on(async move {
            let done = third_party::spawn_worker(async move {
                let _r = REQUEST.set(7);
                let guard = ctx::enter(PanicsOnYield(d));
                yield_once().await;
                yield_once().await;
                drop(guard); // the hook is gone already: nothing to remove
                REQUEST.get()
            })
            .await
            .unwrap();
            let clean = third_party::spawn_worker(async { REQUEST.get() })
                .await
                .unwrap();
            (done, clean)
        });
        assert_eq!((done, clean), (Some(7), None));
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(settled_frames(rt), Some(0));
    }
}

/// tokio calls the after-poll hook once the task is already idle, so a task
/// that woke itself can be polled again on another worker while the first
/// one is still in its after-poll hook. The second poll must wait: a hook's
/// `on_resume` (on the new worker) never overlaps its `on_yield` (on the
/// old one), and the frame is never used by two threads at once.
#[test]
fn the_next_poll_on_another_worker_waits_for_the_previous_after_poll_hook() {
    #[derive(Clone, Default)]
    struct Shared {
        in_yield: Arc<AtomicUsize>,
        overlaps: Arc<AtomicUsize>,
        yields: Arc<AtomicUsize>,
    }
    struct SlowYield(Shared);
    impl Lifecycle for SlowYield {
        fn on_yield(&mut self) {
            self.0.in_yield.fetch_add(1, Ordering::SeqCst);
            // Long enough for the other worker to steal the woken task.
            thread::sleep(Duration::from_millis(3));
            self.0.yields.fetch_add(1, Ordering::SeqCst);
            self.0.in_yield.fetch_sub(1, Ordering::SeqCst);
        }
        fn on_resume(&mut self) {
            if self.0.in_yield.load(Ordering::SeqCst) != 0 {
                self.0.overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    let rt = &runtimes()[1];
    let shared = Shared::default();
    let s = shared.clone();
    let seen = rt.block_on(async move {
        third_party::spawn_worker(async move {
            let _r = REQUEST.set(9);
            let _h = ctx::enter(SlowYield(s));
            let mut seen = Vec::new();
            for _ in 0..40 {
                yield_once().await;
                seen.push(REQUEST.get());
            }
            seen
        })
        .await
        .unwrap()
    });
    assert_eq!(seen, vec![Some(9); 40]);
    assert_eq!(shared.yields.load(Ordering::SeqCst), 40);
    assert_eq!(
        shared.overlaps.load(Ordering::SeqCst),
        0,
        "on_resume ran during on_yield"
    );
    assert_eq!(settled_frames(rt), Some(0));
}

/// A user's after-poll hook runs inside the task's frame after the poll has
/// returned, when tokio may already poll the task again on another worker:
/// every poll then waits for the previous after-poll hook, which reads the
/// value bound by the poll it follows, never a later one (nor freed memory).
#[test]
fn a_user_after_poll_hook_reads_the_frame_of_the_poll_it_follows() {
    static SEEN: Mutex<Vec<Option<u64>>> = Mutex::new(Vec::new());
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .on_after_task_poll(|_| {
            // Long enough for the other worker to steal the woken task.
            thread::sleep(Duration::from_millis(2));
            SEEN.lock().unwrap().push(REQUEST.get());
        })
        .build()
        .unwrap();
    rt.block_on(async {
        third_party::spawn_worker(async {
            for i in 0..20 {
                let bound = REQUEST.set(i);
                yield_once().await;
                drop(bound);
            }
        })
        .await
        .unwrap();
    });
    drop(rt);
    let mut expected: Vec<Option<u64>> = (0..20).map(Some).collect();
    // The last poll ends the task: its after-poll hook runs outside it.
    expected.push(None);
    assert_eq!(*SEEN.lock().unwrap(), expected);
}

/// At shutdown tokio drops a pending plain task's future outside any poll,
/// so its guards defer, hook first, then binding; the frame's end applies
/// them in that order: each hook is resumed and dropped seeing its task's
/// binding, as it would have when dropped in place.
#[test]
fn hooks_of_tasks_pending_at_shutdown_see_their_own_context() {
    const TASKS: u64 = 2_000;

    /// Counts the calls that see `REQUEST` as its task bound it, and those
    /// that do not.
    struct Expect {
        want: u64,
        right: Arc<AtomicUsize>,
        wrong: Arc<AtomicUsize>,
    }
    impl Expect {
        fn check(&self) {
            let counter = if REQUEST.get() == Some(self.want) {
                &self.right
            } else {
                &self.wrong
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
    impl Lifecycle for Expect {
        fn on_yield(&mut self) {}
        fn on_resume(&mut self) {
            self.check();
        }
    }
    impl Drop for Expect {
        fn drop(&mut self) {
            self.check();
        }
    }

    let right = Arc::new(AtomicUsize::new(0));
    let wrong = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    rt.block_on({
        let (right, wrong, started) = (right.clone(), wrong.clone(), started.clone());
        async move {
            for want in 0..TASKS {
                let (right, wrong, started) = (right.clone(), wrong.clone(), started.clone());
                third_party::spawn_worker(async move {
                    let _bound = REQUEST.set(want);
                    let _hook = ctx::enter(Expect { want, right, wrong });
                    started.fetch_add(1, Ordering::Release);
                    std::future::pending::<()>().await
                });
            }
            while started.load(Ordering::Acquire) < TASKS as usize {
                tokio::task::yield_now().await;
            }
        }
    });
    drop(rt);
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "calls that saw another context"
    );
    // Each hook: resumed and dropped at the end of its frame.
    assert_eq!(right.load(Ordering::Relaxed), 2 * TASKS as usize);
}
