//! Runtime-hook mode (`--cfg tokio_unstable`) seen from the API: whether a
//! runtime frames every task (`Runtime`/`Handle::frames_every_task`), and
//! work spawned through rt-ext framed once, by its own wrapper, not a second
//! time by the runtime's spawn hook.
#![cfg(tokio_unstable)]

use std::time::Duration;

use rt_ext as ctx;

static REQUEST: ctx::Variable<u64> = ctx::Variable::new("request");

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

/// `framed_tasks` once the tasks that ended have had their terminate hook
/// (tokio wakes a join handle before that hook runs on the worker).
fn settled(rt: &ctx::Runtime, expected: usize) -> Option<usize> {
    for _ in 0..500 {
        if rt.framed_tasks() == Some(expected) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    rt.framed_tasks()
}

#[test]
fn runtime_and_handle_tell_whether_every_task_is_framed() {
    for rt in runtimes() {
        assert!(rt.frames_every_task());
        assert!(rt.handle().frames_every_task());
        assert!(rt.block_on(async { ctx::Handle::current().frames_every_task() }));
    }
    let off = ctx::Builder::new_current_thread()
        .frame_every_task(false)
        .build()
        .unwrap();
    assert!(!off.frames_every_task());
    assert!(!off.handle().frames_every_task());
    assert_eq!(off.framed_tasks(), None);
    let plain = ctx::Runtime::from(tokio::runtime::Runtime::new().unwrap());
    assert!(!plain.frames_every_task());
    assert!(!plain.handle().frames_every_task());
}

#[test]
fn ctx_spawned_tasks_are_framed_once_plain_ones_by_the_runtime() {
    const N: usize = 20;
    for rt in runtimes() {
        rt.block_on(async {
            let _r = REQUEST.set(1);
            let (release, released) = tokio::sync::watch::channel(false);
            let wait = move || {
                let mut released = released.clone();
                async move {
                    released.wait_for(|r| *r).await.unwrap();
                    REQUEST.get()
                }
            };
            let tracker = ctx::TaskTracker::new();
            let mut set = ctx::JoinSet::new();
            let mut framed_by_rt_ext = Vec::new();
            for i in 0..N {
                match i % 4 {
                    0 => framed_by_rt_ext.push(ctx::spawn(wait())),
                    1 => framed_by_rt_ext.push(ctx::Handle::current().spawn(wait())),
                    2 => framed_by_rt_ext.push(tracker.spawn(wait())),
                    _ => drop(set.spawn(wait())),
                }
            }
            let plain: Vec<_> = (0..N).map(|_| tokio::spawn(wait())).collect();
            release.send(true).unwrap();
            for t in framed_by_rt_ext.into_iter().chain(plain) {
                assert_eq!(t.await.unwrap(), Some(1));
            }
            for seen in set.join_all().await {
                assert_eq!(seen, Some(1));
            }
        });
    }
    // The counts, read from outside while tasks are parked.
    for rt in runtimes() {
        let (release, released) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..N {
            let mut released = released.clone();
            let _e = rt.enter();
            tasks.push(ctx::spawn(async move {
                released.wait_for(|r| *r).await.unwrap();
            }));
        }
        rt.block_on(tokio::task::yield_now());
        assert_eq!(settled(&rt, 0), Some(0), "rt-ext tasks got a second frame");
        for _ in 0..N {
            let mut released = released.clone();
            let _e = rt.enter();
            tasks.push(tokio::spawn(async move {
                released.wait_for(|r| *r).await.unwrap();
            }));
        }
        assert_eq!(
            rt.framed_tasks(),
            Some(N),
            "plain tasks are framed by the runtime"
        );
        release.send(true).unwrap();
        rt.block_on(async {
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert_eq!(settled(&rt, 0), Some(0));
    }
}

#[test]
fn plain_spawns_inside_a_ctx_task_inherit_its_frame() {
    for rt in runtimes() {
        rt.block_on(async {
            let _r = REQUEST.set(5);
            let seen = ctx::spawn(async {
                let _r = REQUEST.set(6);
                // The plain task's frame starts from the ctx task's own.
                let plain = tokio::spawn(async {
                    let inherited = REQUEST.get();
                    let _mine = REQUEST.set(7);
                    (inherited, REQUEST.get())
                });
                let from_plain = plain.await.unwrap();
                (from_plain, REQUEST.get())
            });
            assert_eq!(seen.await.unwrap(), ((Some(6), Some(7)), Some(6)));
            assert_eq!(REQUEST.get(), Some(5));
        });
    }
}

#[test]
fn the_flag_does_not_reach_a_later_plain_spawn() {
    // A ctx spawn onto a runtime without hooks leaves the flag unset: the
    // next plain spawn on a hook-mode runtime from this thread is framed.
    let hooked = ctx::Builder::new_current_thread().build().unwrap();
    let plain = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    {
        let _e = plain.enter();
        drop(ctx::spawn(async {}));
    }
    let _e = hooked.enter();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = released.await;
    });
    assert_eq!(hooked.framed_tasks(), Some(1));
    release.send(()).unwrap();
    hooked.block_on(task).unwrap();
}
