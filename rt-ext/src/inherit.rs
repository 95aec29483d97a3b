//! What every spawn path does to the work it spawns, in one place: the task,
//! closure or thread starts in a frame made from the spawner's context, and,
//! with the `tracing` feature, inside the spawner's current span.
//!
//! `spawn`, `JoinSet`, `TaskTracker`, `Runtime`, `Handle` and `thread` all go
//! through these functions, so a capability added here reaches every one of
//! them.

use std::future::Future;

use spawn_hooks::{Framed, Snapshot};

/// A future made ready to spawn by [`future`].
#[cfg(not(feature = "tracing"))]
pub(crate) type Spawned<F> = Framed<F>;

/// A future made ready to spawn by [`future`]: its frame, inside the span that
/// was current at the spawn (or no span, if spans do not follow spawns there).
#[cfg(feature = "tracing")]
pub(crate) type Spawned<F> = tracing::instrument::Instrumented<Framed<F>>;

/// Wraps a future about to be spawned: it will run in its own frame, starting
/// from the spawner's context as it is now.
pub(crate) fn future<F: Future>(future: F) -> Spawned<F> {
    let snapshot = Snapshot::capture();
    #[cfg(feature = "tracing")]
    {
        use tracing::Instrument as _;
        // The span is entered around every poll of the frame, outside it, so
        // it is the outermost span of the task and the frame's own span
        // guards nest inside it (they exit first on every suspension).
        let span = crate::tracing::span_to_follow(&snapshot);
        snapshot.scope(future).instrument(span)
    }
    #[cfg(not(feature = "tracing"))]
    snapshot.scope(future)
}

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
/// run in its own frame, starting from the spawner's context as it is now.
pub(crate) fn closure<F, R>(f: F) -> impl FnOnce() -> R + Send + 'static
where
    F: FnOnce() -> R + Send + 'static,
{
    let snapshot = Snapshot::capture();
    #[cfg(feature = "tracing")]
    {
        let span = crate::tracing::span_to_follow(&snapshot);
        move || span.in_scope(|| snapshot.run(f))
    }
    #[cfg(not(feature = "tracing"))]
    move || snapshot.run(f)
}

/// Per-runtime settings of what spawning adds, kept by [`crate::Builder`]
/// and applied by the runtime's `block_on` and spawn methods. Without the
/// `tracing` feature it is empty and applying it costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Settings {
    /// `Some(false)`: spans do not follow spawns in this runtime.
    #[cfg(feature = "tracing")]
    pub(crate) spans_follow_spawns: Option<bool>,
}

impl Settings {
    /// Runs `f` (a spawn or the wrapping of a `block_on` future) with the
    /// settings bound, so the work made there, and everything it spawns in
    /// turn, inherits them.
    pub(crate) fn apply<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        if let Some(on) = self.spans_follow_spawns {
            return crate::tracing::FOLLOW.sync_scope(on, f);
        }
        f()
    }
}
