//! Unframed code on a runtime thread (a plain `tokio::spawn` task, a plain
//! runtime's `block_on`, a plain `spawn_blocking` closure) shares the thread's
//! base frame with every other such task, so bindings and hooks are refused
//! there with a clear error, while reading still works. Framed code on the
//! same runtime, and plain threads outside any runtime, bind freely.

use std::panic;
use std::sync::{Mutex, Once};

use rt_ext::{self as ctx, FutureExt as _};

static V: ctx::Variable<u32> = ctx::Variable::new("unframed_v");

struct Noop;

impl ctx::Lifecycle for Noop {
    fn on_yield(&mut self) {}
    fn on_resume(&mut self) {}
}

fn plain_runtimes() -> [tokio::runtime::Runtime; 2] {
    [
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    ]
}

fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        String::from("<non-string panic payload>")
    }
}

/// Checks that an error or panic message tells the user what to do in a
/// task spawned without rt-ext, and only that.
fn assert_advises(text: &str) {
    assert!(text.contains("unframed"), "{text}");
    assert!(text.contains("a task that tokio spawned"), "{text}");
    assert!(text.contains("Variable::scope"), "{text}");
    assert!(text.contains(".frame()"), "{text}");
    assert!(text.contains("rt_ext::tower::FrameLayer"), "{text}");
    assert!(text.contains("rt_ext::spawn"), "{text}");
    assert!(text.contains("--cfg tokio_unstable"), "{text}");
    assert!(!text.contains("#[tokio::test]"), "not a test body: {text}");
}

/// Checks that an error or panic message tells the user what to do in the
/// future of a plain runtime's `block_on`, and only that.
fn assert_advises_block_on(text: &str) {
    assert!(text.contains("unframed"), "{text}");
    assert!(
        text.contains("`#[tokio::main]` or `#[tokio::test]`"),
        "{text}"
    );
    assert!(
        text.contains("`#[rt_ext::main]` and `#[rt_ext::test]`"),
        "{text}"
    );
    assert!(text.contains("rt_ext::Runtime::block_on"), "{text}");
    assert!(text.contains("Variable::scope"), "{text}");
    assert!(!text.contains("FrameLayer"), "not a server's task: {text}");
    assert!(
        !text.contains("tokio_unstable"),
        "not a library's task: {text}"
    );
}

/// What unframed code observes when it tries everything once.
#[derive(Debug)]
struct Attempt {
    read_before: Option<u32>,
    set_error: ctx::BindError,
    enter_error: ctx::BindError,
    read_after: Option<u32>,
}

fn attempt() -> Attempt {
    let read_before = V.get();
    let set_error = V.try_set(1).unwrap_err();
    let enter_error = ctx::try_enter(Noop).unwrap_err();
    Attempt {
        read_before,
        set_error,
        enter_error,
        read_after: V.get(),
    }
}

fn assert_refused(a: &Attempt, advises: fn(&str)) {
    assert_eq!((a.read_before, a.read_after), (None, None));
    for e in [&a.set_error, &a.enter_error] {
        assert!(e.is_unframed(), "{e:?}");
        assert!(!e.is_borrowed(), "{e:?}");
        advises(&e.to_string());
    }
    assert!(a.set_error.to_string().contains("`unframed_v`"));
}

// ===== refusal =====

#[test]
fn try_set_and_try_enter_in_a_plain_tokio_task_return_unframed_errors() {
    for rt in plain_runtimes() {
        let a = rt.block_on(rt.spawn(async { attempt() })).unwrap();
        assert_refused(&a, assert_advises);
    }
}

#[test]
fn set_and_enter_in_a_plain_tokio_task_panic_with_advice() {
    for rt in plain_runtimes() {
        rt.block_on(async {
            let err = tokio::spawn(async { drop(V.set(1)) }).await.unwrap_err();
            let text = message(&*err.into_panic());
            assert_advises(&text);
            assert!(text.contains("`unframed_v`"), "{text}");

            let err = tokio::spawn(async { drop(ctx::enter(Noop)) })
                .await
                .unwrap_err();
            assert_advises(&message(&*err.into_panic()));

            // The panics left nothing behind for the next task.
            assert_eq!(tokio::spawn(async { V.get() }).await.unwrap(), None);
        });
    }
}

#[test]
fn plain_runtime_block_on_is_unframed() {
    for rt in plain_runtimes() {
        let a = rt.block_on(async { attempt() });
        assert_refused(&a, assert_advises_block_on);

        let caught =
            rt.block_on(async { panic::catch_unwind(|| drop(V.set(1))).map_err(|p| message(&*p)) });
        assert_advises_block_on(&caught.unwrap_err());
        let caught = rt.block_on(async {
            panic::catch_unwind(|| drop(ctx::enter(Noop))).map_err(|p| message(&*p))
        });
        assert_advises_block_on(&caught.unwrap_err());
    }
}

#[test]
fn plain_spawn_blocking_is_unframed_but_ctx_spawn_blocking_binds() {
    for rt in plain_runtimes() {
        let a = rt.block_on(rt.spawn_blocking(attempt)).unwrap();
        assert_refused(&a, assert_advises);

        let bound = rt.block_on(async {
            ctx::spawn_blocking(|| {
                let _v = V.set(4);
                V.get()
            })
            .await
        });
        assert_eq!(bound.unwrap(), Some(4));
    }
}

#[test]
fn set_panic_points_at_the_caller() {
    static LOCATED: ctx::Variable<u32> = ctx::Variable::new("located");
    static SEEN: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());
    static HOOK: Once = Once::new();

    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let text = message(info.payload());
            if text.contains("`located`") {
                if let Some(loc) = info.location() {
                    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
                    seen.push((loc.file().to_string(), loc.line()));
                }
            }
            previous(info);
        }));
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let expected_line = line!() + 1;
    let err = rt.block_on(rt.spawn(async { drop(LOCATED.set(1)) }));
    assert!(err.unwrap_err().is_panic());
    let seen = SEEN.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (file, line) = &seen[0];
    assert!(file.ends_with("unframed.rs"), "panic located in {file}");
    assert_eq!(*line, expected_line);
}

// ===== reading =====

#[test]
fn unframed_tasks_read_the_empty_base_context_not_the_spawners() {
    let mut builder = ctx::Builder::new_multi_thread();
    builder.worker_threads(2);
    // In runtime-hook mode every task is framed; this is about the others.
    #[cfg(tokio_unstable)]
    builder.frame_every_task(false);
    let rt = builder.build().unwrap();
    rt.block_on(async {
        let _v = V.set(5);
        // A plain task does not inherit, and is refused as unframed even
        // though its spawner is framed.
        let a = tokio::spawn(async { attempt() }).await.unwrap();
        assert_refused(&a, assert_advises);
        assert_eq!(V.get(), Some(5));
    });
}

#[test]
fn framed_bindings_never_reach_unframed_tasks_on_the_same_thread() {
    // One thread polls everything: a framed task holds a binding across a
    // suspension while unframed tasks run in between on the same thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let framed = tokio::spawn(
            async move {
                let _v = V.set(7);
                held_tx.send(()).unwrap();
                done_rx.await.unwrap();
                V.get()
            }
            .frame(),
        );
        held_rx.await.unwrap();
        let between = tokio::spawn(async { (V.get(), V.try_set(1).is_err()) })
            .await
            .unwrap();
        assert_eq!(between, (None, true));
        done_tx.send(()).unwrap();
        assert_eq!(framed.await.unwrap(), Some(7));
        assert_eq!(tokio::spawn(async { V.get() }).await.unwrap(), None);
    });
}

// ===== framed code binds =====

#[test]
fn the_same_code_framed_or_ctx_spawned_binds() {
    for rt in plain_runtimes() {
        rt.block_on(async {
            let body = || async {
                let _v = V.set(3);
                let _hook = ctx::enter(Noop);
                tokio::task::yield_now().await;
                V.get()
            };
            assert_eq!(tokio::spawn(body().frame()).await.unwrap(), Some(3));
            assert_eq!(ctx::spawn(body()).await.unwrap(), Some(3));
            assert_eq!(body().frame().await, Some(3));
            assert_eq!(V.get(), None);
            // Control: unframed, the same body is refused.
            let err = tokio::spawn(body()).await.unwrap_err();
            assert_advises(&message(&*err.into_panic()));
        });
        assert_eq!(
            rt.block_on(
                async {
                    let _v = V.set(2);
                    V.get()
                }
                .frame()
            ),
            Some(2)
        );
    }

    // `ctx::Runtime::block_on` frames its root future.
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    let seen = rt.block_on(async {
        let _v = V.set(6);
        let _hook = ctx::enter(Noop);
        tokio::task::yield_now().await;
        V.get()
    });
    assert_eq!(seen, Some(6));
}

#[test]
fn a_plain_thread_outside_any_runtime_binds_in_its_base_frame() {
    let seen = std::thread::spawn(|| {
        assert!(tokio::runtime::Handle::try_current().is_err());
        let v = V.try_set(8).expect("a plain thread may bind");
        let hook = ctx::try_enter(Noop).expect("a plain thread may register hooks");
        let during = V.get();
        drop(hook);
        drop(v);
        let _again = V.set(9); // the panicking form too
        (during, V.get())
    })
    .join()
    .unwrap();
    assert_eq!(seen, (Some(8), Some(9)));

    // The same thread, once a runtime it used is gone, binds again.
    let after = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let inside = rt.block_on(async { V.try_set(1).is_err() });
        drop(rt);
        let _v = V.set(10);
        (inside, V.get())
    })
    .join()
    .unwrap();
    assert_eq!(after, (true, Some(10)));
}

#[test]
fn plain_spawn_local_in_a_framed_local_set_never_binds_into_the_driver() {
    static B: ctx::Variable<u32> = ctx::Variable::new("local_b");

    // `ctx::LocalSet` drives its tasks in an isolated frame. (tokio's own
    // `LocalSet` polls them in the driver's frame: the README's known limit.)
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    let local = ctx::LocalSet::new();
    rt.block_on(local.run_until(async {
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        // Unframed code: whether the binding is refused or kept to the task,
        // it must not reach the task that drives the LocalSet.
        let plain = tokio::task::spawn_local(async move {
            let held = B.try_set(99);
            assert!(held.as_ref().is_err_and(|e| e.is_unframed()), "{held:?}");
            held_tx.send(()).unwrap();
            done_rx.await.unwrap();
            drop(held);
        });
        held_rx.await.unwrap();
        let sibling = ctx::spawn_local(async { B.get() }).await.unwrap();
        let driver = B.get();
        done_tx.send(()).unwrap();
        plain.await.unwrap();
        assert_eq!((driver, sibling), (None, None));
    }));
}
