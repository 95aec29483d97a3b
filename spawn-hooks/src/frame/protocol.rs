//! The poll protocol (steps 1 to 5 in the parent module's docs): install,
//! resume, suspend and end, the guard [`Entered`] that pairs them for a
//! framed poll or closure, and the calls of the hooks.

use std::cell::RefCell;
use std::fmt;
use std::mem;

use super::current;
use super::removals::{mark, settle, unmark};
use super::store::{FrameExt, HookSlot, Pass, Slots};
use super::{catch, keep_first, rethrow, Frame, FramePtr, Payload, Shared};
use crate::mapping::Mapping;
use crate::sync::Ordering;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Resume,
    Yield,
}

/// What leaving a frame does with it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Leave {
    /// Run `on_yield`, keep bindings and hooks for the next poll.
    Suspend,
    /// Drop what is left of the bindings and hooks: the frame has ended.
    End,
}

/// A frame installed as the thread's current frame: the one form of steps
/// 1 to 5 that [`Framed`](crate::Framed) and closure frames use (a
/// [`TaskFrame`](crate::TaskFrame), whose entry outlives any scope, calls
/// [`install`], [`resume`] and [`uninstall`] itself).
///
/// [`leave`](Entered::leave) leaves the frame (step 4, or step 5 once
/// [`ending`](Entered::ending)) and makes the previous frame current again.
/// Dropping it without `leave` does the same, for a poll or closure that
/// unwinds, so a panic still restores the thread's previous frame, and nested
/// frames unwind in order (they are strictly stack-scoped, so the frame
/// current at drop time is always ours).
///
/// It borrows its frame for its whole life, so the frame cannot move or be
/// dropped while its address is the thread's current frame. It is never
/// leaked while installed. Two words and a flag, with no panic slot: what
/// user code panics with on the way in or out is handed to the caller.
pub(crate) struct Entered<'a> {
    home: &'a RefCell<Frame>,
    /// The frame that was current before.
    prev: FramePtr,
    leave: Leave,
}

impl<'a> Entered<'a> {
    /// Step 1: installs `home` as the current frame; [`leave`] (or dropping
    /// the guard) leaves it as `leave` says.
    ///
    /// [`leave`]: Entered::leave
    #[inline(always)]
    pub(crate) fn install(home: &'a RefCell<Frame>, leave: Leave) -> Entered<'a> {
        Entered {
            home,
            prev: install(home),
            leave,
        }
    }

    /// Step 2, inlined, for a frame known to have work to do on the way in
    /// (see [`has_registrations`]), just installed: applies deferred
    /// removals and runs `on_resume`, for the poll that has hooks to call
    /// both ways: it then shares the poll's saved registers. Returns the
    /// panic of user code, if any, which the common pass knows to be none
    /// (see `run_hooks_from`). The guard is built by the caller, where it
    /// stays: returned from a function that resumed too, it was moved once
    /// more (4 instructions a poll).
    ///
    /// The frame's extension is read once for the check for deferred
    /// removals and the start of the pass, which run no user code.
    #[inline(always)]
    pub(crate) fn resume_inline(&self) -> Option<Payload> {
        let home = self.home;
        // SAFETY: as in `has_registrations`; the reference is not used once
        // user code runs (the first hook's call).
        let frame = unsafe { &*home.as_ptr() };
        match frame.ext.as_deref() {
            // Mutant: a suspended frame is entered without resuming its hooks.
            #[cfg(spawn_hooks_mutant = "no_resume")]
            Some(_) => None,
            Some(ext) if ext.shared.pending.load(Ordering::Acquire) => resume_hooks(home),
            Some(ext) => run_hooks_from(home, ext.start_pass(&frame.pass), Phase::Resume),
            None => None,
        }
    }

    /// Step 4 (the frame was not [`ending`](Entered::ending)), with the pass
    /// over the hooks on the way out inlined (see
    /// [`resume_inline`](Entered::resume_inline)).
    #[inline(always)]
    pub(crate) fn suspend_hooks(self) -> Option<Payload> {
        let this = mem::ManuallyDrop::new(self);
        debug_assert_eq!(this.leave, Leave::Suspend);
        uninstall_with(this.home, this.prev, Leave::Suspend, true)
    }

    /// Step 4 (the frame was not [`ending`](Entered::ending)), now.
    #[inline(always)]
    pub(crate) fn suspend(self) -> Option<Payload> {
        let this = mem::ManuallyDrop::new(self);
        debug_assert_eq!(this.leave, Leave::Suspend);
        uninstall_with(this.home, this.prev, Leave::Suspend, false)
    }

    /// Step 2, whatever the frame has.
    #[inline]
    pub(crate) fn resume(&self) -> Option<Payload> {
        resume(self.home)
    }

    /// Makes leaving end the frame (step 5), from now on: set before the
    /// last destructors of the frame's owner run, so that the frame ends even
    /// if one of them panics.
    #[inline(always)]
    pub(crate) fn ending(&mut self) {
        self.leave = Leave::End;
    }

    /// Steps 4 or 5, now. Returns the panic of user code, if any.
    #[inline(always)]
    pub(crate) fn leave(self) -> Option<Payload> {
        let this = mem::ManuallyDrop::new(self);
        uninstall(this.home, this.prev, this.leave)
    }
}

impl Drop for Entered<'_> {
    /// The poll or closure unwound: leaves as [`Entered::leave`] does; a
    /// panic of user code on the way out is discarded (the thread is
    /// unwinding already) or resumed.
    ///
    /// Inlined, handing the fields over by value: the guard's address does
    /// not escape into a call, so the guard need not be kept in memory
    /// across the poll.
    #[inline]
    fn drop(&mut self) {
        left_unwinding(self.home, self.prev, self.leave);
    }
}

/// [`Entered`]'s drop, out of line.
#[cold]
#[inline(never)]
fn left_unwinding(home: &RefCell<Frame>, prev: FramePtr, leave: Leave) {
    rethrow(uninstall(home, prev, leave));
}

impl fmt::Debug for Entered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entered")
            .field("leave", &self.leave)
            .finish()
    }
}

/// Step 1, for any owner of a frame: makes `frame` the current frame.
/// Returns the frame that was current, to give back to [`uninstall`]. When
/// the frame is resumed, [`resume`] comes next.
///
/// The frame that was current is now entered below it: its guards are told
/// (see `Shared::entered_on`), so that one dropped up here removes its item
/// at once. The current frame itself needs no mark: its guards find it as
/// the current frame. A task polled straight from its executor, with only
/// the thread's base frame below, so marks nothing: 2 instructions a poll
/// of a frame with a hook, and 8 a binding's `set` and drop, whose fast
/// path no longer checks a mark (benches/icount.sh).
///
/// The caller keeps `frame` in place and alive until it has called
/// [`uninstall`] on this thread (see `with_current`).
#[inline(always)]
pub(crate) fn install(frame: &RefCell<Frame>) -> FramePtr {
    let prev = current::replace(frame);
    if !prev.is_null() {
        // SAFETY: `prev` was the current frame: its owner keeps it alive
        // and in place until it is current again and leaves (see
        // `current_framed`), and it is used by this thread only.
        mark(unsafe { &*prev });
    }
    prev
}

/// Step 2, on `frame`, just installed: applies deferred removals and runs
/// `on_resume`. A frame with no hooks and no removals pending skips it (the
/// common case, kept to a check). Returns the panic of user code, if any.
#[inline]
pub(crate) fn resume(frame: &RefCell<Frame>) -> Option<Payload> {
    if has_registrations(frame) {
        return resume_current(frame);
    }
    None
}

/// Whether resuming or suspending `frame` has work to do (see
/// `Frame::has_registrations`).
#[inline]
pub(crate) fn has_registrations(frame: &RefCell<Frame>) -> bool {
    // SAFETY: no `RefMut` of a frame is ever held while code outside this
    // module runs (the protocol takes items out, releases the borrow, then
    // calls or drops them), and this module never calls here while holding
    // one; the shared reference is dropped before this returns. That spares
    // the poll path the borrow flag.
    unsafe { &*frame.as_ptr() }.has_registrations()
}

/// Step 2, on the current frame: applies deferred removals, then `on_resume`.
#[cold]
#[inline(never)]
pub(crate) fn resume_current(cell: &RefCell<Frame>) -> Option<Payload> {
    resume_hooks(cell)
}

/// [`resume_current`], inlined where a frame with hooks is polled.
#[inline(always)]
fn resume_hooks(cell: &RefCell<Frame>) -> Option<Payload> {
    #[cfg(not(spawn_hooks_mutant = "no_settle_on_resume"))]
    let settled = settle(cell);
    // Mutant: deferred removals are not applied on resume.
    #[cfg(spawn_hooks_mutant = "no_settle_on_resume")]
    let settled = None;
    let resumed = run_hooks(cell, Phase::Resume);
    settled.or(resumed)
}

/// Steps 4 and 5: leaves `frame`, the current frame (`on_yield`, or teardown
/// when it ends), and makes `prev` (from [`install`]) current again. When the
/// frame ends, what is left of it is dropped here, no longer current
/// (whatever a destructor bound in it during teardown can no longer be
/// observed), and the frame is left empty; a frame in which nothing was ever
/// bound or registered keeps its starting mapping, which its owner drops
/// with it. Returns the panic of user code, if any.
#[inline]
pub(crate) fn uninstall(frame: &RefCell<Frame>, prev: FramePtr, leave: Leave) -> Option<Payload> {
    uninstall_with(frame, prev, leave, false)
}

/// [`uninstall`], with the pass over the hooks of a suspending frame
/// inlined if `inline_hooks` (a constant where this is inlined).
#[inline(always)]
fn uninstall_with(
    frame: &RefCell<Frame>,
    prev: FramePtr,
    leave: Leave,
    inline_hooks: bool,
) -> Option<Payload> {
    // The extension read once for every check below: written as calls of
    // `has_registrations` and `unmark`, a poll of a frame with a binding
    // costs 3 instructions more (510.6 against 507.6, benches/icount.sh).
    // SAFETY: as in `has_registrations` (the reference is not used after
    // the checks).
    let f = unsafe { &*frame.as_ptr() };
    match f.ext.as_deref() {
        // Nothing registered, ever: only the swap, whether the frame
        // suspends or ends. An ending frame has nothing of its own to drop;
        // its starting mapping goes with its owner (dropping it here, under
        // a catch, measured 20 instructions of a `ctx::spawn` + join).
        None => {
            restore(prev);
            None
        }
        Some(ext) if leave == Leave::Suspend => {
            if ext.hooks.is_empty() && !ext.shared.pending.load(Ordering::Acquire) {
                // Nothing to yield (no hooks, no deferred removals): unmark
                // and swap.
                ext.shared.mark_left();
                restore(prev);
                return None;
            }
            if inline_hooks {
                suspend_hooks(frame, prev, start_yield(ext, &f.pass), &ext.shared)
            } else {
                suspend_registered(frame, prev, &ext.shared)
            }
        }
        Some(_) => end_registered(frame, prev),
    }
}

/// The last step of [`uninstall`]: makes `prev` current again.
#[inline]
fn restore(prev: FramePtr) {
    // Mutant: the thread's previous frame is lost, not restored.
    #[cfg(spawn_hooks_mutant = "skip_restore")]
    let prev = {
        let _ = prev;
        std::ptr::null()
    };
    current::set(prev);
}

/// Step 4 of a frame with hooks (or deferred removals), out of line:
/// `on_yield`, newest first, then the swap back; see [`suspend_hooks`].
#[inline(never)]
fn suspend_registered(frame: &RefCell<Frame>, prev: FramePtr, shared: &Shared) -> Option<Payload> {
    let first = with_frame(frame, |f| start_yield(f.ext.as_deref()?, &f.pass));
    suspend_hooks(frame, prev, first, shared)
}

/// Starts the pass of `on_yield` over the hooks of `ext`, the extension of
/// the frame being left, whose pass state is `pass`.
#[inline(always)]
fn start_yield(ext: &FrameExt, pass: &Pass) -> Option<Slots> {
    // Mutant: `on_yield` is skipped when the poll unwinds.
    #[cfg(spawn_hooks_mutant = "no_yield_on_unwind")]
    if std::thread::panicking() {
        return None;
    }
    ext.start_pass(pass)
}

/// [`suspend_registered`], inlined where a frame with hooks is polled, with
/// the pass already started by the caller (`first`, from [`start_yield`]).
/// (Not the extension itself: a reference passed in would be protected
/// for the whole call, while the hooks' callbacks may change the frame.
/// Its shared part, `shared`, which nothing borrows mutably and the
/// extension keeps alive, is unmarked through the reference, rather than
/// read from the frame again: 4 instructions a poll with a span guard, 1
/// with a hook that does nothing.)
#[inline(always)]
fn suspend_hooks(
    frame: &RefCell<Frame>,
    prev: FramePtr,
    first: Option<Slots>,
    shared: &Shared,
) -> Option<Payload> {
    let panic = run_hooks_from(frame, first, Phase::Yield);
    shared.mark_left();
    restore(prev);
    panic
}

/// Step 5 of a frame in which something was bound or registered: teardown,
/// with the frame still current, then the swap back; what is left of the
/// frame is dropped no longer current, and the frame is left empty.
#[cold]
#[inline(never)]
fn end_registered(frame: &RefCell<Frame>, prev: FramePtr) -> Option<Payload> {
    let mut panic = None;
    if frame.try_borrow().is_ok() {
        teardown(frame, &mut panic);
    }
    unmark(frame);
    restore(prev);
    // (Not while a pass calls the hooks, should a hook's callback end its
    // own frame: they are dropped with the frame's owner then.)
    if let Some(mut f) = frame.try_borrow_mut().ok().filter(|f| !f.in_pass()) {
        let mine = mem::take(&mut *f);
        drop(f);
        keep_first(&mut panic, catch(move || drop(mine)));
    }
    panic
}

/// Runs the hooks of the current frame for `phase`: `on_resume` oldest first,
/// `on_yield` newest first. The `entered` flag of each hook makes the two
/// strictly alternate, whatever hooks are added or removed by the callbacks.
/// A hook that panics is dropped when the pass ends; the others still run.
///
/// Each hook is called in place, with the frame not borrowed: during the
/// pass (`FrameExt::pass`) no slot moves and none is dropped (a removal
/// marks its slot gone, a registration waits aside), so the pointer taken
/// to a hook stays valid through its call, whatever the callback does.
///
/// The pass starts and ends without the frame's borrow flag (its flags are
/// cells; see `with_ext`); what is rare (a panic, hooks changed by a
/// callback) is out of line, and only that takes the borrow.
#[inline(always)]
fn run_hooks(cell: &RefCell<Frame>, phase: Phase) -> Option<Payload> {
    let first = with_frame(cell, Frame::start_pass);
    run_hooks_from(cell, first, phase)
}

/// [`run_hooks`], with the pass already started by the caller (`first`, as
/// `FrameExt::start_pass` returned it). Returns the panic of user code, if
/// any: a hook's panic waits in the frame until the pass ends (see
/// [`poison`]), so the common pass, which nothing changed, keeps no slot
/// for one and returns none (a slot on the stack, filled and checked both
/// ways, cost 11 instructions a poll with a hook, benches/icount.sh
/// `poll_rtext_hook_yield_now`).
#[inline(always)]
fn run_hooks_from(cell: &RefCell<Frame>, first: Option<Slots>, phase: Phase) -> Option<Payload> {
    let slots = first?;
    call_hooks(cell, slots, phase);
    if !with_frame(cell, Frame::end_pass) {
        return None;
    }
    pass_changed(cell, phase)
}

/// Calls the hooks of a pass that are due for `phase` (see [`run_hooks`]).
#[inline(always)]
fn call_hooks(cell: &RefCell<Frame>, slots: Slots, phase: Phase) {
    // The hooks that are due: entered ones yield, the others resume.
    let yielding = phase == Phase::Yield;
    let n = slots.len();
    for k in 0..n {
        // `on_resume` oldest first, `on_yield` newest first.
        let i = if yielding { n - 1 - k } else { k };
        // SAFETY: `i < n`, within the pass `slots` came from.
        let slot = unsafe { slots.get(i) };
        if !slot.flags.due(yielding) {
            continue;
        }
        let hook = slot.hook.as_ptr();
        // SAFETY: the hook of a slot of this pass, called in place, with
        // the frame not borrowed: the slot neither moves nor drops its
        // hook before the pass ends (see `Slots`), other code reaches
        // slots only through shared references meanwhile (which claim
        // nothing of a hook: it is in a cell), and nothing else calls the
        // hook: only a pass does, and a second pass does not start while
        // this one runs. Calling in place, rather than taking the hooks
        // out and putting them back, saved 78 instructions a poll with
        // one hook (benches/icount.sh, `poll_rtext_hook`), and walking
        // the slots without a borrow per hook 58 more.
        let called = catch(|| unsafe { hook.call(yielding) });
        match called {
            Ok(()) => slot.flags.called(),
            Err(p) => poison(cell, slot, p),
        }
    }
}

/// The end of a pass that changed the hooks (a hook panicked, or one was
/// removed or registered by a callback): applies the changes, then, while
/// callbacks keep registering hooks, passes over those. Returns the first
/// panic of user code, if any.
#[cold]
#[inline(never)]
fn pass_changed(cell: &RefCell<Frame>, phase: Phase) -> Option<Payload> {
    let mut panic = None;
    loop {
        keep_first(
            &mut panic,
            with_ext(cell, FrameExt::take_panic)
                .flatten()
                .map_or(Ok(()), Err),
        );
        // Hooks registered by a callback are entered: on the way out they
        // are due too (on the way in they are skipped).
        if !apply_pass(cell, &mut panic) {
            return panic;
        }
        let Some(slots) = with_frame(cell, Frame::start_pass) else {
            return panic;
        };
        call_hooks(cell, slots, phase);
        if !with_frame(cell, Frame::end_pass) {
            return panic;
        }
    }
}

/// A hook panicked during a pass: it is not called again, and dropped as it
/// is when the pass ends; its panic waits in the frame until then, unless
/// one is waiting already (a later panic is dropped, as when kept first).
#[cold]
#[inline(never)]
fn poison(cell: &RefCell<Frame>, slot: &HookSlot, p: Payload) {
    slot.flags.mark_poisoned();
    with_frame(cell, |f| f.pass.changed());
    let later = with_ext(cell, |ext| ext.keep_panic(p));
    // A later panic is dropped here, with the frame's extension no longer
    // referred to: its destructor is user code.
    drop(later);
}

/// The end of a pass during which the hooks changed: drops the hooks that
/// are gone, adds those registered meanwhile; returns whether any were.
#[cold]
#[inline(never)]
fn apply_pass(cell: &RefCell<Frame>, panic: &mut Option<Payload>) -> bool {
    let (gone, added) = cell.borrow_mut().apply_pass();
    for removed in gone {
        keep_first(panic, removed.finish());
    }
    added
}

/// Calls `f` with the frame, without the borrow flag: for the pass's own
/// bookkeeping, which runs no user code (`f` must not: the reference is not
/// to outlive it while a callback may borrow the frame).
#[inline(always)]
fn with_frame<R>(cell: &RefCell<Frame>, f: impl FnOnce(&Frame) -> R) -> R {
    // SAFETY: as in `has_registrations`: no `RefMut` of the frame is held
    // here (the pass's callers hold none, and hooks are called with the
    // frame not borrowed), and the shared reference ends with `f`, which
    // runs no user code. What `f` changes is in cells. Starting and ending
    // a pass this way, rather than through `borrow_mut`, with the rare
    // paths out of line: 665.6 -> 616.6 instructions a poll with one hook
    // (benches/icount.sh, `poll_rtext_hook`).
    f(unsafe { &*cell.as_ptr() })
}

/// [`with_frame`], with the frame's extension, if it has one.
#[inline(always)]
fn with_ext<R>(cell: &RefCell<Frame>, f: impl FnOnce(&FrameExt) -> R) -> Option<R> {
    with_frame(cell, |frame| frame.ext.as_deref().map(f))
}

/// Drops what is left in the current frame, newest hook first, then newest
/// binding first, with the frame still current so destructors see it.
fn teardown(cell: &RefCell<Frame>, panic: &mut Option<Payload>) {
    if let Some(p) = settle(cell) {
        panic.get_or_insert(p);
    }
    loop {
        let Some(item) = cell.borrow_mut().pop_item() else {
            break;
        };
        keep_first(panic, item.finish());
    }
    cell.borrow_mut().close();
}

/// Runs `f` in a new frame that starts from `mapping` and ends when `f`
/// returns or unwinds. Inlined, with `Snapshot::run`, where a request is
/// served in a frame: out of line since `install` checks the frame below,
/// `serve_frame` costs 283 instructions, against 264 (benches/icount.sh).
#[inline]
pub(crate) fn run_in<R>(mapping: Mapping, f: impl FnOnce() -> R) -> R {
    let home = RefCell::new(Frame::with_mapping(mapping));
    let entered = Entered::install(&home, Leave::End);
    let r = f();
    rethrow(entered.leave());
    r
}
