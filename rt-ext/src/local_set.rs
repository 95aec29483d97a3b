//! `LocalSet`: tokio's `LocalSet`, whose tasks never share their driver's
//! frame.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use spawn_hooks::isolate;
use tokio::task::{JoinHandle, LocalEnterGuard};

use crate::inherit;

/// [`tokio::task::LocalSet`] with context.
///
/// A `LocalSet` polls its `!Send` tasks inside the poll of whatever drives it
/// (`run_until`'s future, or the set itself when awaited). With tokio's own
/// `LocalSet`, tasks started with plain `tokio::task::spawn_local` therefore
/// run in the driver's frame: they read its bindings and could bind into it.
/// This one drives its tasks in an [isolated](crate::isolate) frame instead,
/// so plain `spawn_local` tasks behave as unframed tasks do everywhere else
/// (an empty context, bindings refused), while tasks started with
/// [`crate::spawn_local`] or [`LocalSet::spawn_local`] get frames of their own
/// that inherit from their spawner.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static USER: ctx::Variable<&str> = ctx::Variable::new("user");
///
/// let rt = ctx::Builder::new_current_thread().build().unwrap();
/// let local = ctx::LocalSet::new();
/// rt.block_on(local.run_until(async {
///     let _u = USER.set("ada"); // run_until's future has a frame of its own
///     let framed = ctx::spawn_local(async { USER.get() });
///     let plain = tokio::task::spawn_local(async { (USER.get(), USER.try_set("x").is_err()) });
///     assert_eq!(framed.await.unwrap(), Some("ada"));
///     assert_eq!(plain.await.unwrap(), (None, true));
/// }));
/// ```
#[derive(Default)]
pub struct LocalSet {
    inner: tokio::task::LocalSet,
}

impl LocalSet {
    /// An empty set.
    ///
    /// # Examples
    ///
    /// ```
    /// let local = rt_ext::LocalSet::new();
    /// # drop(local);
    /// ```
    pub fn new() -> LocalSet {
        LocalSet::default()
    }

    /// Spawns a `!Send` task on this set, in the caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Builder::new_current_thread().build().unwrap();
    /// let local = ctx::LocalSet::new();
    /// let task = V.sync_scope(3, || local.spawn_local(async { V.get() }));
    /// assert_eq!(rt.block_on(local.run_until(task)).unwrap(), Some(3));
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        inherit::spawn_each!(inherit::future(future), |f| self.inner.spawn_local(f))
    }

    /// Runs `future`, and the set's tasks meanwhile, until `future` completes.
    /// `future` runs in a frame that starts from the caller's context; the
    /// set's tasks are driven in an isolated frame.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Builder::new_current_thread().build().unwrap();
    /// let local = ctx::LocalSet::new();
    /// let seen = V.sync_scope(1, || rt.block_on(local.run_until(async { V.get() })));
    /// assert_eq!(seen, Some(1));
    /// ```
    pub fn run_until<'a, F>(&'a self, future: F) -> impl Future<Output = F::Output> + 'a
    where
        F: Future + 'a,
    {
        isolate(self.inner.run_until(inherit::future_wrapped(future)))
    }

    /// Runs `future` on `rt`, and the set's tasks meanwhile, until `future`
    /// completes (see [`tokio::task::LocalSet::block_on`]).
    ///
    /// # Panics
    ///
    /// Panics when called inside an asynchronous execution context, as tokio
    /// does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// let rt = ctx::Builder::new_current_thread().build().unwrap();
    /// let local = ctx::LocalSet::new();
    /// assert_eq!(local.block_on(&rt, async { 5 }), 5);
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(&self, rt: &crate::Runtime, future: F) -> F::Output {
        rt.inner().block_on(self.run_until(future))
    }

    /// Enters the set's context, so that `spawn_local` works from
    /// synchronous code.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_current_thread().build().unwrap();
    /// let local = rt_ext::LocalSet::new();
    /// let task = {
    ///     let _guard = local.enter();
    ///     rt_ext::spawn_local(async { 1 })
    /// };
    /// assert_eq!(local.block_on(&rt, task).unwrap(), 1);
    /// ```
    pub fn enter(&self) -> LocalEnterGuard {
        self.inner.enter()
    }

    /// The tokio set inside. Driving it directly (its `run_until`, or
    /// awaiting it) gives up the isolation described on [`LocalSet`].
    ///
    /// # Examples
    ///
    /// ```
    /// let local = rt_ext::LocalSet::new();
    /// let _tokio_set: &tokio::task::LocalSet = local.inner();
    /// ```
    pub fn inner(&self) -> &tokio::task::LocalSet {
        &self.inner
    }
}

impl Future for LocalSet {
    type Output = ();

    /// Runs the set's tasks, in an isolated frame, until none is left.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut isolated = isolate(&mut self.inner);
        Pin::new(&mut isolated).poll(cx)
    }
}

impl fmt::Debug for LocalSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSet").finish_non_exhaustive()
    }
}
