//! Spawning that inherits the spawner's context.

use std::future::Future;

use crate::inherit;
use spawn_hooks::Snapshot;
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
    match inherit::future(future) {
        (framed, None) => {
            let _framed = inherit::FramedSpawn::start();
            tokio::spawn(framed)
        }
        (framed, Some(hook)) => spawn_inheriting(framed, hook),
    }
}

#[track_caller]
#[inline(never)]
fn spawn_inheriting<F>(framed: spawn_hooks::Framed<F>, hook: inherit::Hook) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let _framed = inherit::FramedSpawn::start();
    tokio::spawn(spawn_hooks::Inherited::new(framed, hook))
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
    inherit::spawn_each!(inherit::future(future), |f| tokio::task::spawn_local(f))
}

/// Runs `f` outside the current context: in an empty one, and (with the
/// `tracing` feature) with no span followed by what it spawns. Work that `f`
/// spawns, through rt-ext or, in runtime-hook mode, with plain
/// `tokio::spawn` inside a library, starts from nothing of the caller's.
///
/// This is the way out for long-lived work started lazily: a pool, batcher
/// or flusher whose first use happens inside some request would otherwise
/// inherit that request's context and keep it for as long as it runs (its
/// logs would all carry the first request's id). Wrap the first use:
/// `let pool = POOL.get_or_init(|| ctx::detached(Pool::start));`. To start
/// from a context of your own instead (the service's, captured at startup),
/// run the closure in it: `root.run(|| ..)` with `let root =
/// ctx::Snapshot::capture();` taken before any request.
///
/// # Examples
///
/// ```
/// use std::sync::OnceLock;
/// use rt_ext as ctx;
/// use tokio::sync::{mpsc, oneshot};
///
/// static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
///
/// /// Asks the worker what request id it sees.
/// type Ask = oneshot::Sender<Option<u64>>;
/// static WORKER: OnceLock<mpsc::UnboundedSender<Ask>> = OnceLock::new();
///
/// /// Started by whichever request comes first, then shared by all.
/// fn worker() -> &'static mpsc::UnboundedSender<Ask> {
///     WORKER.get_or_init(|| {
///         let (tx, mut rx) = mpsc::unbounded_channel::<Ask>();
///         ctx::detached(|| {
///             ctx::spawn(async move {
///                 while let Some(ask) = rx.recv().await {
///                     let _ = ask.send(REQUEST_ID.get()); // the worker's own context
///                 }
///             })
///         });
///         tx
///     })
/// }
///
/// ctx::Runtime::new().unwrap().block_on(async {
///     for id in [1, 2] {
///         let _id = REQUEST_ID.set(id);
///         let (ask, seen) = oneshot::channel();
///         worker().send(ask).unwrap();
///         // Not the id of request 1, which started it: none.
///         assert_eq!(seen.await.unwrap(), None);
///     }
/// });
/// ```
pub fn detached<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(feature = "tracing")]
    return Snapshot::empty().run(|| crate::tracing::without_span(f));
    #[cfg(not(feature = "tracing"))]
    Snapshot::empty().run(f)
}

/// Spawns a task outside the spawner's context, like [`spawn`] from
/// [`detached`]: it starts from an empty context (and no span), for
/// long-lived work that a request starts lazily and must not carry that
/// request's context forever.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
///
/// ctx::Runtime::new().unwrap().block_on(async {
///     let _id = REQUEST_ID.set(7);
///     let flusher = ctx::spawn_detached(async {
///         let _mine = REQUEST_ID.set(0); // it has a frame of its own
///         REQUEST_ID.get()
///     });
///     assert_eq!(flusher.await.unwrap(), Some(0));
///     assert_eq!(ctx::spawn_detached(async { REQUEST_ID.get() }).await.unwrap(), None);
/// });
/// ```
#[track_caller]
pub fn spawn_detached<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let future = detached(|| inherit::future(future));
    let _framed = inherit::FramedSpawn::start();
    inherit::spawn_each!(future, |f| tokio::spawn(f))
}
