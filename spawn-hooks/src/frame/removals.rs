//! Removals by guards: the part of a frame guards reach from any thread
//! ([`Shared`]), the removal at once when the frame is entered on the
//! dropping thread, and the queue of removals deferred to the frame's next
//! resume or end, applied one at a time in drop order.

use std::cell::{RefCell, RefMut};
use std::fmt;

use super::current::{current_framed, thread_token, with_current};
use super::store::{Keep, Removed};
use super::{catch, keep_first, rethrow, Frame, FramePtr, Payload, Registered};
use crate::sync::{lock, Arc, AtomicBool, AtomicUsize, Mutex, Ordering};

/// What a guard reaches from any thread: where its frame is entered, and a
/// queue of removals the frame applies at its next resume or end (or the
/// next time it is read or bound in).
pub(crate) struct Shared {
    /// Whether `state` holds removals: read without the lock on every
    /// resume and suspend of the frame.
    pub(super) pending: AtomicBool,
    /// The [`thread_token`] of the thread on whose stack of entered frames
    /// the frame is, below the current one, or 0. A thread stores its own
    /// token here when it enters a frame above this one (see
    /// `protocol::install`), and stores 0 before it leaves this frame (or
    /// when the frame ends), so a thread that reads its own token knows that
    /// the frame is entered on it: alive, in place at `home`, and used by no
    /// other thread. (While the frame is current, its guards find it as the
    /// current frame; the mark then may or may not be there.) A thread's base
    /// frame keeps its token, once something is registered in it, until the
    /// thread's context is destroyed.
    pub(super) entered_on: AtomicUsize,
    /// The frame's address, fixed when its first binding or hook made this
    /// (the frame is current then, so in place until it ends; an ended frame
    /// is never marked entered again). Only read on the thread named by
    /// `entered_on`.
    home: usize,
    state: Mutex<SharedState>,
}

struct SharedState {
    /// The frame has ended: removals are moot.
    closed: bool,
    /// Ids, oldest first, each with what its guard handed over.
    removals: Vec<(u64, Option<Keep>)>,
}

impl Shared {
    /// The shared part of the frame at `home`, which is current (so in
    /// place until it ends).
    pub(super) fn new(home: FramePtr) -> Shared {
        Shared {
            pending: AtomicBool::new(false),
            entered_on: AtomicUsize::new(0),
            home: home as usize,
            state: Mutex::new(SharedState {
                closed: false,
                removals: Vec::new(),
            }),
        }
    }

    /// Queues the removal of `id` for the frame's next resume or end, with
    /// what its guard handed over. Returns that if the frame has ended (its
    /// items are dropped): the caller drops it, outside the lock.
    fn defer(&self, id: u64, keep: Option<Keep>) -> Option<Keep> {
        // Mutant: the flag is raised before the removal is queued.
        #[cfg(spawn_hooks_mutant = "pending_before_lock")]
        self.pending.store(true, Ordering::Release);
        let mut state = lock(&self.state);
        if state.closed {
            return keep;
        }
        state.removals.push((id, keep));
        #[cfg(not(spawn_hooks_mutant = "pending_before_lock"))]
        self.pending.store(true, Ordering::Release);
        None
    }

    /// Takes the oldest deferred removal; the flag is lowered with the last.
    pub(super) fn take_one(&self) -> Option<(u64, Option<Keep>)> {
        let mut state = lock(&self.state);
        if state.removals.is_empty() {
            // Mutant: the flag is lowered after the lock is released (a
            // removal deferred in between is then never seen).
            #[cfg(spawn_hooks_mutant = "clear_after_unlock")]
            drop(state);
            self.pending.store(false, Ordering::Release);
            return None;
        }
        let removal = state.removals.remove(0);
        if state.removals.is_empty() {
            self.pending.store(false, Ordering::Release);
        }
        Some(removal)
    }

    /// The ids of the deferred removals.
    pub(super) fn pending_ids(&self) -> Vec<u64> {
        lock(&self.state).removals.iter().map(|r| r.0).collect()
    }

    /// Says that the frame is entered on this thread (see `entered_on`).
    #[inline(always)]
    pub(super) fn mark_entered(&self) {
        self.entered_on.store(thread_token(), Ordering::Relaxed);
    }

    /// Says that the frame is entered on no thread, as it is left.
    #[inline(always)]
    pub(super) fn mark_left(&self) {
        self.entered_on.store(0, Ordering::Relaxed);
    }

    /// Whether the frame is entered on this thread (see `entered_on`).
    #[inline(always)]
    pub(super) fn entered_here(&self) -> bool {
        self.entered_on.load(Ordering::Relaxed) == thread_token()
    }

    /// Marks the frame ended. What guards handed over with the removals
    /// still queued is dropped after the lock is released: it may run user
    /// code, which may drop a guard of this frame.
    pub(super) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        let removals = std::mem::take(&mut state.removals);
        self.pending.store(false, Ordering::Release);
        self.mark_left();
        drop(state);
        drop(removals);
    }
}

/// Applies removals deferred by guards dropped away from their frame.
#[inline]
pub(super) fn settle(cell: &RefCell<Frame>) -> Option<Payload> {
    // The common case, inline: nothing deferred (checked without the
    // borrow flag, as `has_registrations` does).
    // SAFETY: as in `has_registrations`.
    if !unsafe { &*cell.as_ptr() }.has_pending() {
        return None;
    }
    settle_pending(cell)
}

/// Applies the deferred removals one at a time, in drop order: each item is
/// taken out and finished (user code runs) before the next is taken. Does
/// nothing while the frame is borrowed (a `with` callback reading it: the
/// removals wait until it returns).
#[cold]
#[inline(never)]
pub(super) fn settle_pending(cell: &RefCell<Frame>) -> Option<Payload> {
    match cell.try_borrow_mut() {
        Ok(mut frame) if !frame.settle_waits() => frame.set_settling(true),
        _ => return None,
    }
    let mut payload = None;
    // Mutant: every removal is applied before any removed item is finished.
    #[cfg(spawn_hooks_mutant = "settle_all_at_once")]
    {
        let mut all = Vec::new();
        loop {
            let next = cell.borrow_mut().take_one_pending();
            let Some(r) = next else { break };
            all.push(r);
        }
        for r in all {
            keep_first(&mut payload, r.finish());
        }
    }
    // Each item is finished without the borrow (user code runs); the frame
    // is borrowed by nobody else meanwhile but that code, which cannot
    // settle (see `settle_waits`), so `borrow_mut` cannot fail.
    loop {
        let next = cell.borrow_mut().take_one_pending();
        let Some(removed) = next else { break };
        keep_first(&mut payload, removed.finish());
    }
    cell.borrow_mut().set_settling(false);
    payload
}

/// Removes a binding or hook by identity: at once when its frame is entered
/// on this thread (the current frame, or one further down the thread's stack
/// of entered frames), otherwise at that frame's next resume or end (or the
/// next time it is read or bound in).
///
/// `keep`, given for a hook, is called where the hook's drop has to wait (see
/// `HookGuard::release_keeping`); what it returns is dropped after the hook.
#[inline]
fn release<K: FnOnce() -> Keep>(shared: &Arc<Shared>, id: u64, keep: Option<K>) {
    // The common cases: an item of the current frame; inline, the newest
    // binding, dropped trivially, or the newest hook. (A `keep` comes only
    // with a hook: the check for a binding is then left out, a constant.)
    if let Some(cell) = current_framed() {
        if let Ok(mut frame) = cell.try_borrow_mut() {
            if frame.owns(shared) {
                let f = &mut *frame;
                if let Some(ext) = f.ext.as_deref_mut() {
                    if keep.is_none() && ext.pop_trivial(id) {
                        return;
                    }
                    if ext.newest_hook_is(&f.pass, id) {
                        return drop_newest_hook(frame);
                    }
                }
                // During a pass a hook's drop waits for the pass's end: that
                // is the slow path's, which takes what `keep` hands over.
                if keep.is_none() || !frame.in_pass() {
                    return remove_current(frame, id);
                }
            }
        }
    }
    release_slow(shared, id, keep.map(|keep| keep()));
}

/// [`release`] of the newest hook of the current frame, borrowed as
/// `frame`, when it can be dropped at once (see `FrameExt::newest_hook_is`):
/// taken out, then dropped, entered, with the frame no longer borrowed. The
/// common removal of a hook, by its guard's drop in the frame that took it.
/// The general removal moves the slot three times, through `Removed`: this
/// path took `span_guard_enter` (benches/icount.sh) from 930 to 793
/// instructions.
#[inline(never)]
fn drop_newest_hook(mut frame: RefMut<'_, Frame>) {
    let hook = frame.pop_hook();
    drop(frame);
    rethrow(catch(move || drop(hook)).err());
}

/// [`release`] of an item of the current frame, borrowed as `frame`.
#[inline(never)]
fn remove_current(mut frame: RefMut<'_, Frame>, id: u64) {
    let removed = frame.remove(id);
    drop(frame);
    rethrow(removed.finish().err());
}

#[cold]
#[inline(never)]
fn release_slow(shared: &Arc<Shared>, id: u64, mut keep: Option<Keep>) {
    let removed = with_current(|cell| {
        let mut frame = cell.try_borrow_mut().ok()?;
        frame
            .owns(shared)
            .then(|| frame.remove_keeping(id, keep.take()))
    })
    .flatten()
    .or_else(|| remove_below(shared, id, &mut keep));
    match removed {
        Some(removed) => rethrow(removed.finish().err()),
        None => {
            if let Some(keep) = shared.defer(id, keep) {
                rethrow(Removed::Kept(keep).finish().err());
            }
        }
    }
}

/// [`release`] of an item whose frame is not the current one: removed at
/// once if the frame is entered further down this thread's stack.
#[cold]
fn remove_below(shared: &Arc<Shared>, id: u64, keep: &mut Option<Keep>) -> Option<Removed> {
    if !shared.entered_here() {
        return None;
    }
    // SAFETY: this thread stored its own token in `entered_on`, and stores 0
    // before it leaves the frame or the frame ends (`Shared::entered_on`):
    // the frame is entered on this thread, so its owner keeps it alive and
    // in place at `home` (as for the current frame: see `current_framed`),
    // and no other thread uses it. Only a shared reference is made; the
    // frame is reached through its `RefCell`.
    let cell = unsafe { &*(shared.home as FramePtr) };
    let mut frame = cell.try_borrow_mut().ok()?;
    frame
        .owns(shared)
        .then(|| frame.remove_keeping(id, keep.take()))
}

/// Tells the guards of `frame` (if it has any) that it is entered on this
/// thread, below the current frame. It is unmarked before it is left.
#[inline]
pub(super) fn mark(frame: &RefCell<Frame>) {
    // SAFETY: as in `has_registrations`.
    if let Some(ext) = unsafe { &*frame.as_ptr() }.ext.as_deref() {
        ext.shared.mark_entered();
    }
}

/// Undoes [`mark`], as `frame` is left.
#[inline]
pub(super) fn unmark(frame: &RefCell<Frame>) {
    // SAFETY: as in `has_registrations`.
    if let Some(ext) = unsafe { &*frame.as_ptr() }.ext.as_deref() {
        ext.shared.mark_left();
    }
}

/// What a `Binding` or `HookGuard` holds: the way back to its registration.
/// Dropping it removes the registration, by identity (see [`release`]).
pub(crate) struct Registration {
    frame: Option<Arc<Shared>>,
    id: u64,
}

impl Registration {
    pub(crate) fn new((frame, id): Registered) -> Registration {
        Registration {
            frame: Some(frame),
            id,
        }
    }
}

impl Registration {
    /// Removes the registration, as its drop does, with `keep` for where the
    /// hook's drop has to wait (see `HookGuard::release_keeping`).
    pub(crate) fn release_keeping(self, keep: impl FnOnce() -> Keep) {
        // Not dropped: this is its drop.
        let mut this = std::mem::ManuallyDrop::new(self);
        if let Some(frame) = this.frame.take() {
            release(&frame, this.id, Some(keep));
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            release(&frame, self.id, None::<fn() -> Keep>);
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}
