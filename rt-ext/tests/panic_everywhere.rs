//! Invariant 4 in every position: user code panics in a task's poll, in its
//! future's destructor before and after `Ready`, in each hook callback, in a
//! hook's destructor and in a bound value's destructor; each outside and
//! inside unwinding (the whole runtime driven from a destructor during a
//! panic); in ctx mode (`ctx::spawn`) and, with `--cfg tokio_unstable`, in
//! runtime-hook mode (plain `tokio::spawn`). Every case must leave the
//! process alive and the worker thread's base frame clean.
//!
//! Each case runs in a child process (this test binary, re-executed with the
//! case named in an environment variable), so that an abort fails its case
//! instead of killing the suite.

mod support;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use rt_ext::{self as ctx, Lifecycle};
use support::yield_once;

const CASE: &str = "RT_EXT_PANIC_CASE";
const DONE: &str = "case finished";

/// Where the deliberate panic happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Poll,
    FutureDropBeforeReady,
    FutureDropAfterReady,
    HookYield,
    HookResume,
    HookDrop,
    ValueDrop,
    /// A hook of `block_on`'s own future panics on resume.
    BlockOnHookResume,
}

const ALL: [At; 8] = [
    At::Poll,
    At::FutureDropBeforeReady,
    At::FutureDropAfterReady,
    At::HookYield,
    At::HookResume,
    At::HookDrop,
    At::ValueDrop,
    At::BlockOnHookResume,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `ctx::spawn` on a ctx runtime.
    Ctx,
    /// Plain `tokio::spawn` on a runtime that frames every task.
    #[cfg_attr(not(tokio_unstable), allow(dead_code))]
    HookMode,
}

/// How many deliberate panics were raised in this process.
static RAISED: AtomicUsize = AtomicUsize::new(0);

fn raise(what: &str) -> ! {
    RAISED.fetch_add(1, Ordering::SeqCst);
    panic!("deliberate: {what}")
}

static VALUE: ctx::Variable<Bomb> = ctx::Variable::new("value");

/// A bound value; panics when dropped if armed.
struct Bomb(bool);

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.0 {
            raise("value drop");
        }
    }
}

/// A hook that panics in the callback it is told to.
struct Hook(At);

impl Lifecycle for Hook {
    fn on_yield(&mut self) {
        if self.0 == At::HookYield {
            raise("on_yield");
        }
    }
    fn on_resume(&mut self) {
        if matches!(self.0, At::HookResume | At::BlockOnHookResume) {
            raise("on_resume");
        }
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        if self.0 == At::HookDrop {
            raise("hook drop");
        }
    }
}

/// The task's future: binds, registers a hook, yields twice, then finishes
/// (or never does, to be cancelled); panics in its own destructor if told.
struct Victim {
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
    panic_on_drop: bool,
}

impl Victim {
    fn new(at: At) -> Victim {
        Victim {
            inner: Box::pin(async move {
                let _v = VALUE.set(Bomb(at == At::ValueDrop));
                let _h = ctx::enter(Hook(at));
                yield_once().await;
                yield_once().await;
                if at == At::Poll {
                    raise("poll");
                }
                if at == At::FutureDropBeforeReady {
                    std::future::pending::<()>().await;
                }
            }),
            panic_on_drop: matches!(at, At::FutureDropBeforeReady | At::FutureDropAfterReady),
        }
    }
}

impl Future for Victim {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        if self.panic_on_drop {
            raise("future drop");
        }
    }
}

/// Asserts that the calling thread is in an empty base frame.
fn assert_clean() {
    assert!(VALUE.with(|v| v.is_none()), "a binding was left installed");
    assert!(
        ctx::Snapshot::capture().is_empty(),
        "a context was left installed"
    );
}

fn runtime() -> ctx::Runtime {
    ctx::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs one case on a current-thread runtime (its worker is this thread).
/// Outside unwinding, a panic that leaves `block_on` is caught here; inside,
/// nothing catches it, so one would abort the process.
fn run_case(mode: Mode, at: At) {
    let rt = runtime();
    let drive = || {
        rt.block_on(async move {
            if at == At::BlockOnHookResume {
                let _h = ctx::enter(Hook(at));
                yield_once().await;
                return;
            }
            let task = match mode {
                Mode::Ctx => ctx::spawn(Victim::new(at)),
                Mode::HookMode => tokio::spawn(Victim::new(at)),
            };
            if at == At::FutureDropBeforeReady {
                for _ in 0..4 {
                    tokio::task::yield_now().await;
                }
                task.abort();
            }
            let _ = task.await;
            if mode == Mode::Ctx {
                // A plain task is polled in the worker's base frame.
                tokio::spawn(async { assert_clean() }).await.unwrap();
            }
        })
    };
    if std::thread::panicking() {
        drive();
    } else {
        let _ = catch_unwind(AssertUnwindSafe(drive));
    }
    drop(rt);
    assert_clean();
    assert_eq!(
        RAISED.load(Ordering::SeqCst),
        1,
        "the deliberate panic at {at:?} was raised once"
    );
}

/// Runs `f` from a destructor while the thread unwinds from another panic.
fn during_unwinding(f: impl FnOnce()) {
    struct OnDrop<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                assert!(std::thread::panicking());
                f();
            }
        }
    }
    let outer = catch_unwind(AssertUnwindSafe(|| {
        let _d = OnDrop(Some(f));
        panic!("the outer panic");
    }));
    assert!(outer.is_err());
}

/// Runs every position of `mode` (outside or inside unwinding), each in a
/// child process, and asserts that each finished with the process alive.
fn every_position(test: &str, mode: Mode, unwinding: bool) {
    if let Ok(case) = std::env::var(CASE) {
        let at = ALL
            .into_iter()
            .find(|at| format!("{at:?}") == case)
            .expect("a known case");
        if unwinding {
            during_unwinding(|| run_case(mode, at));
        } else {
            run_case(mode, at);
        }
        assert_clean();
        println!("{DONE}");
        return;
    }
    let mut failed = Vec::new();
    for at in ALL {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CASE, format!("{at:?}"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains(DONE) {
            failed.push(format!(
                "{at:?}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n----\n"));
}

#[test]
fn ctx_mode_outside_unwinding() {
    every_position("ctx_mode_outside_unwinding", Mode::Ctx, false);
}

#[test]
fn ctx_mode_inside_unwinding() {
    every_position("ctx_mode_inside_unwinding", Mode::Ctx, true);
}

#[cfg(tokio_unstable)]
#[test]
fn hook_mode_outside_unwinding() {
    every_position("hook_mode_outside_unwinding", Mode::HookMode, false);
}

#[cfg(tokio_unstable)]
#[test]
fn hook_mode_inside_unwinding() {
    every_position("hook_mode_inside_unwinding", Mode::HookMode, true);
}
