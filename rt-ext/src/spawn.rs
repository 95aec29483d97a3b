//! Spawning that inherits the spawner's context.

use std::future::Future;

use crate::inherit;
use tokio::task::JoinHandle;

/// Spawns a task that starts with the spawner's context, like
/// [`tokio::spawn`] (same bounds, same panics: it must be called from a tokio
/// runtime).
///
/// The task runs in its own frame: it starts with the spawner's mapping at the
/// moment of the call (O(1)), nothing it binds reaches the spawner, and nothing
/// the spawner binds afterwards reaches it. Its lifecycle hooks run on every
/// suspension and resumption, on whatever worker polls it.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static TENANT: ctx::Variable<&str> = ctx::Variable::new("tenant");
///
/// ctx::Runtime::new().unwrap().block_on(async {
///     let _t = TENANT.set("acme");
///     let child = ctx::spawn(async { TENANT.get() });
///     assert_eq!(child.await.unwrap(), Some("acme"));
/// });
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let future = inherit::future(future);
    let _framed = inherit::FramedSpawn::start();
    tokio::spawn(future)
}

/// Runs a blocking closure on tokio's blocking pool, in the spawner's context,
/// like [`tokio::task::spawn_blocking`].
///
/// The closure runs in its own frame, so it may bind variables; they are gone
/// when it returns.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static USER: ctx::Variable<u32> = ctx::Variable::new("user");
///
/// ctx::Runtime::new().unwrap().block_on(async {
///     let _u = USER.set(7);
///     let seen = ctx::spawn_blocking(|| USER.get()).await.unwrap();
///     assert_eq!(seen, Some(7));
/// });
/// ```
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(inherit::closure(f))
}

/// Spawns a `!Send` task on the current [`tokio::task::LocalSet`] (or local
/// runtime), in the spawner's context, like [`tokio::task::spawn_local`].
///
/// # Examples
///
/// ```
/// use std::rc::Rc;
/// use rt_ext as ctx;
///
/// static USER: ctx::Variable<u32> = ctx::Variable::new("user");
///
/// let rt = ctx::Builder::new_current_thread().build().unwrap();
/// let local = tokio::task::LocalSet::new();
/// rt.block_on(local.run_until(async {
///     let _u = USER.set(7);
///     let not_send = Rc::new(1);
///     let seen = ctx::spawn_local(async move { (*not_send, USER.get()) });
///     assert_eq!(seen.await.unwrap(), (1, Some(7)));
/// }));
/// ```
#[track_caller]
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    tokio::task::spawn_local(inherit::future(future))
}
