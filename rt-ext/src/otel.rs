//! OpenTelemetry: the current [`Context`] follows every spawn.
//!
//! With the `opentelemetry` feature, work spawned through any rt-ext spawn
//! path (and, in runtime-hook mode, with plain `tokio::spawn`) runs with the
//! OpenTelemetry context that was current where it was spawned: a child
//! task's `Context::current()` is its spawner's, after any number of awaits,
//! on whatever worker polls it.
//!
//! ```
//! use opentelemetry::Context;
//! use rt_ext as ctx;
//!
//! #[derive(Debug, PartialEq)]
//! struct Tenant(u32);
//!
//! ctx::Runtime::new().unwrap().block_on(async {
//!     let _attached = Context::new().with_value(Tenant(7)).attach();
//!     let child = ctx::spawn(async {
//!         tokio::task::yield_now().await;
//!         Context::current().get::<Tenant>().map(|t| t.0)
//!     });
//!     assert_eq!(child.await.unwrap(), Some(7));
//! });
//! ```

use std::cell::RefCell;
use std::fmt;

use opentelemetry::{Context, ContextGuard};

use crate::{Inherit, Lifecycle, Snapshot};

/// The inheritor of OpenTelemetry's context (see `crate::inheritors`): a
/// child gets the context current at its spawn, attached whenever it runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FollowContext;

impl Inherit for FollowContext {
    type Hook = Attached;

    #[inline]
    fn child(&self, _: &Snapshot) -> Option<Attached> {
        // `Context` tells no one whether it is empty: an empty one is
        // attached too, which makes the child see what it would anyway.
        Some(Attached::new(Context::current()))
    }
}

thread_local! {
    /// The guards of the contexts attached by [`Attached`] hooks on this
    /// thread, innermost last. OpenTelemetry's guards cannot leave their
    /// thread; hooks attach on resume and detach on the same thread before
    /// the poll returns, innermost first, so the guard to drop on a yield is
    /// the last one here.
    static GUARDS: RefCell<Vec<ContextGuard>> = const { RefCell::new(Vec::new()) };
}

/// A hook that keeps an OpenTelemetry [`Context`] attached while its frame
/// runs: attached on resume, detached on yield and when dropped.
pub(crate) struct Attached {
    cx: Context,
    attached: bool,
}

impl Attached {
    pub(crate) fn new(cx: Context) -> Attached {
        Attached {
            cx,
            attached: false,
        }
    }
}

impl Lifecycle for Attached {
    #[inline]
    fn on_resume(&mut self) {
        if !self.attached {
            let guard = self.cx.clone().attach();
            GUARDS.with(|g| g.borrow_mut().push(guard));
            self.attached = true;
        }
    }

    #[inline]
    fn on_yield(&mut self) {
        if self.attached {
            self.attached = false;
            // Popped out of the cell first: dropping a guard may drop a
            // context, and with it code that attaches or detaches.
            let guard = GUARDS.with(|g| g.borrow_mut().pop());
            drop(guard);
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // Dropped entered, on the thread that ran its frame's last step.
        self.on_yield();
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("cx", &self.cx)
            .field("attached", &self.attached)
            .finish()
    }
}
