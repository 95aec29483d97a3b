//! Inheritable hooks, as a user writes one: a per-thread setting (standing
//! in for a C library's "current tenant", or any thread-local a crate keeps)
//! that work spawned while it is in effect keeps, on whatever thread runs
//! it. The inheritor is registered once with `ctx::register`; every rt-ext
//! spawn path then gives each child a hook that puts the spawner's setting
//! in effect whenever the child runs, and takes it away whenever it
//! suspends.

mod support;

use std::cell::Cell;
use std::collections::HashSet;
use std::thread::ThreadId;

use rt_ext as ctx;
use support::yield_once;

thread_local! {
    /// The setting, per thread: 0 means none.
    static TENANT: Cell<u32> = const { Cell::new(0) };
}

fn tenant() -> u32 {
    TENANT.with(Cell::get)
}

/// Puts `tenant` in effect while its frame runs.
struct TenantHook {
    tenant: u32,
    saved: Option<u32>,
}

impl TenantHook {
    /// For a running frame: in effect from now on.
    fn now(tenant: u32) -> TenantHook {
        TenantHook {
            tenant,
            saved: Some(TENANT.with(|t| t.replace(tenant))),
        }
    }
}

impl ctx::Lifecycle for TenantHook {
    fn on_resume(&mut self) {
        assert!(self.saved.is_none(), "resumed twice");
        self.saved = Some(TENANT.with(|t| t.replace(self.tenant)));
    }
    fn on_yield(&mut self) {
        let saved = self.saved.take().expect("yielded twice");
        TENANT.with(|t| t.set(saved));
    }
}

impl Drop for TenantHook {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            TENANT.with(|t| t.set(saved));
        }
    }
}

/// The inheritor: a child gets the spawner's tenant, if there is one.
struct FollowTenant;

impl ctx::Inherit for FollowTenant {
    type Hook = TenantHook;

    fn child(&self, _: &ctx::Snapshot) -> Option<TenantHook> {
        let tenant = tenant();
        (tenant != 0).then_some(TenantHook {
            tenant,
            saved: None,
        })
    }
}

static FOLLOW_TENANT: FollowTenant = FollowTenant;

/// What a child saw: its tenant after each await, and the threads it ran on.
#[derive(Debug, Default)]
struct Seen {
    tenants: Vec<u32>,
    threads: HashSet<ThreadId>,
}

async fn child_work(steps: usize) -> Seen {
    let mut seen = Seen::default();
    for _ in 0..steps {
        seen.tenants.push(tenant());
        seen.threads.insert(std::thread::current().id());
        yield_once().await;
    }
    seen.tenants.push(tenant());
    seen
}

fn blocking_work() -> Seen {
    Seen {
        tenants: vec![tenant()],
        threads: HashSet::from([std::thread::current().id()]),
    }
}

/// One round: a root task with tenant `t` spawns through every path and
/// collects what each child saw, by path name.
async fn one_round(t: u32) -> Vec<(&'static str, Seen)> {
    let _tenant = ctx::enter(TenantHook::now(t));
    yield_once().await; // the setting holds across the root's own awaits
    assert_eq!(tenant(), t);
    let mut all = Vec::new();

    all.push(("spawn", ctx::spawn(child_work(8)).await.unwrap()));
    let grandchild = ctx::spawn(async {
        yield_once().await;
        ctx::spawn(child_work(4)).await.unwrap()
    });
    all.push(("grandchild", grandchild.await.unwrap()));
    all.push((
        "spawn_blocking",
        ctx::spawn_blocking(blocking_work).await.unwrap(),
    ));
    all.push(("thread", ctx::thread::spawn(blocking_work).join().unwrap()));
    let mut set = ctx::JoinSet::new();
    set.spawn(child_work(4));
    all.push(("JoinSet", set.join_next().await.unwrap().unwrap()));
    let tracker = ctx::TaskTracker::new();
    let tracked = tracker.spawn(child_work(4));
    tracker.close();
    all.push(("TaskTracker", tracked.await.unwrap()));
    all.push((
        "Handle::spawn",
        ctx::Handle::current().spawn(child_work(4)).await.unwrap(),
    ));
    all
}

#[test]
fn every_spawn_path_gives_its_child_the_spawners_setting() {
    ctx::register(&FOLLOW_TENANT);
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Rounds until a `ctx::spawn` child has moved between the two workers
    // while keeping its setting.
    for round in 1..=200u32 {
        let all = rt.block_on(rt.spawn(one_round(round))).unwrap();
        for (path, seen) in &all {
            assert!(
                seen.tenants.iter().all(|&t| t == round),
                "{path}: saw {:?}, expected {round} throughout",
                seen.tenants
            );
        }
        // Nothing is left in effect on the threads that ran children.
        assert_eq!(rt.block_on(rt.spawn(async { tenant() })).unwrap(), 0);
        if all.iter().any(|(_, s)| s.threads.len() > 1) {
            return;
        }
    }
    panic!("no child ever moved between the two workers in 200 rounds");
}

#[test]
fn a_local_set_child_and_a_runtime_spawn_inherit_too() {
    ctx::register(&FOLLOW_TENANT);
    let rt = ctx::Runtime::new().unwrap();
    let from_runtime = {
        let _outside = TenantHook::now(11); // a plain thread, no frame
        rt.spawn(child_work(2))
    };
    assert_eq!(tenant(), 0);
    assert_eq!(rt.block_on(from_runtime).unwrap().tenants, [11, 11, 11]);

    let local = ctx::LocalSet::new();
    let seen = local.block_on(&rt, async {
        let _tenant = ctx::enter(TenantHook::now(12));
        ctx::spawn_local(child_work(2)).await.unwrap()
    });
    assert_eq!(seen.tenants, [12, 12, 12]);
}

#[test]
fn the_inheritor_reads_the_thread_at_the_spawn_whoever_set_it() {
    ctx::register(&FOLLOW_TENANT);
    let rt = ctx::Runtime::new().unwrap();
    let seen = rt.block_on(async {
        let plain = ctx::spawn(child_work(2)).await.unwrap();
        // Set outside any hook (a plain write, as a library might do), it
        // is followed all the same: the inheritor reads the thread.
        TENANT.with(|t| t.set(21));
        let written = ctx::spawn(child_work(2));
        TENANT.with(|t| t.set(0));
        (plain, written.await.unwrap())
    });
    assert_eq!(seen.0.tenants, [0, 0, 0]);
    assert_eq!(seen.1.tenants, [21, 21, 21]);
}

/// Runtime-hook mode: a plain `tokio::spawn` (a library's own task) gets the
/// inherited hook too, registered in the task's frame.
#[cfg(tokio_unstable)]
#[test]
fn in_hook_mode_a_plain_tokio_spawn_inherits_too() {
    ctx::register(&FOLLOW_TENANT);
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .frame_every_task(true)
        .build()
        .unwrap();
    for round in 1..=200u32 {
        let seen = rt.block_on(async move {
            let _tenant = ctx::enter(TenantHook::now(round));
            let library_task = tokio::spawn(child_work(8));
            library_task.await.unwrap()
        });
        assert!(seen.tenants.iter().all(|&t| t == round), "{seen:?}");
        if seen.threads.len() > 1 {
            return;
        }
    }
    panic!("no plain task ever moved between the two workers in 200 rounds");
}
