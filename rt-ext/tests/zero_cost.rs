//! Invariant 5, zero cost where nothing is used: no heap allocation per
//! steady-state poll, even of a frame with a binding and a hook; a `set` +
//! drop of a small value in a frame that has bound before allocates
//! nothing; capturing a snapshot is O(1) and allocation-free whatever its
//! size, once the frame's mapping is made (the first capture after its
//! bindings changed makes it, O(variables)).

mod support;

use rt_ext::{self as ctx, Lifecycle};
use support::{thread_allocs, yield_once, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

static V: ctx::Variable<u64> = ctx::Variable::new("v");
static W: ctx::Variable<u64> = ctx::Variable::new("w");

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
    // The first capture after the bindings changed makes the frame's
    // mapping; the frame keeps it until they change again.
    let first = ctx::Snapshot::capture();
    let before = thread_allocs();
    let snaps: [ctx::Snapshot; 64] = std::array::from_fn(|_| ctx::Snapshot::capture());
    assert_eq!(thread_allocs(), before, "capture allocated");
    assert!(snaps.iter().all(|s| s.len() == 256 && s.ptr_eq(&first)));
    let seen = snaps[7].run(|| MANY[200].get());
    assert_eq!(seen, Some(200));
    assert_eq!(thread_allocs(), before, "run allocated");
}

/// Allocations made by this thread while `f` runs.
fn allocations_of(f: impl FnOnce()) -> u64 {
    let before = thread_allocs();
    f();
    thread_allocs() - before
}

#[test]
fn set_and_drop_in_a_frame_that_has_bound_before_allocate_nothing() {
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    let (alone, beside, out_of_order, after_capture) = rt.block_on(async {
        ctx::spawn(async {
            // The frame's binding storage, made by its first binding.
            drop(V.set(0));
            let alone = allocations_of(|| {
                for i in 0..1_000 {
                    drop(V.set(i));
                }
            });
            let beside = allocations_of(|| {
                let _w = W.set(1);
                for i in 0..1_000 {
                    drop(V.set(i));
                }
            });
            let out_of_order = allocations_of(|| {
                for i in 0..1_000 {
                    let a = V.set(i);
                    let b = W.set(i);
                    drop(a);
                    drop(b);
                }
            });
            // Once a snapshot took the frame's mapping, a change drops it
            // (and its values' shares) without allocating.
            let _taken = W.sync_scope(1, ctx::Snapshot::capture);
            let after_capture = allocations_of(|| drop(V.set(1)));
            yield_once().await;
            (alone, beside, out_of_order, after_capture)
        })
        .await
        .unwrap()
    });
    assert_eq!(alone, 0, "set + drop allocated");
    assert_eq!(beside, 0, "set + drop beside another binding allocated");
    assert_eq!(out_of_order, 0, "out-of-order drops allocated");
    assert_eq!(after_capture, 0, "set + drop after a capture allocated");
}

#[test]
fn a_small_hook_entered_and_dropped_allocates_nothing() {
    /// Eight words, what a hook holding a `tracing::Span` takes.
    struct Small([u64; 8]);
    impl Lifecycle for Small {
        fn on_yield(&mut self) {
            self.0[0] += 1;
        }
        fn on_resume(&mut self) {}
    }
    /// Larger than a hook's room in its slot: boxed.
    struct Large([u64; 9]);
    impl Lifecycle for Large {
        fn on_yield(&mut self) {
            self.0[0] += 1;
        }
        fn on_resume(&mut self) {}
    }
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    let (small, large, held) = rt.block_on(async {
        ctx::spawn(async {
            // The frame's hook storage, made by its first hook.
            drop(ctx::enter(Small([0; 8])));
            let small = allocations_of(|| {
                for _ in 0..1_000 {
                    drop(ctx::enter(Small([0; 8])));
                }
            });
            let large = allocations_of(|| drop(ctx::enter(Large([0; 9]))));
            // Held across awaits: the hook is called where it is stored.
            let _kept = ctx::enter(Small([0; 8]));
            (small, large, allocations_per_loop().await)
        })
        .await
        .unwrap()
    });
    assert_eq!(small, 0, "a small hook entered and dropped allocated");
    assert_eq!(large, 1, "a large hook is boxed, once");
    assert_eq!(held, 0, "polls of a frame with a small hook allocated");
}
