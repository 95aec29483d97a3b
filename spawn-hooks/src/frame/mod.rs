//! Frames and the poll protocol.
//!
//! A [`Frame`] is the unit of suspension: it owns the [`Mapping`](crate::mapping::Mapping) it started
//! from, the bindings made in it and the lifecycle hooks registered in it.
//! Each thread has one *current* frame: a thread-local pointer to the frame
//! of the innermost poll (or closure) running on it, or null for the
//! thread's base frame. Entering a frame stores its address there and keeps the previous
//! pointer aside; leaving it puts the previous pointer back. That is all a
//! poll of a frame without hooks (or deferred removals) costs: two
//! thread-local pointer swaps. The frame itself never moves while current: it
//! stays where its owner keeps it (a pinned [`Framed`](crate::Framed), a boxed
//! [`TaskFrame`](crate::TaskFrame), or the stack of a closure frame).
//!
//! The protocol, per frame and per poll, on the polling thread (see
//! [`Entered`]):
//!
//! 1. the frame becomes current, the previous one is saved;
//! 2. from the second poll on, removals deferred by guards dropped elsewhere
//!    are applied and the hooks' `on_resume` run in registration order;
//! 3. the inner future is polled (by the caller);
//! 4. on `Pending`, or when the poll unwinds, the hooks' `on_yield` run in
//!    reverse order and the saved frame becomes current again;
//! 5. on `Ready` (and for closure frames when the closure returns or unwinds)
//!    what is left of the bindings and hooks is dropped, then the saved frame
//!    becomes current again.
//!
//! When a dropped guard's removal takes effect: a guard dropped on a thread
//! where its frame is entered (the current frame, or one further down that
//! thread's stack of entered frames: [`Shared::entered_on`] says which
//! thread) removes its binding or hook at once. Dropped anywhere else, it
//! defers: the frame applies deferred removals at its next resume or end (or
//! when it is next read or bound in), one at a time in drop order, each
//! removed item finished (a hook resumed and dropped) before the next is
//! applied, so it sees the context as it was when its guard dropped.
//!
//! No user code (hook callbacks, value or hook destructors) ever runs while a
//! frame is borrowed: items are taken out, the borrow is released, then the
//! item is dropped; a hook is called in place, through a pointer taken under
//! the borrow, and nothing moves or drops it until its call returns. That
//! makes every entry point re-entrant.
//! User code that panics inside the protocol is caught, the protocol finishes
//! (so the thread is back in its saved frame) and the panic is resumed
//! afterwards, unless the thread is already unwinding, in which case it is
//! discarded rather than aborting the process.
//!
//! The parts, by concept: [`current`] (the current-frame thread-local),
//! [`store`] (a frame's bindings and hooks, removed by identity),
//! [`removals`] (guards, and removals deferred across threads), [`access`]
//! (reads and registrations in the current frame) and [`protocol`] (the
//! steps above).

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};

use crate::sync::Arc;

mod access;
mod current;
mod hook;
mod protocol;
mod removals;
mod store;

pub(crate) use access::{add_hook, bind, current_mapping, read};
pub(crate) use current::{is_current, is_current_ptr};
pub(crate) use protocol::{
    has_registrations, install, resume, resume_current, run_in, uninstall, Entered, Leave,
};
pub(crate) use removals::{Registration, Shared};
pub(crate) use store::{Frame, Keep};

/// What a panic of user code caught by the protocol carries.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// What a guard keeps to find its binding or hook: the frame's shared part and
/// the id within the frame.
pub(crate) type Registered = (Arc<Shared>, u64);

/// Where the current frame lives: installed by [`install`], removed by
/// [`uninstall`].
pub(crate) type FramePtr = *const RefCell<Frame>;

/// Runs user code, catching its panic.
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

/// Keeps the first of the panics caught along the way.
fn keep_first(slot: &mut Option<Payload>, result: Result<(), Payload>) {
    if let Err(payload) = result {
        slot.get_or_insert(payload);
    }
}

/// Re-raises a panic of user code caught by the protocol, unless the thread is
/// already unwinding (a second panic would abort the process).
#[inline]
pub(crate) fn rethrow(payload: Option<Payload>) {
    if let Some(payload) = payload {
        rethrow_caught(payload);
    }
}

#[cold]
#[inline(never)]
fn rethrow_caught(payload: Payload) {
    if !std::thread::panicking() {
        panic::resume_unwind(payload);
    }
}

#[cfg(all(test, not(spawn_hooks_loom)))]
mod tests {
    use super::*;
    use std::mem;

    #[test]
    fn frame_without_registrations_is_small() {
        assert!(mem::size_of::<Frame>() <= 4 * mem::size_of::<usize>());
    }
}
