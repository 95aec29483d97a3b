//! What every spawn path does to the work it spawns, in one place: the task,
//! closure or thread starts in a frame made from the spawner's context.
//!
//! `spawn`, `JoinSet`, `TaskTracker`, `Runtime`, `Handle` and `thread` all go
//! through these two functions, so a capability added here (for example,
//! carrying the spawner's tracing span) reaches every one of them.

use std::future::Future;

use spawn_hooks::{Framed, Snapshot};

/// Wraps a future about to be spawned: it will run in its own frame, starting
/// from the spawner's context as it is now.
pub(crate) fn future<F: Future>(future: F) -> Framed<F> {
    Snapshot::capture().scope(future)
}

/// Wraps a closure about to run elsewhere (blocking pool, OS thread): it will
/// run in its own frame, starting from the spawner's context as it is now.
pub(crate) fn closure<F, R>(f: F) -> impl FnOnce() -> R + Send + 'static
where
    F: FnOnce() -> R + Send + 'static,
{
    let snapshot = Snapshot::capture();
    move || snapshot.run(f)
}
