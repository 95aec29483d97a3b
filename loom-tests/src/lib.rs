//! Loom models of the spawn-hooks core (see README.md).
//!
//! The models live in `tests/`, one behaviour per file; this library holds
//! what they share: a gate a future can wait on, a waker that forwards to
//! whichever thread runs a task next, a lifecycle hook that records where and
//! in which state it is called, and a `model` wrapper that counts the explored
//! interleavings. All of it exists only under `--cfg spawn_hooks_loom`: a
//! normal workspace build compiles this crate to nothing.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

#[cfg(spawn_hooks_loom)]
mod support;

#[cfg(spawn_hooks_loom)]
pub use support::*;
