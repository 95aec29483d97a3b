//! `Snapshot`: the whole context, captured to be restored later.

use std::fmt;
use std::future::Future;

use crate::frame;
use crate::future::Framed;
use crate::mapping::{Mapping, Value};
use crate::variable::{downcast, Variable};

/// An immutable capture of every variable's value at one moment.
///
/// Capturing is O(1) (a reference count) whatever the number of variables,
/// and a snapshot never changes afterwards. Restoring one with
/// [`run`](Snapshot::run) or [`scope`](Snapshot::scope) makes exactly the
/// captured values current: variables bound later are unset inside.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use rt_ext::{Snapshot, Variable};
///
/// static STAGE: Variable<&str> = Variable::new("stage");
///
/// let captured = STAGE.sync_scope("parse", Snapshot::capture);
/// let _later = STAGE.set("render");
/// assert_eq!(captured.run(|| STAGE.get()), Some("parse"));
/// assert_eq!(STAGE.get(), Some("render"));
/// ```
#[derive(Clone, Default)]
pub struct Snapshot {
    mapping: Mapping,
}

impl Snapshot {
    /// Captures the current context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// static ID: Variable<u32> = Variable::new("id");
    /// let snap = ID.sync_scope(5, Snapshot::capture);
    /// assert_eq!(snap.get(&ID), Some(5));
    /// ```
    #[inline]
    pub fn capture() -> Snapshot {
        Snapshot {
            mapping: frame::current_mapping(),
        }
    }

    /// A snapshot in which every variable is unset.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// static ID: Variable<u32> = Variable::new("id");
    /// let _b = ID.set(1);
    /// assert_eq!(Snapshot::empty().run(|| ID.get()), None);
    /// ```
    pub const fn empty() -> Snapshot {
        Snapshot {
            mapping: Mapping::empty(),
        }
    }

    /// Runs `f` in a frame whose context is this snapshot; the previous
    /// context is back when `f` returns or unwinds.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// static USER: Variable<&str> = Variable::new("user");
    /// let snap = USER.sync_scope("ada", Snapshot::capture);
    /// std::thread::spawn(move || {
    ///     assert_eq!(snap.run(|| USER.get()), Some("ada"));
    ///     assert_eq!(USER.get(), None);
    /// })
    /// .join()
    /// .unwrap();
    /// ```
    #[inline]
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        frame::run_in(self.mapping.clone(), f)
    }

    /// Runs `fut` in its own frame that starts from this snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// # futures::executor::block_on(async {
    /// static USER: Variable<&str> = Variable::new("user");
    /// let snap = USER.sync_scope("ada", Snapshot::capture);
    /// assert_eq!(snap.scope(async { USER.get() }).await, Some("ada"));
    /// # });
    /// ```
    pub fn scope<F: Future>(&self, fut: F) -> Framed<F> {
        Framed::given(self.mapping.clone(), fut)
    }

    /// Wraps `f` so that it runs in this snapshot wherever it is called.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// static USER: Variable<&str> = Variable::new("user");
    /// let greet = USER.sync_scope("ada", || {
    ///     Snapshot::capture().wrap(|greeting: &str| format!("{greeting}, {}", USER.get().unwrap()))
    /// });
    /// assert_eq!(greet("hello"), "hello, ada");
    /// ```
    pub fn wrap<A, R>(&self, f: impl FnOnce(A) -> R) -> impl FnOnce(A) -> R {
        let snapshot = self.clone();
        move |arg| snapshot.run(|| f(arg))
    }

    /// Wraps `f`, which may be called any number of times (TC39's
    /// `AsyncContext.Snapshot.wrap`): each call runs in a frame of its own
    /// that starts from this snapshot, so nothing one call binds is seen by
    /// the next.
    ///
    /// A future made inside the call takes the snapshot's context only if it
    /// is framed (`.frame()`, `Variable::scope`): a plain future runs in
    /// whatever frame polls it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{FutureExt, Snapshot, Variable};
    /// static USER: Variable<&str> = Variable::new("user");
    /// let handler = USER.sync_scope("ada", || {
    ///     Snapshot::capture().wrap_fn(|n: u32| {
    ///         let _b = USER.set("inside"); // gone when the call returns
    ///         async move { (n, USER.get()) }.frame()
    ///     })
    /// });
    /// # futures::executor::block_on(async {
    /// assert_eq!(handler(1).await, (1, Some("inside")));
    /// assert_eq!(USER.sync_scope("bob", || handler(2)).await, (2, Some("inside")));
    /// # });
    /// assert_eq!(USER.get(), None);
    /// ```
    pub fn wrap_fn<A, R>(&self, f: impl Fn(A) -> R) -> impl Fn(A) -> R {
        let snapshot = self.clone();
        move |arg| snapshot.run(|| f(arg))
    }

    /// Wraps `f`, which may be called any number of times and keeps state
    /// between calls; each call runs in a frame of its own that starts from
    /// this snapshot (see [`wrap_fn`](Snapshot::wrap_fn)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// static USER: Variable<&str> = Variable::new("user");
    /// let mut calls = 0;
    /// let mut count = USER.sync_scope("ada", || {
    ///     Snapshot::capture().wrap_mut(move |()| {
    ///         calls += 1;
    ///         (calls, USER.get())
    ///     })
    /// });
    /// assert_eq!(count(()), (1, Some("ada")));
    /// assert_eq!(USER.sync_scope("bob", || count(())), (2, Some("ada")));
    /// ```
    pub fn wrap_mut<A, R>(&self, mut f: impl FnMut(A) -> R) -> impl FnMut(A) -> R {
        let snapshot = self.clone();
        move |arg| snapshot.run(|| f(arg))
    }

    /// A clone of `var`'s value in this snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// static N: Variable<u8> = Variable::new("n");
    /// assert_eq!(Snapshot::empty().get(&N), None);
    /// ```
    pub fn get<T: Clone + Send + Sync + 'static>(&self, var: &Variable<T>) -> Option<T> {
        self.mapping.get(var.id()).map(|v| downcast::<T>(v).clone())
    }

    /// A new snapshot where `var` is `value` and everything else is as in
    /// this one (which is unchanged). This is how a context received from
    /// elsewhere (decoded from a request, say) is assembled before it is
    /// entered with [`run`](Snapshot::run) or [`scope`](Snapshot::scope).
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// static TENANT: Variable<String> = Variable::new("tenant");
    /// static REQUEST: Variable<u64> = Variable::new("request");
    /// let received = Snapshot::empty()
    ///     .with(&TENANT, "acme".to_string())
    ///     .with(&REQUEST, 7);
    /// assert_eq!(received.run(|| (TENANT.get(), REQUEST.get())), (Some("acme".into()), Some(7)));
    /// assert!(Snapshot::empty().is_empty());
    /// ```
    pub fn with<T: Send + Sync + 'static>(&self, var: &Variable<T>, value: T) -> Snapshot {
        Snapshot {
            mapping: self.mapping.with(var.id(), Value::of(value)),
        }
    }

    /// The number of variables bound in this snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::{Snapshot, Variable};
    /// static N: Variable<u8> = Variable::new("n");
    /// assert_eq!(N.sync_scope(1, || Snapshot::capture().len()), 1);
    /// assert!(Snapshot::empty().is_empty());
    /// ```
    pub fn len(&self) -> usize {
        self.mapping.len()
    }

    /// Whether no variable is bound in this snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Snapshot;
    /// assert!(Snapshot::empty().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether two snapshots are the same capture (or both empty): O(1).
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Snapshot;
    /// let a = Snapshot::capture();
    /// assert!(a.ptr_eq(&a.clone()));
    /// ```
    pub fn ptr_eq(&self, other: &Snapshot) -> bool {
        self.mapping.ptr_eq(&other.mapping)
    }
}

impl Snapshot {
    pub(crate) fn into_mapping(self) -> Mapping {
        self.mapping
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("variables", &self.mapping.len())
            .finish()
    }
}
