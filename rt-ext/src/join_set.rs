//! `JoinSet`: tokio's `JoinSet` whose spawns inherit context.

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};

use crate::inherit;
use tokio::runtime::Handle;
use tokio::task::{AbortHandle, Id, JoinError, LocalSet};

/// A set of tasks spawned in the caller's context:
/// [`tokio::task::JoinSet`] where every `spawn*` method inherits as
/// [`crate::spawn`] does. All tasks are aborted when the set is dropped.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static SHARD: ctx::Variable<u32> = ctx::Variable::new("shard");
///
/// ctx::Runtime::new().unwrap().block_on(async {
///     let mut set = ctx::JoinSet::new();
///     for shard in 0..4 {
///         SHARD.sync_scope(shard, || set.spawn(async { SHARD.get().unwrap() * 10 }));
///     }
///     let mut seen = set.join_all().await;
///     seen.sort();
///     assert_eq!(seen, [0, 10, 20, 30]);
/// });
/// ```
pub struct JoinSet<T> {
    inner: tokio::task::JoinSet<T>,
}

impl<T> JoinSet<T> {
    /// An empty set.
    ///
    /// # Examples
    ///
    /// ```
    /// let set: rt_ext::JoinSet<()> = rt_ext::JoinSet::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> JoinSet<T> {
        JoinSet {
            inner: tokio::task::JoinSet::new(),
        }
    }

    /// The number of tasks in the set, finished or not.
    ///
    /// # Examples
    ///
    /// ```
    /// let set: rt_ext::JoinSet<()> = rt_ext::JoinSet::new();
    /// assert_eq!(set.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the set holds no task.
    ///
    /// # Examples
    ///
    /// ```
    /// let set: rt_ext::JoinSet<u8> = rt_ext::JoinSet::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Waits for the next task to finish; `None` when the set is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().block_on(async {
    ///     let mut set = rt_ext::JoinSet::new();
    ///     set.spawn(async { 1 });
    ///     assert_eq!(set.join_next().await.unwrap().unwrap(), 1);
    ///     assert!(set.join_next().await.is_none());
    /// });
    /// ```
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>>
    where
        T: 'static,
    {
        self.inner.join_next().await
    }

    /// Waits for the next task to finish, with its task id.
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().block_on(async {
    ///     let mut set = rt_ext::JoinSet::new();
    ///     let id = set.spawn(async { 1 }).id();
    ///     assert_eq!(set.join_next_with_id().await.unwrap().unwrap(), (id, 1));
    /// });
    /// ```
    pub async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>>
    where
        T: 'static,
    {
        self.inner.join_next_with_id().await
    }

    /// The output of a finished task, if one has finished, without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set: rt_ext::JoinSet<u8> = rt_ext::JoinSet::new();
    /// assert!(set.try_join_next().is_none());
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>>
    where
        T: 'static,
    {
        self.inner.try_join_next()
    }

    /// Like [`try_join_next`](JoinSet::try_join_next), with the task id.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set: rt_ext::JoinSet<u8> = rt_ext::JoinSet::new();
    /// assert!(set.try_join_next_with_id().is_none());
    /// ```
    pub fn try_join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>>
    where
        T: 'static,
    {
        self.inner.try_join_next_with_id()
    }

    /// Aborts every task and waits for them to finish.
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().block_on(async {
    ///     let mut set = rt_ext::JoinSet::new();
    ///     set.spawn(std::future::pending::<()>());
    ///     set.shutdown().await;
    ///     assert!(set.is_empty());
    /// });
    /// ```
    pub async fn shutdown(&mut self)
    where
        T: 'static,
    {
        self.inner.shutdown().await
    }

    /// Waits for every task and returns their outputs in completion order.
    ///
    /// # Panics
    ///
    /// Resumes the panic of a task that panicked, as tokio does.
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().block_on(async {
    ///     let mut set = rt_ext::JoinSet::new();
    ///     set.spawn(async { 1 });
    ///     assert_eq!(set.join_all().await, [1]);
    /// });
    /// ```
    pub async fn join_all(self) -> Vec<T>
    where
        T: 'static,
    {
        self.inner.join_all().await
    }

    /// Aborts every task; they stay in the set until joined.
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().block_on(async {
    ///     let mut set = rt_ext::JoinSet::new();
    ///     set.spawn(std::future::pending::<()>());
    ///     set.abort_all();
    ///     assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    /// });
    /// ```
    pub fn abort_all(&mut self)
    where
        T: 'static,
    {
        self.inner.abort_all()
    }

    /// Removes every task from the set without aborting them.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut set: rt_ext::JoinSet<u8> = rt_ext::JoinSet::new();
    /// set.detach_all();
    /// ```
    pub fn detach_all(&mut self)
    where
        T: 'static,
    {
        self.inner.detach_all()
    }

    /// Polls for the next finished task (see
    /// [`tokio::task::JoinSet::poll_join_next`]).
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().block_on(async {
    ///     let mut set = rt_ext::JoinSet::new();
    ///     set.spawn(async { 5 });
    ///     let out = std::future::poll_fn(|cx| set.poll_join_next(cx)).await;
    ///     assert_eq!(out.unwrap().unwrap(), 5);
    /// });
    /// ```
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>>
    where
        T: 'static,
    {
        self.inner.poll_join_next(cx)
    }

    /// Polls for the next finished task, with its id.
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().block_on(async {
    ///     let mut set = rt_ext::JoinSet::new();
    ///     set.spawn(async { 5 });
    ///     let out = std::future::poll_fn(|cx| set.poll_join_next_with_id(cx)).await;
    ///     assert_eq!(out.unwrap().unwrap().1, 5);
    /// });
    /// ```
    pub fn poll_join_next_with_id(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(Id, T), JoinError>>>
    where
        T: 'static,
    {
        self.inner.poll_join_next_with_id(cx)
    }

    /// The tokio set inside (spawning through it does not inherit context).
    ///
    /// # Examples
    ///
    /// ```
    /// let set: rt_ext::JoinSet<u8> = rt_ext::JoinSet::new();
    /// assert_eq!(set.inner().len(), 0);
    /// ```
    pub fn inner(&self) -> &tokio::task::JoinSet<T> {
        &self.inner
    }

    /// Unwraps the tokio set.
    ///
    /// # Examples
    ///
    /// ```
    /// let set: tokio::task::JoinSet<u8> = rt_ext::JoinSet::new().into_inner();
    /// # drop(set);
    /// ```
    pub fn into_inner(self) -> tokio::task::JoinSet<T> {
        self.inner
    }
}

impl<T: 'static> JoinSet<T> {
    /// Spawns a task into the set, in the caller's context.
    ///
    /// # Panics
    ///
    /// Panics outside a tokio runtime, as tokio does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// ctx::Runtime::new().unwrap().block_on(async {
    ///     let mut set = ctx::JoinSet::new();
    ///     let _v = V.set(3);
    ///     set.spawn(async { V.get() });
    ///     assert_eq!(set.join_next().await.unwrap().unwrap(), Some(3));
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        let task = inherit::future(task);
        let _framed = inherit::FramedSpawn::start();
        inherit::spawn_each!(task, |t| self.inner.spawn(t))
    }

    /// Spawns a task into the set on `handle`'s runtime, in the caller's
    /// context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let mut set = ctx::JoinSet::new();
    /// V.sync_scope(1, || set.spawn_on(async { V.get() }, rt.handle().inner()));
    /// assert_eq!(rt.block_on(set.join_all()), [Some(1)]);
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(&mut self, task: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        let task = inherit::future(task);
        let _framed = inherit::FramedSpawn::start();
        inherit::spawn_each!(task, |t| self.inner.spawn_on(t, handle))
    }

    /// Spawns a `!Send` task into the set on the current `LocalSet`, in the
    /// caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Builder::new_current_thread().build().unwrap();
    /// let local = tokio::task::LocalSet::new();
    /// rt.block_on(local.run_until(async {
    ///     let mut set = ctx::JoinSet::new();
    ///     V.sync_scope(2, || set.spawn_local(async { V.get() }));
    ///     assert_eq!(set.join_all().await, [Some(2)]);
    /// }));
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        inherit::spawn_each!(inherit::future(task), |t| self.inner.spawn_local(t))
    }

    /// Spawns a `!Send` task into the set on `local_set`, in the caller's
    /// context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Builder::new_current_thread().build().unwrap();
    /// let local = tokio::task::LocalSet::new();
    /// let mut set = ctx::JoinSet::new();
    /// V.sync_scope(4, || set.spawn_local_on(async { V.get() }, &local));
    /// assert_eq!(rt.block_on(local.run_until(set.join_all())), [Some(4)]);
    /// ```
    #[track_caller]
    pub fn spawn_local_on<F>(&mut self, task: F, local_set: &LocalSet) -> AbortHandle
    where
        F: Future<Output = T> + 'static,
    {
        inherit::spawn_each!(inherit::future(task), |t| self
            .inner
            .spawn_local_on(t, local_set))
    }

    /// Runs a blocking closure on the blocking pool as a task of the set, in
    /// the caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// ctx::Runtime::new().unwrap().block_on(async {
    ///     let mut set = ctx::JoinSet::new();
    ///     let _v = V.set(8);
    ///     set.spawn_blocking(|| V.get());
    ///     assert_eq!(set.join_all().await, [Some(8)]);
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.inner.spawn_blocking(inherit::closure(f))
    }

    /// Runs a blocking closure on `handle`'s blocking pool as a task of the
    /// set, in the caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let mut set = ctx::JoinSet::new();
    /// V.sync_scope(9, || set.spawn_blocking_on(|| V.get(), rt.handle().inner()));
    /// assert_eq!(rt.block_on(set.join_all()), [Some(9)]);
    /// ```
    #[track_caller]
    pub fn spawn_blocking_on<F>(&mut self, f: F, handle: &Handle) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.inner.spawn_blocking_on(inherit::closure(f), handle)
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> JoinSet<T> {
        JoinSet::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}

impl<T> From<tokio::task::JoinSet<T>> for JoinSet<T> {
    /// Wraps a tokio set; tasks already in it keep the context they had.
    fn from(inner: tokio::task::JoinSet<T>) -> JoinSet<T> {
        JoinSet { inner }
    }
}

impl<T, F> Extend<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    /// Spawns every future, each in the caller's context.
    fn extend<I: IntoIterator<Item = F>>(&mut self, iter: I) {
        for task in iter {
            self.spawn(task);
        }
    }
}

impl<T, F> FromIterator<F> for JoinSet<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    /// Spawns every future into a new set, each in the caller's context.
    fn from_iter<I: IntoIterator<Item = F>>(iter: I) -> JoinSet<T> {
        let mut set = JoinSet::new();
        set.extend(iter);
        set
    }
}
