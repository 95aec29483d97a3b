//! Reading and registering in the current frame: a variable's value, the
//! whole mapping, a binding, a hook. Each has an inlined common case and a
//! cold path for the base frame or pending removals.

use std::cell::RefCell;

use super::current::{current_framed, with_current};
use super::removals::{mark, settle, settle_pending};
use super::store::FrameExt;
use super::{rethrow, Frame, FramePtr, Registered};
use crate::error::BindError;
use crate::lifecycle::Lifecycle;
use crate::mapping::{Mapping, Value};
use crate::sync::Ordering;
use crate::value::Stored;

/// Calls `f` with the value of variable `var` in the current frame (none
/// where the thread's context is gone, during thread-local destruction).
///
/// `f` runs with the frame borrowed: a guard of this frame dropped inside it
/// cannot remove its item at once and defers; reads inside `f` see the
/// frame as if the removal had been applied, and the removal is applied
/// when `f` returns.
#[inline(always)]
pub(crate) fn read<R>(var: u64, f: impl FnOnce(Option<&Value>) -> R) -> R {
    // The common cases, inline: a frame with nothing deferred.
    if let Some(cell) = current_framed() {
        if let Ok(frame) = cell.try_borrow() {
            match frame.ext.as_deref() {
                // Nothing was ever bound or registered here: no guard of
                // the frame exists for `f` to drop, and none can be made
                // while it is borrowed, so there is nothing to check after.
                None => return f(frame.start.get_inlined(var)),
                Some(ext) if !ext.shared.pending.load(Ordering::Acquire) => {
                    let r = f(frame.get(var));
                    drop(frame);
                    // SAFETY: as in `has_registrations`.
                    if unsafe { &*cell.as_ptr() }.has_pending() {
                        settle_after_read(cell);
                    }
                    return r;
                }
                Some(_) => {}
            }
        }
    }
    read_slow(move |frame, gone| f(frame.and_then(|frame| frame.get_settled(var, gone))))
}

/// Applies the removals deferred by guards dropped inside a `read` callback.
#[cold]
#[inline(never)]
fn settle_after_read(cell: &RefCell<Frame>) {
    rethrow(settle_pending(cell));
}

/// `read` in the base frame, or with removals to apply first: `f` gets the
/// frame (none where the thread's context is gone) and the ids of the
/// removals that are deferred still (an enclosing `with` callback holds the
/// frame), which it reads as if they were applied.
#[cold]
#[inline(never)]
fn read_slow<R>(f: impl FnOnce(Option<&Frame>, &[u64]) -> R) -> R {
    let mut f = Some(f);
    let done = with_current(|cell| {
        rethrow(settle(cell));
        let frame = cell.try_borrow().ok()?;
        let f = f.take()?;
        let r = if frame.has_pending() && !frame.settle_waits() {
            // Still deferred: an enclosing `with` callback holds the frame.
            f(Some(&frame), &frame.pending_ids())
        } else {
            f(Some(&frame), &[])
        };
        drop(frame);
        rethrow(settle(cell));
        Some(r)
    });
    match done {
        Some(Some(r)) => r,
        _ => match f.take() {
            Some(f) => f(None, &[]),
            None => unreachable!("the reader ran but returned nothing"),
        },
    }
}

/// The current mapping: O(1) unless the frame's bindings changed since it
/// was last taken. [`read`] without its check after the callback: making
/// the mapping runs no user code, so drops no guard.
#[inline]
pub(crate) fn current_mapping() -> Mapping {
    // The common cases, inline: a frame with nothing deferred; the one with
    // nothing bound in it (a frame made for a future, a closure, a spawned
    // task, until it binds) in a few instructions.
    if let Some(cell) = current_framed() {
        if let Ok(frame) = cell.try_borrow() {
            match frame.ext.as_deref() {
                None => return frame.start.clone(),
                Some(ext) if !ext.shared.pending.load(Ordering::Acquire) => {
                    return ext.mapping(&frame.start);
                }
                Some(_) => {}
            }
        }
    }
    current_mapping_slow()
}

/// [`current_mapping`] in the base frame, or with removals to apply first.
#[cold]
#[inline(never)]
fn current_mapping_slow() -> Mapping {
    read_slow(|frame, gone| match frame {
        Some(frame) if gone.is_empty() => frame.mapping(),
        Some(frame) => frame.mapping_settled(gone),
        None => Mapping::empty(),
    })
}

/// The current frame's extension, when a registration can go straight
/// into it: the common case of [`bind`] and [`add_hook`], inlined there,
/// with the current frame borrowed. That is a frame that has registered
/// before, with nothing deferred. A frame with an extension is neither a
/// base frame (never current: `with_current`) nor an isolated one (which
/// refuses, and is given no hooks). The current frame needs no mark for its
/// guards: they find it as the current frame, and frames entered above it
/// mark it (see `protocol::install`).
///
/// The extension is taken before the check for deferred removals, whose
/// load (`Acquire`) would make the compiler read it again after.
#[inline(always)]
fn registrable(ext: &mut Option<Box<FrameExt>>) -> Option<&mut FrameExt> {
    ext.as_deref_mut()
        .filter(|ext| !ext.shared.pending.load(Ordering::Acquire))
}

/// Registers a binding in the current frame.
#[inline]
pub(crate) fn bind(name: &'static str, var: u64, value: Stored) -> Result<Registered, BindError> {
    if let Some(mut frame) = current_framed().and_then(|cell| cell.try_borrow_mut().ok()) {
        if let Some(ext) = registrable(&mut frame.ext) {
            return Ok(ext.bind(var, value));
        }
    }
    bind_slow(name, var, value)
}

#[cold]
#[inline(never)]
fn bind_slow(name: &'static str, var: u64, value: Stored) -> Result<Registered, BindError> {
    register(name, |frame, home| frame.bind(home, var, value))
}

/// Registers a hook in the current frame; on refusal the hook is handed back
/// (for its owner to drop, the frame no longer borrowed).
#[inline]
pub(crate) fn add_hook<H: Lifecycle>(hook: H) -> Result<Registered, (BindError, H)> {
    if let Some(mut frame) = current_framed().and_then(|cell| cell.try_borrow_mut().ok()) {
        let frame = &mut *frame;
        if let Some(ext) = registrable(&mut frame.ext) {
            return Ok(ext.add_hook(&frame.pass, hook));
        }
    }
    add_hook_slow(hook)
}

#[cold]
#[inline(never)]
fn add_hook_slow<H: Lifecycle>(hook: H) -> Result<Registered, (BindError, H)> {
    let mut hook = Some(hook);
    let registered = register("a lifecycle hook", |frame, home| {
        frame.add_hook(home, hook.take().expect("registered once"))
    })
    .map_err(|e| (e, hook.take().expect("not registered")))?;
    Ok(registered)
}

fn register<R>(
    what: &'static str,
    f: impl FnOnce(&mut Frame, FramePtr) -> R,
) -> Result<R, BindError> {
    let done = with_current(|cell| {
        rethrow(settle(cell));
        let mut frame = cell
            .try_borrow_mut()
            .map_err(|_| BindError::borrowed(what))?;
        if frame.refuses() {
            return Err(BindError::unframed(what));
        }
        let base = frame.is_base();
        let registered = f(&mut frame, cell);
        drop(frame);
        // The thread's base frame is below every frame the thread enters:
        // say so to its guards, for good (it is never left). Another frame
        // is marked when a frame is entered above it.
        if base {
            mark(cell);
        }
        Ok(registered)
    });
    done.unwrap_or_else(|| Err(BindError::destroyed(what)))
}
