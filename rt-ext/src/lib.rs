//! Async context for tokio: typed variables that every spawned task, blocking
//! closure and thread inherits, and lifecycle hooks that run when a future
//! suspends and when it resumes, on whatever worker thread.
//!
//! ```
//! use rt_ext as ctx;
//!
//! static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
//!
//! let rt = ctx::Runtime::new().unwrap();
//! rt.block_on(async {
//!     let _id = REQUEST_ID.set(42); // bound in this frame, across awaits
//!     let child = ctx::spawn(async {
//!         // inherited from the spawner, on whatever worker runs it
//!         let _mine = REQUEST_ID.set(43); // never reaches the parent
//!         ctx::spawn_blocking(|| REQUEST_ID.get()).await.unwrap()
//!     });
//!     assert_eq!(child.await.unwrap(), Some(43));
//!     assert_eq!(REQUEST_ID.get(), Some(42));
//! });
//! ```
//!
//! Replace `tokio::spawn` with [`spawn`] (and `spawn_blocking`, `JoinSet`,
//! `TaskTracker`, `std::thread::spawn` with theirs), `#[tokio::main]` and
//! `#[tokio::test]` with `#[rt_ext::main]` and `#[rt_ext::test]` (same
//! arguments), or build the runtime with [`Builder`] or [`Runtime`], whose
//! `block_on` frames the root future. The
//! core ([`Variable`], [`Snapshot`], [`Lifecycle`], [`FutureExt::frame`]) is
//! re-exported from the runtime-agnostic `spawn-hooks` crate.
//!
//! # Frames
//!
//! Every task spawned here runs in its own *frame*: bindings made in it and
//! hooks registered in it belong to it. A task is one frame unless its code
//! makes more. Two branches of one `join!` or `select!` share their task's
//! frame, so a guard held across an await in one is visible to the other;
//! give each branch its own frame with [`FutureExt::frame`] (or
//! [`Variable::scope`]):
//!
//! ```
//! use rt_ext::{self as ctx, FutureExt as _};
//!
//! static BRANCH: ctx::Variable<&str> = ctx::Variable::new("branch");
//!
//! ctx::Runtime::new().unwrap().block_on(async {
//!     let left = async {
//!         let _b = BRANCH.set("left");
//!         tokio::task::yield_now().await;
//!         BRANCH.get()
//!     };
//!     let right = async {
//!         tokio::task::yield_now().await;
//!         BRANCH.get() // without `.frame()` this would see "left"
//!     };
//!     let (l, r) = tokio::join!(left.frame(), right.frame());
//!     assert_eq!((l, r), (Some("left"), None));
//! });
//! ```
//!
//! A frame takes its starting context where it is *created* (TC39: a
//! generator runs in the context of its creation), whoever polls it first:
//! `.frame()`, [`Variable::scope`], [`Snapshot::scope`] and every spawn
//! capture at the call. A plain, unframed future has no context of its own
//! and sees whatever frame polls it:
//!
//! ```
//! use rt_ext::{self as ctx, FutureExt as _};
//!
//! static V: ctx::Variable<&str> = ctx::Variable::new("v");
//! let rt = ctx::Runtime::new().unwrap();
//! let framed = V.sync_scope("created", || async { V.get() }.frame());
//! let plain = V.sync_scope("created", || async { V.get() });
//! assert_eq!(V.sync_scope("polled", || rt.block_on(framed)), Some("created"));
//! assert_eq!(V.sync_scope("polled", || rt.block_on(plain)), Some("polled"));
//! ```
//!
//! # Unframed code
//!
//! A task spawned with plain `tokio::spawn`, or a future run by a plain
//! tokio runtime's `block_on` (such as `#[tokio::main]`), is polled in the
//! worker thread's base frame, which every such task shares. It reads the
//! context found there (normally empty), but [`Variable::set`] and [`enter`]
//! refuse to bind there: the binding would leak into the next task polled on
//! that thread. `try_set`/`try_enter` return a [`BindError`]; `set`/`enter`
//! panic with a message that names the fixes that apply where it happened:
//! in the body of `#[tokio::main]` or `#[tokio::test]`, use
//! `#[rt_ext::main]` / `#[rt_ext::test]` (or [`Runtime::block_on`]); in a
//! task a server spawned, wrap the service in `rt_ext::tower::FrameLayer`;
//! for one future, [`Variable::scope`] or `.frame()`; for your own spawns,
//! [`spawn`]; for tasks that libraries spawn, the runtime-hook mode
//! (`--cfg tokio_unstable`).
//!
//! # Services
//!
//! A server (hyper, axum, tonic) runs each connection in a task spawned with
//! plain `tokio::spawn`. Wrap the service in `ctx::tower::FrameLayer`
//! (feature `tower`), outermost, and each request runs in a frame of its
//! own where middleware and handlers may bind; run `main` with
//! `#[rt_ext::main]`. Long-lived work that a request starts lazily (a pool, a
//! batcher) would keep that request's context for good: start it with
//! [`spawn_detached`], or wrap its start in [`detached`].
//!
//! ```
//! # #[cfg(feature = "tower")] {
//! use rt_ext as ctx;
//! use tower::{service_fn, Layer as _, ServiceExt as _};
//!
//! static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
//!
//! let service = ctx::tower::FrameLayer::new().layer(service_fn(|id: u64| async move {
//!     let _id = REQUEST_ID.set(id); // would panic in a plain task without the layer
//!     let from_task = ctx::spawn(async { REQUEST_ID.get() }).await.unwrap();
//!     Ok::<_, std::convert::Infallible>(from_task)
//! }));
//! let rt = tokio::runtime::Runtime::new().unwrap(); // even a plain tokio runtime
//! // A plain tokio::spawn, as a server spawns its connection tasks.
//! let served = rt.block_on(async { tokio::spawn(service.oneshot(7)).await.unwrap() });
//! assert_eq!(served, Ok(Some(7)));
//! # }
//! ```
//!
//! # Tracing
//!
//! With the `tracing` feature, `ctx::tracing::enter` enters a span for as long
//! as its guard lives, across awaits: the span is exited whenever the frame
//! suspends and entered again when it resumes, on whatever thread. Work
//! spawned through rt-ext starts inside the spawner's current span.
//! `#[rt_ext::instrument]` and `ctx::tracing::Instrument` are tracing's
//! `#[instrument]` and `Instrument` with the instrumented body given a frame
//! of its own inside the span, so that guards taken in it stay inside the
//! span after every await (under tracing's own, they nest the wrong way, and
//! rt-ext warns once per call site). Without
//! the feature, [`no_suspend`] still counts (and on request panics on) values
//! held across a suspension; with it, each one is also a warning.
//! `ctx::tracing::LogVariables` writes chosen variables, such as a request
//! id, on every line of tracing-subscriber's `fmt` output (text or JSON) that
//! code holding them logs, with no span per request.
//!
//! # Propagation
//!
//! With the `propagation` feature, `ctx::propagation::Codec` carries the
//! variables it lists across process boundaries, as compact bytes or as the
//! W3C `baggage` header (OpenTelemetry-compatible), with tower layers that
//! serve each request inside its caller's context; `ctx::named` and
//! `ctx::push_scope` build a chain of scope names (`ctx::scope_chain`) that
//! travels with it. Bad input gets an error or a report, never a panic.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unsafe_op_in_unsafe_fn)]
// rt-ext is where tokio's spawns are wrapped: the README's `clippy.toml`,
// which disallows them in a user's crate, does not apply here.
#![allow(clippy::disallowed_methods)]

#[cfg(tokio_unstable)]
mod hook_mode;
mod inherit;
mod inheritors;
mod join_set;
mod local_set;
mod no_suspend;
#[cfg(feature = "opentelemetry")]
pub mod otel;
#[cfg(feature = "propagation")]
pub mod propagation;
mod runtime;
mod spawn;
mod task_tracker;
pub mod thread;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;
#[cfg(feature = "tracing")]
mod tracing_fields;

pub use join_set::JoinSet;
pub use local_set::LocalSet;
pub use no_suspend::{no_suspend, set_panic_on_suspend, suspended_while_held, NoSuspend};
#[cfg(feature = "propagation")]
pub use propagation::scope::{
    named, push_scope, scope_chain, try_push_scope, ScopeChain, MAX_SCOPE_CHAIN,
};
#[cfg(feature = "macros")]
pub use rt_ext_macros::{instrument, main, test};
pub use runtime::{Builder, Handle, Runtime};
pub use spawn::{detached, spawn, spawn_blocking, spawn_detached, spawn_local};
pub use task_tracker::TaskTracker;

/// The README's examples, compiled and run as doctests so it stays true.
/// They use every feature (`.ci/steps/docs.sh` runs them).
#[cfg(all(
    doctest,
    feature = "macros",
    feature = "tower",
    feature = "tracing",
    feature = "propagation",
    feature = "opentelemetry"
))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// What the attributes expand to, not for direct use.
#[cfg(feature = "macros")]
#[doc(hidden)]
pub mod __private {
    /// tracing's attribute, under `#[rt_ext::instrument]`; the `macros`
    /// feature turns on tracing's `attributes` where `tracing` is on.
    #[cfg(feature = "tracing")]
    pub use ::tracing::instrument;
    /// Without `tracing`, a compile error at `#[rt_ext::instrument]`.
    #[cfg(not(feature = "tracing"))]
    pub use rt_ext_macros::instrument_needs_tracing as instrument;
}

// The runtime-agnostic core (the `spawn-hooks` crate). Its examples are
// written as an rt-ext user reads them (`rt_ext::`, with a hidden
// `use spawn_hooks as rt_ext;`), so they read right here too.
pub use spawn_hooks::{
    enter, isolate, register, try_enter, BindError, Binding, CaughtPanic, Framed, FutureExt,
    HookGuard, Hooks, Inherit, Inheritance, Inherited, Lifecycle, Registered, Snapshot, TaskFrame,
    Variable,
};
