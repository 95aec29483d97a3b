//! Lifecycle hooks: code that runs when a frame suspends and resumes.

use crate::error::BindError;
use crate::frame::{self, Registration};

/// A hook called when its frame suspends (its future returned
/// `Poll::Pending`) and when it is polled again, on whatever thread polls it.
///
/// Register one in the current frame with [`enter`]. From registration on, a
/// hook is *entered*; `on_yield` and `on_resume` then strictly alternate, and
/// the hook is always dropped entered (a suspended frame that is cancelled is
/// resumed first). `on_yield` runs on the thread that polled, before `poll`
/// returns; `on_resume` runs on the polling thread before the inner future
/// runs. Hooks of one frame resume oldest first and yield newest first.
///
/// A hook that panics is dropped at once; the panic goes on from the poll,
/// after the thread's previous frame is restored.
///
/// # Examples
///
/// A hook that keeps a per-thread "current request" marker right across
/// awaits, the way a tracing span guard must be:
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use std::cell::Cell;
/// use rt_ext::{enter, FutureExt, Lifecycle};
///
/// thread_local!(static ACTIVE: Cell<u32> = const { Cell::new(0) });
///
/// struct Marker(u32);
/// impl Marker {
///     fn new(id: u32) -> Marker {
///         ACTIVE.with(|a| a.set(id));
///         Marker(id)
///     }
/// }
/// impl Lifecycle for Marker {
///     fn on_yield(&mut self) { ACTIVE.with(|a| a.set(0)) }
///     fn on_resume(&mut self) { ACTIVE.with(|a| a.set(self.0)) }
/// }
/// impl Drop for Marker {
///     fn drop(&mut self) { ACTIVE.with(|a| a.set(0)) }
/// }
///
/// # futures::executor::block_on(async {
/// let task = async {
///     let _hook = enter(Marker::new(7));
///     assert_eq!(ACTIVE.with(Cell::get), 7);
///     yield_once().await; // on_yield, then on_resume
///     assert_eq!(ACTIVE.with(Cell::get), 7);
/// }
/// .frame();
/// task.await;
/// assert_eq!(ACTIVE.with(Cell::get), 0);
/// # });
/// # async fn yield_once() {
/// #     let mut done = false;
/// #     std::future::poll_fn(|cx| if done { std::task::Poll::Ready(()) } else {
/// #         done = true; cx.waker().wake_by_ref(); std::task::Poll::Pending
/// #     }).await
/// # }
/// ```
pub trait Lifecycle: Send + 'static {
    /// The frame suspends: undo whatever must not stay in effect on this
    /// thread while other code runs here.
    fn on_yield(&mut self);

    /// The frame is polled again, maybe on another thread: redo it.
    fn on_resume(&mut self);
}

/// Registers `hook` in the current frame until the returned guard drops.
///
/// # Panics
///
/// Panics where [`try_enter`] returns an error: in a tokio runtime thread's
/// unframed code (the hook would never run; frame the future first), or
/// inside a [`Variable::with`](crate::Variable::with) callback.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use rt_ext::{enter, Lifecycle};
///
/// struct Count(u32);
/// impl Lifecycle for Count {
///     fn on_yield(&mut self) { self.0 += 1 }
///     fn on_resume(&mut self) {}
/// }
///
/// let guard = enter(Count(0));
/// drop(guard); // deregisters and drops the hook
/// ```
#[track_caller]
pub fn enter<H: Lifecycle>(hook: H) -> HookGuard {
    match try_enter(hook) {
        Ok(guard) => guard,
        Err(e) => panic!("rt-ext: {e}"),
    }
}

/// Like [`enter`], but returns an error (and drops the hook) instead of
/// panicking where the current frame refuses the hook.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use rt_ext::{try_enter, Lifecycle};
///
/// struct Noop;
/// impl Lifecycle for Noop {
///     fn on_yield(&mut self) {}
///     fn on_resume(&mut self) {}
/// }
///
/// let guard = try_enter(Noop).expect("a plain thread accepts hooks");
/// drop(guard);
/// ```
#[inline]
pub fn try_enter<H: Lifecycle>(hook: H) -> Result<HookGuard, BindError> {
    match frame::add_hook(hook) {
        Ok(registered) => Ok(HookGuard {
            _registration: Registration::new(registered),
        }),
        Err((e, hook)) => {
            drop(hook);
            Err(e)
        }
    }
}

/// The guard of a hook registered with [`enter`]: dropping it deregisters the
/// hook and drops it, in the entered state.
///
/// # When the removal takes effect
///
/// Dropped on a thread where the hook's frame is entered (it is the current
/// frame, or one further down: the guard dropped inside a nested `.frame()`
/// or `sync_scope`), the hook gets no more `on_yield`/`on_resume` and is
/// dropped before the drop of the guard returns. Dropped anywhere else (its
/// frame suspended, or running on another thread), the removal is deferred:
/// at the frame's next resume or end, on its thread, the hook is resumed if
/// it was suspended, then dropped. Deferred removals are applied one at a
/// time in drop order, and each hook sees the context as it was when its
/// guard dropped (later removals not yet applied).
///
/// `Send`, so a future that holds one across an `.await` stays `Send`.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// # use rt_ext::{enter, Lifecycle};
/// # struct Noop;
/// # impl Lifecycle for Noop { fn on_yield(&mut self) {} fn on_resume(&mut self) {} }
/// let guard = enter(Noop);
/// std::thread::spawn(move || drop(guard)).join().unwrap();
/// ```
#[must_use = "the hook is deregistered and dropped as soon as this guard is dropped"]
#[derive(Debug)]
pub struct HookGuard {
    /// Held for its `Drop`, which removes the registration.
    _registration: Registration,
}

impl HookGuard {
    /// Drops the guard, deregistering the hook as `drop` does, for a hook
    /// that refers to something its guard's owner keeps alive only as long
    /// as the guard (a value the guard borrows, named by an id or a handle
    /// the hook holds). Where the hook's drop has to wait (the guard is
    /// dropped away from its frame, so the hook goes at the frame's next
    /// resume or end, or by a hook of the frame while the hooks are being
    /// called, so it goes when they have been), `keep` is called now and
    /// what it returns (an owned handle of what the hook refers to) is
    /// dropped after the hook, on whatever thread drops the hook. Where the
    /// hook is dropped before this returns (the common case), `keep` is not
    /// called.
    ///
    /// # Examples
    ///
    /// A guard that borrows a name the hook refers to, and hands over a copy
    /// only when the hook outlives it:
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use std::sync::Arc;
    /// use rt_ext::{enter, HookGuard, Lifecycle};
    ///
    /// struct Announce(usize); // refers to a name it does not own
    /// impl Lifecycle for Announce {
    ///     fn on_yield(&mut self) {}
    ///     fn on_resume(&mut self) {}
    /// }
    ///
    /// struct NameGuard<'a> {
    ///     name: &'a Arc<str>,
    ///     hook: Option<HookGuard>,
    /// }
    ///
    /// impl Drop for NameGuard<'_> {
    ///     fn drop(&mut self) {
    ///         let name = self.name;
    ///         if let Some(hook) = self.hook.take() {
    ///             hook.release_keeping(|| Arc::clone(name));
    ///         }
    ///     }
    /// }
    ///
    /// let name: Arc<str> = Arc::from("job");
    /// let guard = NameGuard { name: &name, hook: Some(enter(Announce(name.len()))) };
    /// drop(guard); // dropped in its frame: nothing is cloned
    /// assert_eq!(Arc::strong_count(&name), 1);
    /// ```
    pub fn release_keeping<K: Send + 'static>(self, keep: impl FnOnce() -> K) {
        self._registration
            .release_keeping(move || -> frame::Keep { Box::new(keep()) });
    }
}
