//! The TC39 AsyncContext semantics, on the core alone (no runtime): scopes,
//! snapshots, `set` guards and frames behave as `AsyncContext.Variable.run`,
//! `AsyncContext.Snapshot` and `using withValue` do.
//!
//! Futures are driven by `futures::executor::block_on` or polled by hand with
//! a no-op waker, and suspend through a hand-made yield, so every interleaving
//! below is fixed by the test, not by a scheduler.

mod support;

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;

use futures::executor::block_on;
use spawn_hooks::{Binding, FutureExt, Snapshot, Variable};
use support::{poll_once, yield_once};

// ===== helpers =====

/// The message of a caught panic.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        String::from("<non-string panic payload>")
    }
}

// ===== Variable::sync_scope =====

#[test]
fn nested_sync_scope_of_one_variable_shadows_and_restores() {
    static A: Variable<u32> = Variable::new("a");

    assert_eq!(A.get(), None);
    let seen = A.sync_scope(1, || {
        let outer_before = A.get();
        let inner = A.sync_scope(2, || {
            let deepest = A.sync_scope(3, || A.get());
            (A.get(), deepest)
        });
        (outer_before, inner, A.get())
    });
    assert_eq!(seen, (Some(1), (Some(2), Some(3)), Some(1)));
    assert_eq!(A.get(), None);
}

#[test]
fn nested_sync_scope_of_two_variables_sees_both_and_restores_each() {
    static A: Variable<&str> = Variable::new("a");
    static B: Variable<&str> = Variable::new("b");

    let seen = A.sync_scope("a1", || {
        let outer = (A.get(), B.get());
        let inner = B.sync_scope("b1", || {
            let both = (A.get(), B.get());
            // Rebinding A inside B's scope keeps B.
            let rebound = A.sync_scope("a2", || (A.get(), B.get()));
            (both, rebound, (A.get(), B.get()))
        });
        (outer, inner, (A.get(), B.get()))
    });
    assert_eq!(
        seen,
        (
            (Some("a1"), None),
            (
                (Some("a1"), Some("b1")),
                (Some("a2"), Some("b1")),
                (Some("a1"), Some("b1")),
            ),
            (Some("a1"), None),
        )
    );
    assert_eq!((A.get(), B.get()), (None, None));
}

#[test]
fn unrelated_entries_keep_their_values() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");
    static C: Variable<String> = Variable::new("c");

    let _c = C.set("kept".to_string());
    let _b = B.set(20);
    A.sync_scope(1, || {
        assert_eq!(B.get(), Some(20));
        assert_eq!(C.get().as_deref(), Some("kept"));
        let _b2 = B.set(21);
        A.sync_scope(2, || {
            assert_eq!((A.get(), B.get()), (Some(2), Some(21)));
            assert_eq!(C.get().as_deref(), Some("kept"));
        });
        assert_eq!((A.get(), B.get()), (Some(1), Some(21)));
    });
    assert_eq!((A.get(), B.get()), (None, Some(20)));
    assert_eq!(C.get().as_deref(), Some("kept"));
}

#[test]
fn panic_inside_an_inner_scope_restores_the_outer_value() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");

    A.sync_scope(1, || {
        let caught = panic::catch_unwind(|| {
            A.sync_scope(2, || {
                // A guard made inside the doomed scope must go with it.
                let _b = B.set(5);
                assert_eq!((A.get(), B.get()), (Some(2), Some(5)));
                panic!("inner scope fails");
            })
        });
        assert_eq!(message(&*caught.unwrap_err()), "inner scope fails");
        assert_eq!((A.get(), B.get()), (Some(1), None));

        // The same through a snapshot and through a framed future.
        let snap = A.sync_scope(3, Snapshot::capture);
        let caught = panic::catch_unwind(AssertUnwindSafe(|| snap.run(|| panic!("in run"))));
        assert!(caught.is_err());
        assert_eq!(A.get(), Some(1));

        let caught = panic::catch_unwind(|| {
            block_on(A.scope(4, async {
                yield_once().await;
                panic!("in scope future")
            }))
        });
        assert!(caught.is_err());
        assert_eq!((A.get(), B.get()), (Some(1), None));
    });
    assert_eq!(A.get(), None);
}

// ===== Snapshot =====

#[test]
fn snapshot_run_sees_capture_time_values_unsets_the_rest_and_restores() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");

    let a = A.set(1);
    let snap = Snapshot::capture();
    drop(a);
    let _a = A.set(2);
    let _b = B.set(3); // absent at capture

    let inside = snap.run(|| {
        let seen = (A.get(), B.get());
        // Bindings inside `run` stay inside it.
        let _b = B.set(30);
        let nested = A.sync_scope(10, || (A.get(), B.get()));
        (seen, nested, (A.get(), B.get()))
    });
    assert_eq!(
        inside,
        ((Some(1), None), (Some(10), Some(30)), (Some(1), Some(30)))
    );
    assert_eq!((A.get(), B.get()), (Some(2), Some(3)));

    // Control: without the snapshot the current values are visible.
    assert_eq!((A.get(), B.get()), (Some(2), Some(3)));
}

#[test]
fn wrap_captures_at_wrap_time_not_at_call_time() {
    static A: Variable<u32> = Variable::new("a");

    let read = |x: u32| (x, A.get());
    let wrapped = A.sync_scope(1, || Snapshot::capture().wrap(read));
    let plain = read;

    let (w, p) = A.sync_scope(2, || (wrapped(7), plain(8)));
    assert_eq!(w, (7, Some(1)));
    assert_eq!(p, (8, Some(2))); // control: call-time value without `wrap`
    assert_eq!(A.get(), None);

    // Called where the variable is unset, or on another thread: still 1.
    let wrapped = A.sync_scope(1, || Snapshot::capture().wrap(read));
    let on_thread = thread::spawn(move || (wrapped(9), A.get())).join().unwrap();
    assert_eq!(on_thread, ((9, Some(1)), None));

    // A wrapper made where the variable is unset hides a call-time value.
    let wrapped = Snapshot::capture().wrap(read);
    assert_eq!(A.sync_scope(3, || wrapped(1)), (1, None));
}

#[test]
fn captured_snapshot_never_changes_after_later_bindings_or_their_drop() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");

    let a1 = A.set(1);
    let snap = Snapshot::capture();
    let copy = snap.clone();
    let check = |s: &Snapshot| {
        assert_eq!((s.get(&A), s.get(&B), s.len()), (Some(1), None, 1));
        assert_eq!(s.run(|| (A.get(), B.get())), (Some(1), None));
    };
    check(&snap);

    let a2 = A.set(2);
    let b = B.set(3);
    assert_eq!((A.get(), B.get()), (Some(2), Some(3)));
    check(&snap);

    // Dropping the captured binding itself does not reach the snapshot.
    drop(a1);
    drop(a2);
    drop(b);
    assert_eq!((A.get(), B.get()), (None, None));
    check(&snap);
    check(&copy);
    assert!(snap.ptr_eq(&copy));

    // Nor does ending the frame the snapshot was taken in.
    let from_scope = A.sync_scope(4, || {
        let _b = B.set(5);
        Snapshot::capture()
    });
    assert_eq!(
        (from_scope.get(&A), from_scope.get(&B), from_scope.len()),
        (Some(4), Some(5), 2)
    );
    assert_eq!(from_scope.run(|| (A.get(), B.get())), (Some(4), Some(5)));
}

#[test]
fn snapshot_empty_get_and_len() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");
    static MANY: [Variable<usize>; 40] = [const { Variable::new("many") }; 40];

    let empty = Snapshot::empty();
    assert_eq!((empty.len(), empty.is_empty()), (0, true));
    assert_eq!((empty.get(&A), empty.get(&B)), (None, None));
    assert!(Snapshot::default().is_empty());

    let _a = A.set(1);
    let _b = B.set(2);
    assert_eq!(Snapshot::empty().run(|| (A.get(), B.get())), (None, None));
    let snap = Snapshot::capture();
    assert_eq!((snap.len(), snap.is_empty()), (2, false));
    assert_eq!((snap.get(&A), snap.get(&B)), (Some(1), Some(2)));

    // Rebinding a variable replaces its entry: still one entry per variable.
    let _a2 = A.set(10);
    let shadowed = Snapshot::capture();
    assert_eq!((shadowed.len(), shadowed.get(&A)), (2, Some(10)));

    // Many variables (beyond any small-map fast path): each keeps its value.
    let guards: Vec<Binding> = MANY.iter().enumerate().map(|(i, v)| v.set(i)).collect();
    let big = Snapshot::capture();
    assert_eq!(big.len(), 42);
    for (i, v) in MANY.iter().enumerate() {
        assert_eq!((big.get(v), v.get()), (Some(i), Some(i)));
    }
    drop(guards);
    assert_eq!(Snapshot::capture().len(), 2);
    assert_eq!(big.get(&MANY[39]), Some(39));
}

// ===== Variable::scope and frames =====

#[test]
fn variable_scope_holds_across_awaits_and_never_leaks_between_polls() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");

    let _caller = A.set(0);
    let fut = A.scope(1, async {
        let first = A.get();
        yield_once().await;
        let _b = B.set(2);
        let second = (A.get(), B.get());
        yield_once().await;
        (first, second, (A.get(), B.get()))
    });
    let mut fut = pin!(fut);

    assert!(poll_once(fut.as_mut()).is_pending());
    assert_eq!((A.get(), B.get()), (Some(0), None));
    // Bindings the caller makes between polls do not disturb the scope.
    let _caller_b = B.set(99);
    assert!(poll_once(fut.as_mut()).is_pending());
    assert_eq!((A.get(), B.get()), (Some(0), Some(99)));
    let Poll::Ready(seen) = poll_once(fut.as_mut()) else {
        panic!("the scope should finish on the third poll");
    };
    assert_eq!(seen, (Some(1), (Some(1), Some(2)), (Some(1), Some(2))));
    assert_eq!((A.get(), B.get()), (Some(0), Some(99)));
}

#[test]
fn unframed_async_block_is_the_control_for_scope_isolation() {
    static A: Variable<u32> = Variable::new("a");

    // Without a frame, a guard held across an await is the caller's binding:
    // the isolation above is the frame's doing, and its absence is visible.
    let fut = async {
        let _a = A.set(1);
        yield_once().await;
    };
    let mut fut = pin!(fut);
    assert!(poll_once(fut.as_mut()).is_pending());
    assert_eq!(A.get(), Some(1));
    assert!(poll_once(fut.as_mut()).is_ready());
    assert_eq!(A.get(), None);
}

#[test]
fn frame_starts_from_its_creation_context_then_keeps_its_own_mapping() {
    static A: Variable<u32> = Variable::new("a");

    let body = || async {
        let first = A.get();
        yield_once().await;
        let second = A.get();
        yield_once().await;
        (first, second, A.get())
    };

    // Made while A is 1; first polled while A is 2 (TC39: a generator runs
    // in the context of its creation at every resumption).
    let framed = A.sync_scope(1, || body().frame());
    let mut framed = pin!(framed);
    let two = A.set(2);
    assert!(poll_once(framed.as_mut()).is_pending());
    let three = A.set(3); // after the first poll: not seen by the frame
    assert!(poll_once(framed.as_mut()).is_pending());
    drop(three);
    drop(two);
    assert_eq!(A.get(), None);
    assert_eq!(
        poll_once(framed.as_mut()),
        Poll::Ready((Some(1), Some(1), Some(1)))
    );

    // Control: the same body unframed reads the poller's value at each poll.
    let plain = A.sync_scope(1, body);
    let mut plain = pin!(plain);
    let two = A.set(2);
    assert!(poll_once(plain.as_mut()).is_pending());
    let three = A.set(3);
    assert!(poll_once(plain.as_mut()).is_pending());
    drop(three);
    drop(two);
    assert_eq!(
        poll_once(plain.as_mut()),
        Poll::Ready((Some(2), Some(3), None))
    );
}

#[test]
fn variable_scope_and_snapshot_scope_start_points() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");

    // `Variable::scope` adds its binding to the context of its creation (B
    // bound after creation, before the first poll, is not seen).
    let scoped = B.sync_scope(5, || {
        A.scope(1, async {
            yield_once().await;
            (A.get(), B.get())
        })
    });
    let mut scoped = pin!(scoped);
    let b = B.set(2);
    assert!(poll_once(scoped.as_mut()).is_pending());
    drop(b);
    let _b = B.set(3);
    assert_eq!(poll_once(scoped.as_mut()), Poll::Ready((Some(1), Some(5))));

    // `Snapshot::scope` starts from the snapshot, whatever the poller has.
    let snap = A.sync_scope(7, Snapshot::capture); // B is 3 here
    let from_snap = A.sync_scope(8, || {
        B.sync_scope(4, || {
            block_on(snap.scope(async {
                yield_once().await;
                (A.get(), B.get())
            }))
        })
    });
    assert_eq!(from_snap, (Some(7), Some(3)));
    let from_empty = A.sync_scope(8, || block_on(Snapshot::empty().scope(async { A.get() })));
    assert_eq!(from_empty, None);
}

// ===== the creation context (test262 and the proposal's tests) =====

#[test]
fn generators_js_a_framed_future_resumes_in_its_creation_context() {
    // test262 built-ins/AsyncContext/context-propagation/generators.js
    static V: Variable<&str> = Variable::new("v");
    let mut g = V.sync_scope("init", || Box::pin(async { V.get() }.frame()));
    let seen = V.sync_scope("first iter", || poll_once(g.as_mut()));
    assert_eq!(seen, Poll::Ready(Some("init")));
}

#[test]
fn variable_scope_takes_the_other_variables_from_its_creation() {
    // A.run("x", () => B.run("y", async () => [A.get(), B.get()]))
    static A: Variable<&str> = Variable::new("a");
    static B: Variable<&str> = Variable::new("b");
    let fut = A.sync_scope("x", || B.scope("y", async { (A.get(), B.get()) }));
    assert_eq!(block_on(fut), (Some("x"), Some("y")));
}

#[test]
fn wrap_of_a_closure_returning_a_framed_future_runs_it_in_the_snapshot() {
    static V: Variable<&str> = Variable::new("v");
    let w = V.sync_scope("bar", || {
        Snapshot::capture().wrap(|()| async { V.get() }.frame())
    });
    assert_eq!(V.sync_scope("foo", || block_on(w(()))), Some("bar"));

    // Unframed, the future made inside the wrapped call is polled outside
    // the snapshot's frame: it sees the poller's context.
    let w = V.sync_scope("bar", || Snapshot::capture().wrap(|()| async { V.get() }));
    assert_eq!(V.sync_scope("foo", || block_on(w(()))), Some("foo"));
}

#[test]
fn a_wrapped_fn_can_be_called_many_times_each_call_in_its_own_frame() {
    // AsyncContext.Snapshot.wrap: the wrapped function is called any number
    // of times, always in the captured context.
    static V: Variable<u32> = Variable::new("v");
    let seen = Mutex::new(Vec::new());
    let f = V.sync_scope(1, || {
        Snapshot::capture().wrap_fn(|n: u32| {
            seen.lock().unwrap().push(V.get());
            let _b = V.set(n); // never seen by the next call
        })
    });
    f(10);
    V.sync_scope(2, || f(20));
    f(30);
    assert_eq!(*seen.lock().unwrap(), [Some(1), Some(1), Some(1)]);

    let mut total = 0;
    let mut g = V.sync_scope(5, || {
        Snapshot::capture().wrap_mut(|n: u32| {
            total += n + V.get().unwrap();
            total
        })
    });
    assert_eq!(g(1), 6);
    assert_eq!(V.sync_scope(9, || g(1)), 12);
}

/// A hand-written async generator: its items are produced by a framed
/// future made at the generator's creation, one item per resumption.
struct Generator<T> {
    producer: Pin<Box<dyn Future<Output = ()>>>,
    slot: Arc<Mutex<Option<T>>>,
}

impl<T: 'static> Generator<T> {
    /// Runs `body` (given a way to yield items) in a frame made now.
    fn new<F, Fut>(body: F) -> Generator<T>
    where
        F: FnOnce(Yielder<T>) -> Fut,
        Fut: Future<Output = ()> + 'static,
    {
        let slot = Arc::new(Mutex::new(None));
        let producer = Box::pin(body(Yielder(slot.clone())).frame());
        Generator { producer, slot }
    }
}

struct Yielder<T>(Arc<Mutex<Option<T>>>);

impl<T> Yielder<T> {
    async fn give(&self, item: T) {
        *self.0.lock().unwrap() = Some(item);
        yield_once().await;
    }
}

impl<T> futures::Stream for Generator<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let done = self.producer.as_mut().poll(cx).is_ready();
        match self.slot.lock().unwrap().take() {
            Some(item) => Poll::Ready(Some(item)),
            None if done => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

#[test]
fn async_generators_produce_every_item_in_their_creation_context() {
    use futures::StreamExt;
    static V: Variable<&str> = Variable::new("v");

    let mut g = V.sync_scope("init", || {
        Generator::new(|y| async move {
            y.give(V.get()).await;
            let _b = V.set("inside"); // the generator's own, across items
            y.give(V.get()).await;
            y.give(V.get()).await;
        })
    });
    let items = block_on(async {
        let first = V.scope("first", g.next()).await;
        let second = V.scope("second", g.next()).await;
        let third = g.next().await;
        let end = g.next().await;
        [first, second, third, end]
    });
    assert_eq!(
        items,
        [
            Some(Some("init")),
            Some(Some("inside")),
            Some(Some("inside")),
            None
        ]
    );

    // With `futures::stream`: each item's future is made by a wrapped
    // closure, framed, so it runs in the context captured at creation.
    let mut n = 0;
    let make = V.sync_scope("captured", || {
        Snapshot::capture().wrap_mut(move |()| {
            n += 1;
            let n = n;
            async move { (n < 3).then(|| (n, V.get())) }.frame()
        })
    });
    let s = futures::stream::unfold(make, |mut make| async move {
        make(()).await.map(|item| (item, make))
    });
    let items = V.sync_scope("poller", || block_on(s.collect::<Vec<_>>()));
    assert_eq!(items, [(1, Some("captured")), (2, Some("captured"))]);
}

// ===== set guards =====

#[test]
fn set_guards_dropped_out_of_order_remove_only_their_own_binding() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");

    let a1 = A.set(1);
    let b = B.set(2);
    let a2 = A.set(3);
    assert_eq!((A.get(), B.get()), (Some(3), Some(2)));

    drop(a1); // the shadowed outer one: the inner value stays
    assert_eq!((A.get(), B.get()), (Some(3), Some(2)));
    drop(b); // the middle one: A keeps 3
    assert_eq!((A.get(), B.get()), (Some(3), None));
    drop(a2); // not back to 1: that binding is gone
    assert_eq!((A.get(), B.get()), (None, None));

    // Outer value comes back when the inner one goes first (the usual order).
    let a1 = A.set(1);
    let a2 = A.set(2);
    drop(a2);
    assert_eq!(A.get(), Some(1));
    drop(a1);
    assert_eq!(A.get(), None);
}

#[test]
fn moved_set_guard_keeps_its_binding_until_dropped() {
    static A: Variable<u32> = Variable::new("a");

    fn make() -> Binding {
        A.set(1)
    }
    let held = vec![make()];
    assert_eq!(A.get(), Some(1));
    let boxed = Box::new(held);
    assert_eq!(A.get(), Some(1));
    drop(boxed);
    assert_eq!(A.get(), None);

    // Moved into and out of a framed future, then dropped by the caller: the
    // binding belongs to the frame it was made in, never the caller's.
    let slot: Arc<Mutex<Option<Binding>>> = Arc::default();
    let inner = slot.clone();
    let seen = block_on(
        async move {
            *inner.lock().unwrap() = Some(A.set(5));
            yield_once().await;
            A.get()
        }
        .frame(),
    );
    assert_eq!(seen, Some(5));
    assert_eq!(A.get(), None);
    drop(slot.lock().unwrap().take()); // its frame has ended: a no-op
    assert_eq!(A.get(), None);
}

#[test]
fn set_guard_dropped_on_another_thread_is_seen_on_the_next_read() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");

    // In this thread's base frame.
    let b = B.set(1);
    let a = A.set(2);
    thread::spawn(move || drop(a)).join().unwrap();
    assert_eq!((A.get(), B.get()), (None, Some(1)));
    drop(b);

    // In a suspended frame: the removal is applied when it next runs.
    let slot: Arc<Mutex<Option<Binding>>> = Arc::default();
    let inner = slot.clone();
    let fut = async move {
        let _b = B.set(10);
        let a = A.set(20);
        *inner.lock().unwrap() = Some(a);
        let before = (A.get(), B.get());
        yield_once().await;
        let after = (A.get(), B.get());
        // Dropped on another thread while the frame runs.
        let a = A.set(30);
        thread::spawn(move || drop(a)).join().unwrap();
        (before, after, (A.get(), B.get()))
    }
    .frame();
    let mut fut = pin!(fut);
    assert!(poll_once(fut.as_mut()).is_pending());
    let guard = slot.lock().unwrap().take().expect("the frame stored it");
    thread::spawn(move || drop(guard)).join().unwrap();
    assert_eq!((A.get(), B.get()), (None, None));
    assert_eq!(
        poll_once(fut.as_mut()),
        Poll::Ready(((Some(20), Some(10)), (None, Some(10)), (None, Some(10))))
    );
}

#[test]
fn set_guard_dropped_inside_another_frame_removes_only_its_own_binding() {
    static A: Variable<u32> = Variable::new("a");

    // Fresh frames, so both guards carry the first id of their frame.
    Snapshot::empty().run(|| {
        let outer = A.set(1);
        let inside = Snapshot::empty().run(|| {
            let inner = A.set(2);
            drop(outer); // belongs to the enclosing frame, not this one
            let seen = A.get();
            drop(inner);
            (seen, A.get())
        });
        assert_eq!(inside, (Some(2), None));
        assert_eq!(A.get(), None);

        // Moved into a framed future and dropped there.
        let outer = A.set(3);
        let seen = block_on(
            async move {
                let inner = A.set(4);
                yield_once().await;
                drop(outer);
                let seen = A.get();
                drop(inner);
                (seen, A.get())
            }
            .frame(),
        );
        // The frame started from A = 3 and keeps it: only the caller's
        // binding went.
        assert_eq!(seen, (Some(4), Some(3)));
        assert_eq!(A.get(), None);
    });
}

// ===== Variable::with =====

#[test]
fn try_set_inside_with_returns_a_borrowed_error() {
    static A: Variable<u32> = Variable::new("a");
    static B: Variable<u32> = Variable::new("b");

    let _a = A.set(1);
    let err = A.with(|a| {
        assert_eq!(a, Some(&1));
        B.try_set(2).unwrap_err()
    });
    assert!(err.is_borrowed());
    assert!(!err.is_unframed());
    let text = err.to_string();
    assert!(text.contains("`b`"), "{text}");
    assert!(text.contains("Variable::get"), "{text}");
    assert_eq!(B.get(), None);

    // `set` panics there, and the context is intact afterwards.
    let caught = panic::catch_unwind(AssertUnwindSafe(|| A.with(|_| B.set(2))));
    let text = message(&*caught.unwrap_err());
    assert!(text.contains("Variable::with"), "{text}");
    assert_eq!((A.get(), B.get()), (Some(1), None));

    // Control: outside the callback the same binding works.
    let _b = B.try_set(2).expect("outside `with`");
    assert_eq!(B.get(), Some(2));
}

#[test]
fn with_borrows_the_stored_value_without_cloning() {
    struct NotClone(String);
    static V: Variable<NotClone> = Variable::new("not_clone");
    static OTHER: Variable<u32> = Variable::new("other");

    assert!(V.with(|v| v.is_none()));
    let _v = V.set(NotClone("payload".to_string()));
    let _o = OTHER.set(4);
    let first = V.with(|v| v.map(|v| std::ptr::from_ref(v) as usize));
    let second = V.with(|v| {
        // Other variables (and the same one) can be read inside.
        assert_eq!(OTHER.get(), Some(4));
        assert_eq!(V.with(|again| again.map(|s| s.0.len())), Some(7));
        v.map(|v| (std::ptr::from_ref(v) as usize, v.0.clone()))
    });
    let (addr, text) = second.expect("bound");
    assert_eq!(first, Some(addr)); // the same value, not a copy
    assert_eq!(text, "payload");

    // A snapshot shares the value rather than copying it.
    let in_snapshot =
        Snapshot::capture().run(|| V.with(|v| v.map(|v| std::ptr::from_ref(v) as usize)));
    assert_eq!(in_snapshot, Some(addr));
}
