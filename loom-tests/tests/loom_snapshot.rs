//! Snapshots captured on one thread, cloned and used on another, while the
//! frame they came from keeps binding and unbinding.
//!
//! Thread A runs a frame (`X` = 1) that captures `s1` and hands it to thread
//! B, then binds `Y`, captures `s2` and hands it over too, binds `X` again,
//! drops the `Y` guard out of order and captures `s3`. Meanwhile B clones
//! the snapshots, reads them, runs code in them (binding there too), runs a
//! future in one, and captures a snapshot inside that it sends back to A.
//!
//! Checked: a snapshot sees exactly what was bound when it was captured,
//! never a later binding or unbinding of its frame (wherever and whenever it
//! is read, cloned or dropped); bindings made inside `Snapshot::run` stay
//! there; an out-of-order unbinding keeps the later binding's value; both
//! threads end in their own frames; the mappings' reference counts (loom's
//! `Arc`) are balanced.

#![cfg(spawn_hooks_loom)]

use loom_tests::{model, spawn, Handoff};
use spawn_hooks::{Snapshot, Variable};

static X: Variable<u32> = Variable::new("x");
static Y: Variable<u32> = Variable::new("y");

fn both() -> (Option<u32>, Option<u32>) {
    (X.get(), Y.get())
}

fn seen(s: &Snapshot) -> (Option<u32>, Option<u32>) {
    (s.get(&X), s.get(&Y))
}

#[test]
fn loom_snapshot_across_threads() {
    model("loom_snapshot_across_threads", || {
        let to_b = Handoff::<Snapshot>::new();
        let to_b2 = Handoff::<Snapshot>::new();
        let to_a = Handoff::<Snapshot>::new();

        let a = spawn("A", {
            let (to_b, to_b2, to_a) = (to_b.clone(), to_b2.clone(), to_a.clone());
            move || {
                X.sync_scope(1, || {
                    let s1 = Snapshot::capture();
                    to_b.put(s1.clone());
                    let y = Y.set(2);
                    let s2 = Snapshot::capture();
                    to_b2.put(s2.clone());
                    let x3 = X.set(3);
                    drop(y); // out of order: X stays 3
                    assert_eq!(both(), (Some(3), None));
                    let s3 = Snapshot::capture();
                    drop(x3);
                    assert_eq!(both(), (Some(1), None));
                    assert_eq!(seen(&s1), (Some(1), None));
                    assert_eq!(seen(&s2), (Some(1), Some(2)));
                    assert_eq!(seen(&s3), (Some(3), None));
                    let from_b = to_a.take();
                    assert_eq!(seen(&from_b), (Some(1), Some(5)));
                    assert_eq!(from_b.run(both), (Some(1), Some(5)));
                });
                assert_eq!(both(), (None, None));
            }
        });
        let b = spawn("B", move || {
            let s1 = to_b.take();
            let copy = s1.clone();
            assert_eq!(seen(&copy), (Some(1), None));
            let inner = copy.run(|| {
                assert_eq!(both(), (Some(1), None));
                let _y = Y.set(5);
                Snapshot::capture()
            });
            assert_eq!(both(), (None, None));
            to_a.put(inner);
            drop(copy);
            let s2 = to_b2.take();
            let fut = s2.scope(async { both() });
            assert_eq!(loom::future::block_on(fut), (Some(1), Some(2)));
            assert_eq!(seen(&s1), (Some(1), None));
            assert_eq!(s1.run(both), (Some(1), None));
            assert_eq!(both(), (None, None));
        });
        a.join().unwrap();
        b.join().unwrap();
    });
}
