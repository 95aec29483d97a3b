//! Invariant 5, zero cost where nothing is used: no heap allocation per
//! steady-state poll, even of a frame with a binding and a hook; capturing a
//! snapshot is O(1) and allocation-free whatever its size.

mod support;

use rt_ext::{self as ctx, Lifecycle};
use support::{thread_allocs, yield_once, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

static V: ctx::Variable<u64> = ctx::Variable::new("v");

struct Noop;
impl Lifecycle for Noop {
    fn on_yield(&mut self) {}
    fn on_resume(&mut self) {}
}

const POLLS: usize = 10_000;

/// Allocations made by this thread during `POLLS` suspensions.
async fn allocations_per_loop() -> u64 {
    yield_once().await; // warm up
    tokio::task::yield_now().await;
    let before = thread_allocs();
    for i in 0..POLLS {
        if i % 2 == 0 {
            yield_once().await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    thread_allocs() - before
}

#[test]
fn steady_state_polls_allocate_nothing() {
    // Current-thread runtime: every poll runs on this thread, whose
    // allocations are what is counted.
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    let (plain, framed, hooked) = rt.block_on(async {
        let plain = tokio::spawn(allocations_per_loop()).await.unwrap();
        let framed = ctx::spawn(allocations_per_loop()).await.unwrap();
        let hooked = ctx::spawn(async {
            let _v = V.set(1);
            let _h = ctx::enter(Noop);
            allocations_per_loop().await
        })
        .await
        .unwrap();
        (plain, framed, hooked)
    });
    eprintln!("allocations over {POLLS} polls: plain {plain}, framed {framed}, hooked {hooked}");
    assert_eq!(
        plain, 0,
        "the control (plain tokio task) allocates per poll"
    );
    assert_eq!(framed, 0, "a framed task allocates per poll");
    assert_eq!(
        hooked, 0,
        "a framed task with a binding and a hook allocates per poll"
    );
}

static MANY: [ctx::Variable<u64>; 256] = [const { ctx::Variable::new("many") }; 256];

#[test]
fn capture_and_restore_allocate_nothing_whatever_the_size() {
    let _bound: Vec<_> = MANY
        .iter()
        .enumerate()
        .map(|(i, v)| v.set(i as u64))
        .collect();
    let before = thread_allocs();
    let snaps: [ctx::Snapshot; 64] = std::array::from_fn(|_| ctx::Snapshot::capture());
    assert_eq!(thread_allocs(), before, "capture allocated");
    assert!(snaps.iter().all(|s| s.len() == 256 && s.ptr_eq(&snaps[0])));
    let seen = snaps[7].run(|| MANY[200].get());
    assert_eq!(seen, Some(200));
    assert_eq!(thread_allocs(), before, "run allocated");
}
