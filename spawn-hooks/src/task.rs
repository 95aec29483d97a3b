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
//! An executor that guarantees how its callbacks pair up can use
//! [`enter_paired`](TaskFrame::enter_paired) and
//! [`leave_paired`](TaskFrame::leave_paired) instead, which skip the checks.
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
    prev: FramePtr,
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
        }))
    }

    /// Whether the frame is entered (between [`enter`](TaskFrame::enter) or
    /// [`enter_paired`](TaskFrame::enter_paired) and [`leave`](TaskFrame::leave)
    /// or [`leave_paired`](TaskFrame::leave_paired)).
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
        self.0.is_entered()
    }

    /// Whether the frame of the `TaskFrame` at `this` is the current frame
    /// of the calling thread, found without making a reference to the
    /// `TaskFrame`: for an executor that must tell whether a callback runs
    /// inside the task's own poll while another thread may still be using
    /// the frame.
    ///
    /// # Safety
    ///
    /// `this` points to a live `TaskFrame`. Only its box pointer is read,
    /// which does not change while the `TaskFrame` lives (a frame that `end`
    /// leaks is swapped for a new box, but only through `&mut TaskFrame`).
    ///
    /// # Examples
    ///
    /// ```
    /// use spawn_hooks::{Snapshot, TaskFrame};
    ///
    /// let mut task = TaskFrame::new(Snapshot::empty());
    /// // SAFETY: `task` is alive.
    /// assert!(!unsafe { TaskFrame::is_current_at(&task) });
    /// task.enter().unwrap();
    /// // SAFETY: as above.
    /// assert!(unsafe { TaskFrame::is_current_at(&task) });
    /// task.leave().unwrap();
    /// ```
    #[inline]
    pub unsafe fn is_current_at(this: *const TaskFrame) -> bool {
        // SAFETY: the caller's contract; a `Box<Inner>` is a non-null
        // pointer to its `Inner`, read here as such (not as a second box).
        let inner = unsafe { ptr::addr_of!((*this).0).cast::<*const Inner>().read() };
        // SAFETY: `inner` points into the live box; only an address is made.
        frame::is_current_ptr(unsafe { ptr::addr_of!((*inner).frame) })
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
        // Current on this thread implies entered: only `enter`,
        // `enter_paired` and `end` install the frame, and only `leave`,
        // `leave_paired` and `end` remove it (an entered frame that `end`
        // cannot remove is leaked, never reused).
        if !frame::is_current(&this.frame) {
            return Ok(());
        }
        let prev = mem::replace(&mut this.prev, not_entered());
        if frame::has_registrations(&this.frame) {
            return frame::uninstall_slow(&this.frame, prev, Leave::Suspend).map_or(Ok(()), Err);
        }
        frame::restore(prev);
        Ok(())
    }

    /// [`enter`](TaskFrame::enter) without its check that the frame is not
    /// entered already, for an executor that guarantees it: a few
    /// instructions less per poll.
    ///
    /// # Safety
    ///
    /// The frame is not entered (by `enter` or `enter_paired`), on this
    /// thread or any other, and will be left with
    /// [`leave_paired`](TaskFrame::leave_paired) (or ended with
    /// [`end`](TaskFrame::end)) on this thread, frames entered after it on
    /// this thread being left first, before the `TaskFrame` is used on
    /// another thread. Task hooks such as tokio's before-poll and after-poll
    /// callbacks give these guarantees when the executor serializes them per
    /// task (tokio may start a task's next poll on another worker before the
    /// after-poll callback of the previous one has returned: the executor
    /// must make that poll wait).
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
    /// // SAFETY: not entered; left below, on this thread, nothing entered
    /// // between.
    /// unsafe { task.enter_paired() }.unwrap();
    /// assert_eq!(V.get(), Some(1));
    /// // SAFETY: entered above, on this thread.
    /// unsafe { task.leave_paired() }.unwrap();
    /// assert_eq!(V.get(), None);
    /// ```
    #[inline]
    pub unsafe fn enter_paired(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        debug_assert!(!this.is_entered(), "entered twice");
        this.prev = frame::install(&this.frame);
        // A frame not polled yet has nothing to resume: its first entry
        // skips the work as any frame without hooks does.
        if frame::has_registrations(&this.frame) {
            return frame::resume_current(&this.frame).map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// [`leave`](TaskFrame::leave) without its check that the frame is the
    /// current frame of this thread.
    ///
    /// # Safety
    ///
    /// The frame is the current frame of this thread: entered (with `enter`
    /// or `enter_paired`) on this thread, every frame entered after it left,
    /// and not ended since.
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
        let prev = mem::replace(&mut this.prev, not_entered());
        if frame::has_registrations(&this.frame) {
            return frame::uninstall_slow(&this.frame, prev, Leave::Suspend).map_or(Ok(()), Err);
        }
        frame::restore(prev);
        Ok(())
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
