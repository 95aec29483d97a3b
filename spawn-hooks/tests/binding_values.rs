//! The values of `set` bindings: whatever their size and drop glue, each is
//! read as the same object wherever it is read (in its frame, inside a
//! `with` callback, in a snapshot taken anywhere), dropped exactly once, on
//! the thread where its binding goes (or its frame ends), seeing the context
//! as it is once its binding is gone.
//!
//! (A small value is kept in its binding until a reader or a snapshot needs
//! it shared: these tests pin that nothing of that shows.)

mod support;

use std::pin::pin;
use std::ptr;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use futures::executor::block_on;
use spawn_hooks::{Binding, FutureExt, Snapshot, Variable};
use support::{poll_once, yield_once};

/// What a [`Noted`] saw when it was dropped: its tag, the thread, and the
/// value of [`OTHER`] there.
type Drops = Arc<Mutex<Vec<(u8, ThreadId, Option<u32>)>>>;

static OTHER: Variable<u32> = Variable::new("other");

/// A small value (16 bytes) with a destructor that notes where it ran.
struct Noted {
    drops: Drops,
    tag: u8,
}

impl Noted {
    fn new(drops: &Drops, tag: u8) -> Noted {
        Noted {
            drops: drops.clone(),
            tag,
        }
    }
}

impl Drop for Noted {
    fn drop(&mut self) {
        let other = OTHER.get();
        let me = thread::current().id();
        self.drops.lock().unwrap().push((self.tag, me, other));
    }
}

fn tags(drops: &Drops) -> Vec<u8> {
    drops.lock().unwrap().iter().map(|d| d.0).collect()
}

#[test]
fn values_of_every_size_read_back_and_snapshot_alike() {
    static BYTE: Variable<u8> = Variable::new("byte");
    static WORD: Variable<u64> = Variable::new("word");
    static PAIR: Variable<(u64, u64)> = Variable::new("pair");
    static TRIPLE: Variable<[u64; 3]> = Variable::new("triple");
    static WIDE: Variable<u128> = Variable::new("wide");
    static TEXT: Variable<String> = Variable::new("text");
    static STR: Variable<&str> = Variable::new("str");
    static UNIT: Variable<()> = Variable::new("unit");

    Snapshot::empty().run(|| {
        let _b = BYTE.set(1);
        let _w = WORD.set(2);
        let _p = PAIR.set((3, 4));
        let _t = TRIPLE.set([5, 6, 7]);
        let _x = WIDE.set(8);
        let _s = TEXT.set("nine".into());
        let _r = STR.set("ten");
        let _u = UNIT.set(());
        let read = || {
            (
                BYTE.get(),
                WORD.get(),
                PAIR.get(),
                TRIPLE.get(),
                WIDE.get(),
                TEXT.get(),
                STR.get(),
                UNIT.get(),
            )
        };
        let expected = (
            Some(1),
            Some(2),
            Some((3, 4)),
            Some([5, 6, 7]),
            Some(8),
            Some("nine".to_string()),
            Some("ten"),
            Some(()),
        );
        let snap = Snapshot::capture();
        assert_eq!(read(), expected);
        assert_eq!(snap.run(read), expected);
        assert_eq!(snap.len(), 8);
        assert_eq!(snap.get(&PAIR), Some((3, 4)));
    });
}

#[test]
fn a_value_is_one_object_in_its_frame_in_with_and_in_snapshots() {
    static V: Variable<(u64, u64)> = Variable::new("v");
    static W: Variable<u64> = Variable::new("w");
    fn addr<T>(v: Option<&T>) -> Option<usize> {
        v.map(|v| ptr::from_ref(v) as usize)
    }

    Snapshot::empty().run(|| {
        let _v = V.set((1, 2));
        let _w = W.set(3);
        // Taken inside a `with` callback of the same frame, while the value
        // is lent, and with another binding read inside it.
        let (lent, inner, snap) = V.with(|v| {
            let inner = W.with(addr);
            (addr(v), inner, Snapshot::capture())
        });
        assert!(lent.is_some() && inner.is_some());
        assert_eq!(V.with(addr), lent);
        assert_eq!(W.with(addr), inner);
        assert_eq!(snap.run(|| V.with(addr)), lent);
        assert_eq!(snap.run(|| W.with(addr)), inner);
        assert_eq!(Snapshot::capture().run(|| V.with(addr)), lent);
    });
}

#[test]
fn a_value_outlives_its_binding_in_the_snapshots_that_took_it() {
    static V: Variable<Noted> = Variable::new("v");
    let drops = Drops::default();
    let snap = Snapshot::empty().run(|| {
        let b = V.set(Noted::new(&drops, 1));
        let snap = Snapshot::capture();
        drop(b);
        assert!(V.with(|v| v.is_none()));
        assert_eq!(tags(&drops), [] as [u8; 0], "the snapshot holds it");
        snap
    });
    assert_eq!(snap.run(|| V.with(|v| v.map(|v| v.tag))), Some(1));
    drop(snap);
    assert_eq!(tags(&drops), [1]);
}

#[test]
fn a_small_value_is_dropped_once_where_its_binding_goes() {
    static V: Variable<Noted> = Variable::new("v");
    let drops = Drops::default();
    let here = thread::current().id();

    // In place, out of order: each value goes with its own binding, and
    // sees the context without it.
    Snapshot::empty().run(|| {
        let _o = OTHER.set(7);
        let a = V.set(Noted::new(&drops, 1));
        let b = V.set(Noted::new(&drops, 2));
        let o = OTHER.set(8);
        drop(a);
        assert_eq!(V.with(|v| v.map(|v| v.tag)), Some(2));
        drop(o);
        drop(b);
        assert!(V.with(|v| v.is_none()));
    });
    assert_eq!(
        *drops.lock().unwrap(),
        [(1, here, Some(8)), (2, here, Some(7))]
    );
    drops.lock().unwrap().clear();

    // Dropped on another thread while its frame is suspended: the removal
    // waits for the frame, and the value is dropped there, once.
    let handoff: Arc<Mutex<Option<Binding>>> = Arc::default();
    let h = handoff.clone();
    let d = drops.clone();
    let mut task = pin!(async move {
        let _o = OTHER.set(9);
        *h.lock().unwrap() = Some(V.set(Noted::new(&d, 3)));
        yield_once().await;
        assert!(V.with(|v| v.is_none()));
    }
    .frame());
    assert!(poll_once(task.as_mut()).is_pending());
    let binding = handoff.lock().unwrap().take().unwrap();
    thread::spawn(move || drop(binding)).join().unwrap();
    assert_eq!(tags(&drops), [] as [u8; 0]);
    assert!(poll_once(task.as_mut()).is_ready());
    assert_eq!(*drops.lock().unwrap(), [(3, here, Some(9))]);
    drops.lock().unwrap().clear();

    // Left in the frame when it ends: dropped newest first, each seeing the
    // frame without the bindings made after it.
    block_on(
        async {
            std::mem::forget(V.set(Noted::new(&drops, 4)));
            std::mem::forget(OTHER.set(10));
            std::mem::forget(V.set(Noted::new(&drops, 5)));
            std::mem::forget(OTHER.set(11));
            yield_once().await;
        }
        .frame(),
    );
    assert_eq!(
        *drops.lock().unwrap(),
        [(5, here, Some(10)), (4, here, None)]
    );
}

#[test]
fn a_binding_read_then_dropped_drops_its_value_once() {
    static V: Variable<Noted> = Variable::new("v");
    let drops = Drops::default();
    Snapshot::empty().run(|| {
        for tag in 0..3 {
            let b = V.set(Noted::new(&drops, tag));
            assert_eq!(V.with(|v| v.map(|v| v.tag)), Some(tag));
            if tag == 1 {
                let _kept = Snapshot::capture();
            }
            drop(b);
        }
    });
    assert_eq!(tags(&drops), [0, 1, 2]);
}
