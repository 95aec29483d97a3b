//! `#[rt_ext::main]` and `#[rt_ext::test]`: the body runs framed on an rt-ext
//! runtime of the flavor asked for, so it may `set` and `enter`, and what it
//! spawns inherits; a multi-thread body's task migrates with its hooks
//! alternating; in a `tokio_unstable` build even a plain `tokio::spawn`
//! inherits.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rt_ext::{self as ctx, Lifecycle};
use support::{yield_once, Event, Log, Recorder};

static REQUEST: ctx::Variable<u64> = ctx::Variable::new("request");

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

/// What every body checks: it may bind and enter a hook, the hook alternates
/// across its awaits, and each spawn path sees the binding.
async fn bind_enter_and_spawn(log: &Log) {
    let _r = REQUEST.set(7);
    let _h = ctx::enter(Recorder::new("body", log));
    yield_once().await;
    let task = ctx::spawn(async {
        let inherited = REQUEST.get();
        let _mine = REQUEST.set(8);
        (inherited, REQUEST.get())
    });
    assert_eq!(task.await.unwrap(), (Some(7), Some(8)));
    assert_eq!(
        ctx::spawn_blocking(|| REQUEST.get()).await.unwrap(),
        Some(7)
    );
    let thread = ctx::thread::spawn(|| REQUEST.get());
    assert_eq!(thread.join().unwrap(), Some(7));
    assert_eq!(REQUEST.get(), Some(7), "a child's binding reached the body");
}

fn assert_alternated(log: &Log) {
    let mut events = log.lock().unwrap().clone();
    let last = events.pop();
    let dropped = Event::Dropped {
        name: "body",
        entered: true,
    };
    assert_eq!(last, Some(dropped), "not dropped entered: {events:?}");
    assert!(events.len() >= 2, "the body never suspended: {events:?}");
    for pair in events.chunks(2) {
        if let [Event::Yield("body"), Event::Resume("body")] = pair {
            continue;
        }
        panic!("hook calls did not alternate: {events:?}");
    }
}

#[rt_ext::test]
async fn a_test_body_on_the_default_flavor_binds_and_spawns() {
    let log = log();
    bind_enter_and_spawn(&log).await;
    assert_alternated(&log);
    // tokio's default for tests: one thread, the test's own.
    let flavor = tokio::runtime::Handle::current().runtime_flavor();
    assert_eq!(flavor, tokio::runtime::RuntimeFlavor::CurrentThread);
}

#[rt_ext::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_thread_test_body_binds_and_spawns() {
    let log = log();
    bind_enter_and_spawn(&log).await;
    assert_alternated(&log);
    let metrics = tokio::runtime::Handle::current().metrics();
    assert_eq!(metrics.num_workers(), 2);
}

#[rt_ext::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_thread_body_task_migrates_with_its_hooks_alternating() {
    let _r = REQUEST.set(3);
    // Rounds until a task moved between the workers mid-way (the
    // interleaving this test is about); each round checks every yield.
    for _ in 0..50 {
        if migration_round().await > 0 {
            assert_eq!(REQUEST.get(), Some(3));
            return;
        }
    }
    panic!("no task migrated in 50 rounds: migration was not exercised");
}

/// Eight tasks that bind, register a hook and yield 300 times, while another
/// task keeps one worker busy between its yields so that the other worker
/// steals now and then; every yield checks that the hook yielded on the
/// thread it left and resumed on the thread it came back on, and that the
/// binding held. Returns how many yields came back on another thread.
async fn migration_round() -> usize {
    struct Where(Arc<Mutex<Vec<(bool, thread::ThreadId)>>>);
    impl Lifecycle for Where {
        fn on_yield(&mut self) {
            self.0.lock().unwrap().push((false, thread::current().id()));
        }
        fn on_resume(&mut self) {
            self.0.lock().unwrap().push((true, thread::current().id()));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let hog = ctx::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_micros(300));
            tokio::task::yield_now().await;
        }
    });
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        tasks.push(ctx::spawn(async move {
            assert_eq!(REQUEST.get(), Some(3));
            let _r = REQUEST.set(t);
            let log = Arc::new(Mutex::new(Vec::new()));
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
    let mut migrations = 0;
    for t in tasks {
        migrations += t.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    hog.await.unwrap();
    migrations
}

#[rt_ext::test]
async fn a_test_may_return_a_result() -> Result<(), Box<dyn std::error::Error>> {
    let _r = REQUEST.set(1);
    let seen = ctx::spawn(async { REQUEST.get() }).await?;
    assert_eq!(seen, Some(1));
    Ok(())
}

/// `crate` names rt-ext where it is re-exported under another path.
mod facade {
    pub(crate) use rt_ext as context;
}

#[rt_ext::test(crate = "facade::context")]
async fn crate_names_a_reexported_rt_ext() {
    let _r = REQUEST.set(5);
    assert_eq!(ctx::spawn(async { REQUEST.get() }).await.unwrap(), Some(5));
}

#[rt_ext::main(flavor = "current_thread")]
async fn main_on_one_thread(log: Log) -> Option<u64> {
    bind_enter_and_spawn(&log).await;
    let _r = REQUEST.set(11);
    ctx::spawn(async { REQUEST.get() }).await.unwrap()
}

#[rt_ext::main]
async fn main_on_the_default_flavor(log: Log) -> (Option<u64>, usize) {
    bind_enter_and_spawn(&log).await;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    (ctx::spawn(async { REQUEST.get() }).await.unwrap(), workers)
}

#[test]
fn a_main_body_binds_and_spawns_on_both_flavors() {
    let one = log();
    assert_eq!(main_on_one_thread(one.clone()), Some(11));
    assert_alternated(&one);

    let multi = log();
    let (seen, workers) = main_on_the_default_flavor(multi.clone());
    assert_eq!(seen, None, "a binding of the body outlived it");
    assert_alternated(&multi);
    // tokio's default: one worker per core.
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(workers, cores);
}

#[rt_ext::main(flavor = "current_thread")]
async fn read_then_bind() -> Option<u64> {
    let seen = REQUEST.get();
    let _r = REQUEST.set(41);
    seen
}

#[test]
fn each_body_starts_from_the_callers_context() {
    // `Runtime::block_on` frames the body from the calling thread's context:
    // a value bound around the call is seen, and the body's own binding does
    // not leak out.
    let seen = REQUEST.sync_scope(40, || {
        let seen = read_then_bind();
        (seen, REQUEST.get())
    });
    assert_eq!(seen, (Some(40), Some(40)));
    assert_eq!(read_then_bind(), None);
}

/// In runtime-hook mode the runtime of the attribute frames every task:
/// plain `tokio::spawn`, as a library would call it, inherits and may bind.
#[cfg(tokio_unstable)]
#[rt_ext::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tokio_spawn_inherits_under_tokio_unstable() {
    let _r = REQUEST.set(21);
    let plain = tokio::spawn(async {
        let inherited = REQUEST.get();
        let _mine = REQUEST.set(22);
        (inherited, REQUEST.get())
    });
    assert_eq!(plain.await.unwrap(), (Some(21), Some(22)));
    assert_eq!(REQUEST.get(), Some(21));
}
