//! Invariant 2, no leak: bindings, hooks and frames are bounded by what is
//! live. Guards dropped out of order, on other threads, or after their frame
//! ended keep the depth and the live heap constant.
//!
//! One test function, so no other test thread allocates while the live heap
//! is measured.

mod support;

use std::sync::mpsc;

use rt_ext::{self as ctx, Lifecycle};
use support::{live_bytes, Counting};

#[global_allocator]
static ALLOC: Counting = Counting;

static A: ctx::Variable<u64> = ctx::Variable::new("a");
static B: ctx::Variable<String> = ctx::Variable::new("b");

struct Noop;
impl Lifecycle for Noop {
    fn on_yield(&mut self) {}
    fn on_resume(&mut self) {}
}

/// One round of bindings and hooks dropped out of order.
fn out_of_order(r: u64) {
    let a = A.set(r);
    let b = B.set(format!("round {r}"));
    let h1 = ctx::enter(Noop);
    let a2 = A.set(r + 1);
    let h2 = ctx::enter(Noop);
    assert_eq!(A.get(), Some(r + 1));
    drop(a); // the oldest first: a2 must stay
    assert_eq!(A.get(), Some(r + 1));
    drop(h1);
    drop(b);
    drop(h2);
    drop(a2);
}

/// Guards handed to another thread and dropped there, while their frame is
/// current here: the removals are deferred and applied on the next read.
fn dropped_elsewhere(
    r: u64,
    to_dropper: &mpsc::SyncSender<Vec<Box<dyn Send>>>,
    done: &mpsc::Receiver<()>,
) {
    let guards: Vec<Box<dyn Send>> = vec![
        Box::new(A.set(r)),
        Box::new(ctx::enter(Noop)),
        Box::new(B.set(String::from("elsewhere"))),
    ];
    to_dropper.send(guards).unwrap();
    done.recv().unwrap();
    assert_eq!(A.get(), None, "a deferred removal was not applied");
}

/// Guards that outlive their frame: dropping them later does nothing and
/// keeps nothing alive.
fn outliving_frame(r: u64) {
    let escaped = ctx::Snapshot::empty().run(|| (A.set(r), ctx::enter(Noop)));
    assert_eq!(A.get(), None);
    drop(escaped);
}

fn settle_then_measure() -> (isize, usize) {
    assert_eq!(A.get(), None);
    (live_bytes(), ctx::Snapshot::capture().len())
}

#[test]
fn guards_dropped_in_any_order_anywhere_keep_memory_constant() {
    const ROUNDS: u64 = 200_000;
    let (to_dropper, inbox) = mpsc::sync_channel::<Vec<Box<dyn Send>>>(1);
    let (done_tx, done) = mpsc::sync_channel::<()>(1);
    let dropper = std::thread::spawn(move || {
        for guards in inbox {
            drop(guards);
            done_tx.send(()).unwrap();
        }
    });

    let rt = ctx::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        // Warm up: the frame's lazily allocated state, thread-locals, the
        // channel's buffers.
        for r in 0..1_000 {
            out_of_order(r);
            dropped_elsewhere(r, &to_dropper, &done);
            outliving_frame(r);
        }
        let before = settle_then_measure();
        for r in 0..ROUNDS {
            out_of_order(r);
        }
        assert_eq!(settle_then_measure(), before, "out-of-order drops leaked");
        for r in 0..ROUNDS / 10 {
            dropped_elsewhere(r, &to_dropper, &done);
        }
        assert_eq!(settle_then_measure(), before, "cross-thread drops leaked");
        for r in 0..ROUNDS / 10 {
            outliving_frame(r);
        }
        assert_eq!(settle_then_measure(), before, "late drops leaked");
    });
    drop(to_dropper);
    dropper.join().unwrap();
}
