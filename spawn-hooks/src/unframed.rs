//! Whether the calling thread's base frame must refuse bindings.
//!
//! Code polled in a runtime worker's base frame shares that frame with every
//! other unframed task the worker runs: a binding made there would outlive the
//! poll and be seen by the next task. With the `tokio` feature the core refuses
//! it whenever the thread is inside a tokio runtime context.

#[cfg(feature = "tokio")]
pub(crate) fn refused() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
}

#[cfg(not(feature = "tokio"))]
pub(crate) fn refused() -> bool {
    false
}
