//! `TaskFrame`: a frame driven by an executor's own poll callbacks.
//!
//! [`Framed`](crate::Framed) wraps a future and runs the poll protocol around
//! each of its polls. Some executors offer callbacks instead: one when a task
//! is spawned, one before and one after each poll, one when the task ends
//! (tokio's task hooks, for example). A `TaskFrame` lets such an executor give
//! every task a frame without wrapping its future: [`enter`](TaskFrame::enter)
//! before the poll, [`leave`](TaskFrame::leave) after it, [`end`](TaskFrame::end)
//! when the task is done.
//!
//! An executor whose callbacks are guaranteed to pair up on the polling
//! thread (tokio's are) can use [`enter_paired`](TaskFrame::enter_paired)
//! and [`leave_paired`](TaskFrame::leave_paired) instead, which store nothing
//! to the heap before the poll.
//!
//! None of these methods unwinds: a panic of a hook or of a destructor is
//! caught and returned, because they run inside the executor's own code.

use std::cell::RefCell;
use std::fmt;
use std::mem;
use std::ptr;

use crate::frame::{self, Frame, FramePtr, Leave};
use crate::snapshot::Snapshot;

/// `Inner::prev` of a frame that is not entered (not polled yet, or left).
#[inline(always)]
fn not_entered() -> FramePtr {
    // Never the address of a frame (nor null, the base frame).
    ptr::null::<RefCell<Frame>>().wrapping_byte_add(8)
}

/// `Inner::prev` of a frame that has ended: nothing left.
#[inline(always)]
fn ended() -> FramePtr {
    ptr::null::<RefCell<Frame>>().wrapping_byte_add(16)
}

/// A panic caught inside the protocol: the payload of the first hook or
/// destructor that panicked.
pub type CaughtPanic = Box<dyn std::any::Any + Send + 'static>;

/// The frame of a task whose executor calls [`enter`](TaskFrame::enter) and
/// [`leave`](TaskFrame::leave) around each poll.
///
/// Between `enter` and `leave` the frame is the current frame of the calling
/// thread, exactly as for a [`Framed`](crate::Framed) future: bindings and
/// hooks made by the task belong to it, hooks resume on `enter` (from the
/// second poll on) and yield on `leave`. `enter` and `leave` must be called on
/// the same thread, in pairs, without another `TaskFrame` entered in between
/// on that thread unless it is left first. An executor that breaks this rule
/// gets wrong contexts, never undefined behaviour: `leave` only acts on the
/// calling thread's current frame, and a frame that may still be current
/// somewhere is leaked rather than freed.
///
/// Entering costs a thread-local pointer swap and a store of the previous
/// pointer into the task's frame (and the `on_resume` calls of its hooks, if
/// any); leaving, the same.
///
/// # Examples
///
/// ```
/// use spawn_hooks::{Snapshot, TaskFrame, Variable};
///
/// static V: Variable<u32> = Variable::new("v");
///
/// // The executor's spawn callback, on the spawning thread:
/// let mut task = V.sync_scope(1, || TaskFrame::new(Snapshot::capture()));
///
/// // Its before-poll and after-poll callbacks, around each poll:
/// task.enter().unwrap();
/// assert_eq!(V.get(), Some(1));
/// let binding = V.set(2); // made by the task, in its frame
/// task.leave().unwrap();
/// assert_eq!(V.get(), None); // the thread's own frame is back
///
/// task.enter().unwrap();
/// assert_eq!(V.get(), Some(2));
/// drop(binding);
/// task.leave().unwrap();
///
/// // Its termination callback:
/// task.end().unwrap();
/// ```
pub struct TaskFrame(Box<Inner>);

/// Boxed: while entered, the thread's current-frame pointer points into the
/// box, and the `TaskFrame` itself may move. One pointer wide, so an
/// executor's table of frames stays small.
struct Inner {
    /// The task's frame.
    frame: RefCell<Frame>,
    /// While entered: the frame that was current before, to restore.
    /// Otherwise [`not_entered`] or [`ended`]: the state lives in the same
    /// word, so a poll writes one word here, not a separate state byte (a
    /// byte store next to it measured several nanoseconds slower per poll).
    /// A frame entered with `enter_paired` keeps `not_entered()` here: its
    /// previous frame is kept by the thread (`frame::install_paired`).
    prev: FramePtr,
    /// While entered with `enter_paired` inside another frame so entered on
    /// the same thread: that frame's saved previous frame (what
    /// `frame::install_paired` returned). Otherwise `frame::NO_PAIR`.
    stash: FramePtr,
}

impl Inner {
    fn is_entered(&self) -> bool {
        self.prev != not_entered() && self.prev != ended()
    }
}

// SAFETY: `prev` is the only field that is not `Send`. It is never
// dereferenced here: it is only handed back to the thread-local it came from,
// by `leave` or `end` on the thread where this frame is current (they check
// that first, and do nothing else otherwise). The frame itself is `Send`.
unsafe impl Send for Inner {}

impl TaskFrame {
    /// A frame that starts from `snapshot`: normally the spawner's context,
    /// captured in the spawn callback on the spawning thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let task = spawn_hooks::TaskFrame::new(spawn_hooks::Snapshot::capture());
    /// assert!(!task.is_entered());
    /// ```
    pub fn new(snapshot: Snapshot) -> TaskFrame {
        TaskFrame(Box::new(Inner {
            frame: RefCell::new(Frame::with_mapping(snapshot.into_mapping())),
            prev: not_entered(),
            stash: frame::NO_PAIR,
        }))
    }

    /// Whether the frame is entered (between [`enter`](TaskFrame::enter) and
    /// [`leave`](TaskFrame::leave), or, on the calling thread, between
    /// [`enter_paired`](TaskFrame::enter_paired) and
    /// [`leave_paired`](TaskFrame::leave_paired)).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut task = spawn_hooks::TaskFrame::new(spawn_hooks::Snapshot::empty());
    /// task.enter().unwrap();
    /// assert!(task.is_entered());
    /// task.leave().unwrap();
    /// assert!(!task.is_entered());
    /// ```
    pub fn is_entered(&self) -> bool {
        self.0.is_entered() || frame::is_current(&self.0.frame)
    }

    /// Before a poll: makes the frame current on this thread and, from the
    /// second poll on, applies deferred removals and runs the hooks'
    /// `on_resume`. Does nothing if already entered or ended.
    ///
    /// # Errors
    ///
    /// Returns the panic of a hook, caught; the hook has been dropped and the
    /// frame is entered all the same.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut task = spawn_hooks::TaskFrame::new(spawn_hooks::Snapshot::empty());
    /// task.enter().expect("no hook panicked");
    /// # task.leave().unwrap();
    /// ```
    #[inline]
    pub fn enter(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        if this.prev != not_entered() {
            // Entered already, or ended.
            return Ok(());
        }
        this.prev = frame::install(&this.frame);
        // A frame not polled yet has nothing to resume: its first entry
        // skips the work as any frame without hooks does.
        if frame::has_registrations(&this.frame) {
            return frame::resume_current(&this.frame).map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// After a poll that did not end the task: runs the hooks' `on_yield` and
    /// makes the thread's previous frame current again. Does nothing if not
    /// entered, or if the frame is not the current frame of the calling
    /// thread (left out of order, or on another thread: see the type's docs).
    ///
    /// # Errors
    ///
    /// Returns the panic of a hook, caught; the hook has been dropped and the
    /// frame is left all the same.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut task = spawn_hooks::TaskFrame::new(spawn_hooks::Snapshot::empty());
    /// task.enter().unwrap();
    /// task.leave().expect("no hook panicked");
    /// ```
    #[inline]
    pub fn leave(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        // Current on this thread implies entered: only `enter` (and `end`)
        // install the frame, and only `leave` and `end` remove it (an
        // entered frame that `end` cannot remove is leaked, never reused).
        // Current on this thread and entered by `enter` (not
        // `enter_paired`): only `enter`, `enter_paired` and `end` install the
        // frame, and only `leave`, `leave_paired` and `end` remove it (an
        // entered frame that `end` cannot remove is leaked, never reused).
        if this.prev == not_entered() || !frame::is_current(&this.frame) {
            return Ok(());
        }
        let prev = mem::replace(&mut this.prev, not_entered());
        if frame::has_registrations(&this.frame) {
            return frame::uninstall_slow(&this.frame, prev, Leave::Suspend).map_or(Ok(()), Err);
        }
        frame::restore(prev);
        Ok(())
    }

    /// [`enter`](TaskFrame::enter) for an executor that guarantees how its
    /// callbacks pair up, at a lower cost per poll: the previous frame is
    /// kept in a thread-local instead of in the task's frame, so entering
    /// writes nothing to the heap (a heap store just before the poll measured
    /// several nanoseconds per poll, more than the rest of entering).
    ///
    /// # Safety
    ///
    /// `enter` can detect misuse because it marks the frame entered; this
    /// does not, so the caller guarantees what the mark would check. After
    /// this call and until [`leave_paired`](TaskFrame::leave_paired) (or
    /// [`end`](TaskFrame::end)) on this same thread:
    ///
    /// - the `TaskFrame` is not moved to, used on or dropped on another
    ///   thread;
    /// - it is not entered again (by `enter` or `enter_paired`);
    /// - other frames entered on this thread after it (with `enter` or
    ///   `enter_paired`) are left or ended first: entries nest.
    ///
    /// Task hooks such as tokio's before-poll and after-poll callbacks, which
    /// run on the polling thread around each poll, give these guarantees.
    ///
    /// Unlike `enter`, this does not check whether the frame has ended: an
    /// ended frame is entered empty (a poll after the end is the executor's
    /// bug, not a memory error).
    ///
    /// # Errors
    ///
    /// Returns the panic of a hook, caught, as `enter` does.
    ///
    /// # Examples
    ///
    /// ```
    /// use spawn_hooks::{Snapshot, TaskFrame, Variable};
    ///
    /// static V: Variable<u32> = Variable::new("v");
    ///
    /// let mut task = V.sync_scope(1, || TaskFrame::new(Snapshot::capture()));
    /// // SAFETY: left below, on this thread, with nothing entered between.
    /// unsafe { task.enter_paired() }.unwrap();
    /// assert_eq!(V.get(), Some(1));
    /// // SAFETY: entered above, on this thread.
    /// unsafe { task.leave_paired() }.unwrap();
    /// assert_eq!(V.get(), None);
    /// ```
    #[inline]
    pub unsafe fn enter_paired(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        let outer = frame::install_paired(&this.frame);
        if outer != frame::NO_PAIR {
            // Entered inside another frame entered this way: rare.
            this.stash = outer;
        }
        if frame::has_registrations(&this.frame) {
            return frame::resume_current(&this.frame).map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// [`leave`](TaskFrame::leave) for a frame entered with
    /// [`enter_paired`](TaskFrame::enter_paired).
    ///
    /// # Safety
    ///
    /// The frame is the current frame of this thread, entered with
    /// `enter_paired` on this thread (not with `enter`), and not ended since:
    /// every frame entered after it on this thread has been left. (After
    /// `end`, do not call this: `end` has left the frame.)
    ///
    /// # Errors
    ///
    /// Returns the panic of a hook, caught, as `leave` does.
    ///
    /// # Examples
    ///
    /// See [`enter_paired`](TaskFrame::enter_paired).
    #[inline]
    pub unsafe fn leave_paired(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        debug_assert!(
            frame::is_current(&this.frame),
            "left a frame that is not current"
        );
        if frame::has_registrations(&this.frame) {
            return self.leave_paired_slow();
        }
        // A store after the poll, unlike one before it, costs nothing
        // measurable: unconditional, it saves a branch.
        frame::restore_paired(mem::replace(&mut this.stash, frame::NO_PAIR));
        Ok(())
    }

    /// `leave_paired` of a frame with hooks or deferred removals.
    #[cold]
    #[inline(never)]
    fn leave_paired_slow(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        let prev = frame::take_paired(mem::replace(&mut this.stash, frame::NO_PAIR));
        frame::uninstall_slow(&this.frame, prev, Leave::Suspend).map_or(Ok(()), Err)
    }

    /// When the task is done (completed, cancelled or dropped): drops what is
    /// left of its bindings and hooks with the frame current (a suspended
    /// frame is resumed first, so hooks are dropped entered), then restores
    /// the thread's previous frame. Works whether or not the frame is entered.
    ///
    /// An entered frame that is not the calling thread's current frame (a
    /// misuse: see the type's docs) may still be current on some thread: it
    /// is then leaked as it is, never freed.
    ///
    /// # Errors
    ///
    /// Returns the first panic of a hook or destructor, caught.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut task = spawn_hooks::TaskFrame::new(spawn_hooks::Snapshot::empty());
    /// task.end().expect("nothing panicked");
    /// ```
    pub fn end(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        let mut panic = None;
        let prev = if this.prev == ended() {
            return Ok(());
        } else if this.prev == not_entered() && frame::is_current(&this.frame) {
            // Entered by `enter_paired`: its previous frame is kept by the thread.
            frame::take_paired(mem::replace(&mut this.stash, frame::NO_PAIR))
        } else if this.prev == not_entered() {
            let prev = frame::install(&this.frame);
            panic = frame::resume(&this.frame);
            prev
        } else if frame::is_current(&this.frame) {
            this.prev
        } else {
            let stray = mem::replace(
                &mut self.0,
                Box::new(Inner {
                    frame: RefCell::default(),
                    prev: ended(),
                    stash: frame::NO_PAIR,
                }),
            );
            Box::leak(stray);
            return Ok(());
        };
        this.prev = ended();
        let ended = frame::uninstall(&this.frame, prev, Leave::End);
        panic.or(ended).map_or(Ok(()), Err)
    }
}

impl Drop for TaskFrame {
    /// Ends the frame if the executor did not (a panic of a hook is dropped:
    /// there is nobody to give it to).
    fn drop(&mut self) {
        let _ = self.end();
    }
}

impl fmt::Debug for TaskFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TaskFrame");
        let state = match self.0.prev {
            p if p == not_entered() => "not entered",
            p if p == ended() => "ended",
            _ => "entered",
        };
        d.field("state", &state);
        // An entered frame may be current on another thread (if the
        // `TaskFrame` was moved there while entered): not read then.
        if !self.0.is_entered() {
            d.field("frame", &self.0.frame);
        }
        d.finish()
    }
}
