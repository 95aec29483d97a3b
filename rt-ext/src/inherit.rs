//! What every spawn path does to the work it spawns, in one place: the task,
//! closure or thread starts in a frame made from the spawner's context, with
//! the hook that rt-ext's inheritors give it (the spawner's span, its
//! OpenTelemetry context, and those registered with
//! [`register`](crate::register)) around that frame.
//!
//! `spawn`, `JoinSet`, `TaskTracker`, `Runtime`, `Handle`, `thread` and the
//! runtime-hook mode all go through these functions, so a capability added
//! here reaches every one of them.

use std::future::Future;

use spawn_hooks::{Framed, Inherit, Inheritance, Inherited};

/// The inheritors every spawn asks, built-in ones first (see
/// [`crate::inheritors`]).
pub(crate) type Inheritors = crate::inheritors::All;

/// The hook a spawned child inherits.
pub(crate) type Hook = <Inheritors as Inherit>::Hook;

/// A future made ready to spawn by [`future`]: its frame, and the hook the
/// inheritors gave it, if any. Spawn it with [`spawn_each!`]: the frame
/// alone when there is no hook (the common case, spawned as the same task
/// type a bare framed future is, at the same cost), or with the hook around
/// it.
pub(crate) type Spawned<F> = (Framed<F>, Option<Hook>);

/// What a spawn made now passes to its child.
#[inline]
pub(crate) fn capture() -> Inheritance<Inheritors> {
    Inheritance::capture(&crate::inheritors::ALL)
}

/// Wraps a future about to be spawned: it will run in its own frame, starting
/// from the spawner's context as it is now, inside what it inherits.
#[inline]
pub(crate) fn future<F: Future>(future: F) -> Spawned<F> {
    capture().scope_and_hook(future)
}

/// [`future`] as one type, for the places that cannot take either shape
/// (a `block_on`, whose future runs once per call).
#[inline]
pub(crate) fn future_wrapped<F: Future>(future: F) -> Inherited<Framed<F>, Hook> {
    capture().scope(future)
}

/// Spawns a [`Spawned`] future with `$spawn`, an expression of `$f`, written
/// once and compiled for each shape the future may have.
macro_rules! spawn_each {
    ($spawned:expr, |$f:ident| $spawn:expr) => {
        match $spawned {
            (framed, None) => {
                let $f = framed;
                $spawn
            }
            (framed, Some(hook)) => {
                let $f = ::spawn_hooks::Inherited::new(framed, hook);
                $spawn
            }
        }
    };
}
pub(crate) use spawn_each;

/// Held around the tokio spawn of a future wrapped by [`future`]: in
/// runtime-hook mode, the spawn hook that tokio runs inside that spawn gives
/// the task no frame of its own, since the wrapper is its frame (one frame
/// per task, one pointer swap per poll). A guard rather than a closure, so
/// that `#[track_caller]` still reaches tokio's spawn.
#[must_use = "the flag is cleared when the guard drops"]
pub(crate) struct FramedSpawn {
    _private: (),
}

impl FramedSpawn {
    #[inline]
    pub(crate) fn start() -> FramedSpawn {
        #[cfg(tokio_unstable)]
        crate::hook_mode::set_already_framed(true);
        FramedSpawn { _private: () }
    }
}

/// Clears the flag when the spawn returns or unwinds, whether or not a hook
/// took it (a runtime without hooks, or a `LocalSet`, runs none).
#[cfg(tokio_unstable)]
impl Drop for FramedSpawn {
    #[inline]
    fn drop(&mut self) {
        crate::hook_mode::set_already_framed(false);
    }
}

/// Wraps a closure about to run elsewhere (blocking pool, OS thread): it will
/// run in its own frame, starting from the spawner's context as it is now,
/// inside what it inherits.
pub(crate) fn closure<F, R>(f: F) -> impl FnOnce() -> R + Send + 'static
where
    F: FnOnce() -> R + Send + 'static,
{
    let inheritance = capture();
    move || inheritance.run(f)
}
