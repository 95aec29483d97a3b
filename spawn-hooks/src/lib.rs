//! Runtime-agnostic async context: typed [`Variable`]s whose values travel
//! with the execution into spawned work, [`Snapshot`]s of the whole context,
//! and [`Lifecycle`] hooks that run when a future suspends and resumes.
//!
//! This is the core of `rt-ext`, with no executor dependency; most users
//! depend on `rt-ext`, which re-exports all of it and adds tokio spawning.
//! So the examples of the items are written as an rt-ext user reads them,
//! `rt_ext::Variable`: with this crate alone, each begins with a (hidden)
//! `use spawn_hooks as rt_ext;`.
//! It follows the TC39 AsyncContext model:
//!
//! * a **mapping** from variables to values is immutable: capturing it is
//!   O(1), binding makes a new one (when it is next captured: a binding
//!   that nothing captures costs no mapping, nor, for a small value, any
//!   allocation);
//! * a **frame** is the unit of suspension: it owns its current mapping, the
//!   bindings made in it and the hooks registered in it. Frames are made by
//!   [`FutureExt::frame`], [`Variable::scope`], [`Snapshot::scope`],
//!   [`Variable::sync_scope`], [`Snapshot::run`] (and, in `rt-ext`, by every
//!   spawn). Each thread also has a base frame for code outside any frame;
//! * each poll of a framed future installs its frame on the polling thread,
//!   runs its hooks' `on_resume`, polls, runs `on_yield` on `Pending`, and
//!   restores the previous frame, even when the poll panics.
//!
//! # Examples
//!
//! ```
//! use spawn_hooks::{FutureExt, Snapshot, Variable};
//!
//! static REQUEST: Variable<u64> = Variable::new("request");
//!
//! # futures::executor::block_on(async {
//! let handler = async {
//!     let _bound = REQUEST.set(17); // bound in this frame, across awaits
//!     let captured = Snapshot::capture();
//!     std::thread::spawn(move || captured.run(|| REQUEST.get()))
//!         .join()
//!         .unwrap()
//! };
//! assert_eq!(handler.frame().await, Some(17));
//! assert_eq!(REQUEST.get(), None); // never leaks to the caller
//! # });
//! ```
//!
//! # When a frame takes its context
//!
//! A frame made for a future ([`FutureExt::frame`], [`Variable::scope`],
//! [`Snapshot::scope`]) starts from the context current where it is
//! created, not where it is first polled, as a TC39 generator does; a plain
//! future runs in whatever frame polls it:
//!
//! ```
//! use std::future::Future;
//! use std::task::{Context, Poll};
//! use spawn_hooks::{FutureExt, Variable};
//!
//! static V: Variable<&str> = Variable::new("v");
//! let waker = futures::task::noop_waker();
//! let mut cx = Context::from_waker(&waker);
//! let mut g = V.sync_scope("init", || Box::pin(async { V.get() }.frame()));
//! let seen = V.sync_scope("first iter", || g.as_mut().poll(&mut cx));
//! assert_eq!(seen, Poll::Ready(Some("init")));
//! ```
//!
//! # Unframed code
//!
//! With the `tokio` feature, the base frame of a thread that is inside a tokio
//! runtime refuses bindings and hooks ([`Variable::try_set`] returns a
//! [`BindError`], [`Variable::set`] panics): every task polled unframed on that
//! thread shares the base frame, so a binding there would leak into them.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unsafe_op_in_unsafe_fn)]

mod error;
mod frame;
mod future;
mod inherit;
mod lifecycle;
mod mapping;
mod snapshot;
mod sync;
mod table;
mod task;
mod unframed;
mod value;
mod variable;

pub use error::BindError;
pub use future::{isolate, Framed, FutureExt};
pub use inherit::{register, Hooks, Inherit, Inheritance, Inherited, Registered};
pub use lifecycle::{enter, try_enter, HookGuard, Lifecycle};
pub use snapshot::Snapshot;
pub use table::TaskTable;
pub use task::{CaughtPanic, TaskFrame};
pub use variable::{Binding, Variable};
