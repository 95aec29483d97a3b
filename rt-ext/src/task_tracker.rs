//! `TaskTracker`: tokio-util's task tracker whose spawns inherit context.

use std::future::Future;

use crate::inherit;
use tokio::runtime::Handle;
use tokio::task::{JoinHandle, LocalSet};
use tokio_util::task::task_tracker::{TaskTrackerToken, TaskTrackerWaitFuture, TrackedFuture};

/// [`tokio_util::task::TaskTracker`] where every `spawn*` method starts the
/// task in the caller's context, as [`crate::spawn`] does.
///
/// Clones share one tracker. Convert from and to tokio-util's type freely:
/// they track the same tasks.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static REQUEST: ctx::Variable<u64> = ctx::Variable::new("request");
///
/// ctx::Runtime::new().unwrap().block_on(async {
///     let tracker = ctx::TaskTracker::new();
///     let _r = REQUEST.set(11);
///     let seen = tracker.spawn(async { REQUEST.get() });
///     tracker.close();
///     tracker.wait().await;
///     assert_eq!(seen.await.unwrap(), Some(11));
/// });
/// ```
#[derive(Clone, Debug, Default)]
pub struct TaskTracker {
    inner: tokio_util::task::TaskTracker,
}

impl TaskTracker {
    /// A new, open tracker with no task.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = rt_ext::TaskTracker::new();
    /// assert!(tracker.is_empty() && !tracker.is_closed());
    /// ```
    pub fn new() -> TaskTracker {
        TaskTracker::default()
    }

    /// Waits until the tracker is closed and empty.
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().block_on(async {
    ///     let tracker = rt_ext::TaskTracker::new();
    ///     tracker.close();
    ///     tracker.wait().await;
    /// });
    /// ```
    pub fn wait(&self) -> TaskTrackerWaitFuture<'_> {
        self.inner.wait()
    }

    /// Closes the tracker; returns whether it was open.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = rt_ext::TaskTracker::new();
    /// assert!(tracker.close());
    /// assert!(!tracker.close());
    /// ```
    pub fn close(&self) -> bool {
        self.inner.close()
    }

    /// Reopens the tracker; returns whether it was closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = rt_ext::TaskTracker::new();
    /// tracker.close();
    /// assert!(tracker.reopen());
    /// ```
    pub fn reopen(&self) -> bool {
        self.inner.reopen()
    }

    /// Whether the tracker is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!rt_ext::TaskTracker::new().is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The number of tracked tasks still running.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(rt_ext::TaskTracker::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no tracked task is running.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(rt_ext::TaskTracker::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Spawns a tracked task in the caller's context.
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
    ///     let tracker = ctx::TaskTracker::new();
    ///     let _v = V.set(1);
    ///     assert_eq!(tracker.spawn(async { V.get() }).await.unwrap(), Some(1));
    /// });
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = inherit::future(task);
        let _framed = inherit::FramedSpawn::start();
        inherit::spawn_each!(task, |t| self.inner.spawn(t))
    }

    /// Spawns a tracked task on `handle`'s runtime, in the caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let tracker = ctx::TaskTracker::new();
    /// let task = V.sync_scope(2, || tracker.spawn_on(async { V.get() }, rt.handle().inner()));
    /// assert_eq!(rt.block_on(task).unwrap(), Some(2));
    /// ```
    #[track_caller]
    pub fn spawn_on<F>(&self, task: F, handle: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = inherit::future(task);
        let _framed = inherit::FramedSpawn::start();
        inherit::spawn_each!(task, |t| self.inner.spawn_on(t, handle))
    }

    /// Spawns a tracked `!Send` task on the current `LocalSet`, in the
    /// caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Builder::new_current_thread().build().unwrap();
    /// let local = tokio::task::LocalSet::new();
    /// let tracker = ctx::TaskTracker::new();
    /// let seen = rt.block_on(local.run_until(async {
    ///     let _v = V.set(3);
    ///     tracker.spawn_local(async { V.get() }).await.unwrap()
    /// }));
    /// assert_eq!(seen, Some(3));
    /// ```
    #[track_caller]
    pub fn spawn_local<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        inherit::spawn_each!(inherit::future(task), |t| self.inner.spawn_local(t))
    }

    /// Spawns a tracked `!Send` task on `local_set`, in the caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Builder::new_current_thread().build().unwrap();
    /// let local = tokio::task::LocalSet::new();
    /// let tracker = ctx::TaskTracker::new();
    /// let task = V.sync_scope(4, || tracker.spawn_local_on(async { V.get() }, &local));
    /// assert_eq!(rt.block_on(local.run_until(task)).unwrap(), Some(4));
    /// ```
    #[track_caller]
    pub fn spawn_local_on<F>(&self, task: F, local_set: &LocalSet) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        inherit::spawn_each!(inherit::future(task), |t| self
            .inner
            .spawn_local_on(t, local_set))
    }

    /// Runs a tracked blocking closure in the caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// ctx::Runtime::new().unwrap().block_on(async {
    ///     let tracker = ctx::TaskTracker::new();
    ///     let _v = V.set(5);
    ///     assert_eq!(tracker.spawn_blocking(|| V.get()).await.unwrap(), Some(5));
    /// });
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, T>(&self, task: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.inner.spawn_blocking(inherit::closure(task))
    }

    /// Runs a tracked blocking closure on `handle`'s blocking pool, in the
    /// caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let tracker = ctx::TaskTracker::new();
    /// let task = V.sync_scope(6, || tracker.spawn_blocking_on(|| V.get(), rt.handle().inner()));
    /// assert_eq!(rt.block_on(task).unwrap(), Some(6));
    /// ```
    #[track_caller]
    pub fn spawn_blocking_on<F, T>(&self, task: F, handle: &Handle) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.inner.spawn_blocking_on(inherit::closure(task), handle)
    }

    /// Tracks `future` without spawning it (context is the poller's, as for
    /// any future; add [`crate::FutureExt::frame`] to give it its own frame).
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = rt_ext::TaskTracker::new();
    /// let tracked = tracker.track_future(async { 1 });
    /// assert_eq!(tracker.len(), 1);
    /// assert_eq!(futures::executor::block_on(tracked), 1);
    /// assert!(tracker.is_empty());
    /// ```
    pub fn track_future<F: Future>(&self, future: F) -> TrackedFuture<F> {
        self.inner.track_future(future)
    }

    /// A token that counts as a tracked task until dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = rt_ext::TaskTracker::new();
    /// let token = tracker.token();
    /// assert_eq!(tracker.len(), 1);
    /// drop(token);
    /// assert!(tracker.is_empty());
    /// ```
    pub fn token(&self) -> TaskTrackerToken {
        self.inner.token()
    }

    /// Whether two trackers are the same tracker.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = rt_ext::TaskTracker::new();
    /// assert!(rt_ext::TaskTracker::ptr_eq(&a, &a.clone()));
    /// ```
    pub fn ptr_eq(left: &TaskTracker, right: &TaskTracker) -> bool {
        tokio_util::task::TaskTracker::ptr_eq(&left.inner, &right.inner)
    }

    /// The tokio-util tracker inside (spawning through it does not inherit).
    ///
    /// # Examples
    ///
    /// ```
    /// let tracker = rt_ext::TaskTracker::new();
    /// assert!(tracker.inner().is_empty());
    /// ```
    pub fn inner(&self) -> &tokio_util::task::TaskTracker {
        &self.inner
    }
}

impl From<tokio_util::task::TaskTracker> for TaskTracker {
    fn from(inner: tokio_util::task::TaskTracker) -> TaskTracker {
        TaskTracker { inner }
    }
}

impl From<TaskTracker> for tokio_util::task::TaskTracker {
    fn from(tracker: TaskTracker) -> tokio_util::task::TaskTracker {
        tracker.inner
    }
}
