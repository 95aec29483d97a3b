//! `Variable<T>`: a typed key into the current context.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::BindError;
use crate::frame::{self, Registration};
use crate::future::Framed;
use crate::mapping::Value;
use crate::value::Stored;

/// Ids are never reused, so an id names one variable, and so one type, for
/// the life of the process. (`std` atomics: a `Variable` is const-constructed.)
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A typed variable of the async context: each task, frame and snapshot sees
/// its own value, inherited by what it spawns.
///
/// A `Variable` is a key; the values live in the current context. It is
/// const-constructible, so the usual place for one is a `static`. Each
/// `Variable` value is a distinct key: do not declare one as a `const` item
/// (every use of a `const` would be a new, empty variable).
///
/// Values are shared between the frames and snapshots that hold them, hence
/// `T: Send + Sync + 'static`; `get` clones, `with` borrows.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use rt_ext::Variable;
///
/// static USER: Variable<String> = Variable::new("user");
///
/// assert_eq!(USER.get(), None);
/// USER.sync_scope("ada".to_string(), || {
///     assert_eq!(USER.get().as_deref(), Some("ada"));
///     USER.with(|u| assert_eq!(u.map(String::len), Some(3)));
/// });
/// assert_eq!(USER.get(), None);
/// ```
pub struct Variable<T> {
    name: &'static str,
    /// 0 until first bound; then a process-unique id.
    id: AtomicU64,
    _value: PhantomData<fn() -> T>,
}

impl<T> Variable<T> {
    /// Creates a variable. `name` identifies it in errors, in `Debug` output
    /// and, where context crosses a process boundary, on the wire.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::Variable;
    ///
    /// static TENANT: Variable<&'static str> = Variable::new("tenant");
    /// assert_eq!(TENANT.name(), "tenant");
    /// ```
    pub const fn new(name: &'static str) -> Variable<T> {
        Variable {
            name,
            id: AtomicU64::new(0),
            _value: PhantomData,
        }
    }

    /// The name given to [`Variable::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
    /// let v: Variable<u8> = Variable::new("retries");
    /// assert_eq!(v.name(), "retries");
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The id, or 0 if the variable was never bound anywhere.
    fn id_if_bound(&self) -> u64 {
        self.id.load(Ordering::Relaxed)
    }

    /// The id, assigned on first use. Relaxed suffices: the id is the only
    /// datum, and the compare-exchange makes every thread agree on the winner.
    pub(crate) fn id(&self) -> u64 {
        match self.id.load(Ordering::Relaxed) {
            0 => self.assign_id(),
            id => id,
        }
    }

    #[cold]
    fn assign_id(&self) -> u64 {
        let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            Err(existing) => existing,
        }
    }
}

impl<T: Send + Sync + 'static> Variable<T> {
    /// A clone of the value in the current context, or `None` if unbound.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
    /// static DEPTH: Variable<u32> = Variable::new("depth");
    /// assert_eq!(DEPTH.get(), None);
    /// let _b = DEPTH.set(1);
    /// assert_eq!(DEPTH.get(), Some(1));
    /// ```
    #[inline(always)]
    pub fn get(&self) -> Option<T>
    where
        T: Clone,
    {
        self.with(|v| v.cloned())
    }

    /// Calls `f` with a reference to the value in the current context.
    ///
    /// # Panics
    ///
    /// `f` may read any variable and run code in other frames (polling a
    /// framed future, `sync_scope`, `Snapshot::run`), but must not bind in
    /// the frame it reads: `set` or `enter` inside `f` fail there (their
    /// `try_` forms return an error). Copy the value out with
    /// [`get`](Variable::get) first for that.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
    /// static NAME: Variable<String> = Variable::new("name");
    /// let _b = NAME.set("a fairly long name".into());
    /// let len = NAME.with(|n| n.map_or(0, |n| n.len()));
    /// assert_eq!(len, 18);
    /// ```
    #[inline(always)]
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        // Not checked for 0 (never bound): no binding or mapping has id 0,
        // so the lookup finds nothing, and the common case saves a branch.
        frame::read(self.id_if_bound(), |value| f(value.map(downcast::<T>)))
    }

    /// Binds `value` in the current frame until the returned guard drops,
    /// across awaits (the `using` binding of TC39 AsyncContext).
    ///
    /// The guard removes exactly its own binding, by identity: dropped out of
    /// order, moved, or dropped on another thread, it never disturbs another
    /// binding. A binding is never visible to frames that did not inherit it:
    /// the parent of the frame, or tasks spawned before it was made.
    ///
    /// A value of at most 16 bytes (aligned to at most 8: integers,
    /// references, `Arc`s, `&'static str`) is kept in the binding itself: in
    /// a frame that has bound before, `set` and the guard's drop allocate
    /// nothing. The first read ([`get`](Variable::get),
    /// [`with`](Variable::with)) or capture of the frame (a snapshot, a
    /// spawn, a nested frame) that needs it moves it to shared storage, once.
    ///
    /// # Panics
    ///
    /// Panics where [`try_set`](Variable::try_set) returns an error: in a
    /// tokio runtime thread's unframed code (a binding there would leak into
    /// other tasks run on the thread; frame the future first), or inside a
    /// [`with`](Variable::with) callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
    /// static LEVEL: Variable<u8> = Variable::new("level");
    /// let outer = LEVEL.set(1);
    /// let inner = LEVEL.set(2);
    /// assert_eq!(LEVEL.get(), Some(2));
    /// drop(outer); // out of order: only the outer binding goes
    /// assert_eq!(LEVEL.get(), Some(2));
    /// drop(inner);
    /// assert_eq!(LEVEL.get(), None);
    /// ```
    #[track_caller]
    pub fn set(&self, value: T) -> Binding {
        match self.try_set(value) {
            Ok(binding) => binding,
            Err(e) => panic!("rt-ext: {e}"),
        }
    }

    /// Like [`set`](Variable::set), but returns an error instead of
    /// panicking where the current frame refuses the binding.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
    /// static ATTEMPT: Variable<u32> = Variable::new("attempt");
    /// match ATTEMPT.try_set(3) {
    ///     Ok(_binding) => assert_eq!(ATTEMPT.get(), Some(3)),
    ///     Err(e) => eprintln!("not bound: {e}"),
    /// }
    /// ```
    pub fn try_set(&self, value: T) -> Result<Binding, BindError> {
        let registered = frame::bind(self.name, self.id(), Stored::new(value))?;
        Ok(Binding {
            _registration: Registration::new(registered),
        })
    }

    /// Runs `fut` in its own frame where this variable is `value`.
    ///
    /// The frame starts from the context current here, where `scope` is
    /// called, plus this binding (TC39's `variable.run(value, asyncFn)`):
    /// the other variables come from the caller, not from whoever polls the
    /// future first. Afterwards it keeps its own context across awaits. The
    /// value is never visible to the caller, not even between polls.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
    /// # futures::executor::block_on(async {
    /// static TRACE: Variable<u64> = Variable::new("trace");
    /// let seen = TRACE.scope(42, async {
    ///     std::future::ready(()).await;
    ///     TRACE.get()
    /// });
    /// assert_eq!(seen.await, Some(42));
    /// assert_eq!(TRACE.get(), None);
    ///
    /// // The rest of the context is taken here, at the call:
    /// static USER: Variable<&str> = Variable::new("user");
    /// let fut = USER.sync_scope("ada", || TRACE.scope(7, async { (USER.get(), TRACE.get()) }));
    /// assert_eq!(USER.sync_scope("bob", || fut).await, (Some("ada"), Some(7)));
    ///
    /// // So to nest scopes, make the inner one inside the outer: an argument
    /// // is evaluated before the call, outside the outer scope.
    /// let nested = USER.scope("ada", async { TRACE.scope(7, async { USER.get() }).await });
    /// assert_eq!(nested.await, Some("ada"));
    /// let made_outside = USER.scope("ada", TRACE.scope(7, async { USER.get() }));
    /// assert_eq!(made_outside.await, None);
    /// # });
    /// ```
    pub fn scope<F: Future>(&self, value: T, fut: F) -> Framed<F> {
        Framed::inherit_with(self.id(), Value::of(value), fut)
    }

    /// Runs `f` in a frame where this variable is `value`; the previous context
    /// is back when `f` returns or unwinds.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
    /// static A: Variable<i32> = Variable::new("a");
    /// static B: Variable<i32> = Variable::new("b");
    /// A.sync_scope(1, || {
    ///     B.sync_scope(2, || assert_eq!((A.get(), B.get()), (Some(1), Some(2))));
    ///     assert_eq!(B.get(), None);
    /// });
    /// ```
    pub fn sync_scope<R>(&self, value: T, f: impl FnOnce() -> R) -> R {
        let mapping = frame::current_mapping().with(self.id(), Value::of(value));
        frame::run_in(mapping, f)
    }
}

/// Reads a value stored under a variable's id as the variable's type.
#[inline(always)]
pub(crate) fn downcast<T: Any>(value: &Value) -> &T {
    debug_assert!(value.get().is::<T>(), "a value stored under the wrong id");
    // SAFETY: values enter a mapping or a binding only through `Variable<T>`
    // methods, which store a `T` (`Value::of::<T>`, `Stored::new::<T>`)
    // under that variable's id; ids come from a global counter and are given
    // to exactly one `Variable`, whose `T` is fixed, and never reused. So the
    // value under the id this is called with has concrete type `T`, and
    // `data` is its address in the `Arc` (`Value::data`), valid for reads and
    // aligned. The returned reference borrows `value`, which keeps the `Arc`
    // alive; nothing writes to the value but through its own `UnsafeCell`s.
    // (The cast, rather than `downcast_ref`, spares the `TypeId` compare
    // through the vtable on every read; unsafe as before this change.)
    unsafe { value.data().cast::<T>().as_ref() }
}

impl<T> fmt::Debug for Variable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variable")
            .field("name", &self.name)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

// ===== Binding =====

/// The guard of a [`Variable::set`] binding: the binding lasts until it drops.
///
/// `Send`, so a future that holds one across an `.await` stays `Send`.
/// Dropping it removes this binding and no other, on whatever thread it drops.
///
/// # When the removal takes effect
///
/// Dropped on a thread where the binding's frame is entered (it is the
/// current frame, or one further down: the guard dropped inside a nested
/// `.frame()` or `sync_scope`), the binding is removed before the drop
/// returns. Dropped anywhere else (its frame suspended, or running on another
/// thread), the removal is deferred: the frame applies it at its next resume
/// or end (or when it is next read or bound in), one deferred removal at a
/// time, in drop order. Dropped inside a [`Variable::with`] callback, it is
/// removed when the callback returns; reads inside the callback already
/// miss it.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// # use rt_ext::Variable;
/// static V: Variable<&str> = Variable::new("v");
/// let binding = V.set("here");
/// std::thread::spawn(move || drop(binding)).join().unwrap();
/// assert_eq!(V.get(), None);
///
/// // Dropped in a nested frame: removed at once from the outer one.
/// let outer = V.set("outer");
/// V.sync_scope("nested", move || drop(outer));
/// assert_eq!(V.get(), None);
/// ```
#[must_use = "the binding is removed as soon as this guard is dropped"]
#[derive(Debug)]
pub struct Binding {
    /// Held for its `Drop`, which removes the registration.
    _registration: Registration,
}
