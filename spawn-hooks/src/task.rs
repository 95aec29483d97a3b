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
//! None of these methods unwinds: a panic of a hook or of a destructor is
//! caught and returned, because they run inside the executor's own code.

use std::cell::RefCell;
use std::fmt;
use std::mem;
use std::ptr;

use crate::frame::{self, Frame, FramePtr, Leave};
use crate::snapshot::Snapshot;

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
enum State {
    /// Not polled yet.
    New,
    /// Current on some thread, between `enter` and `leave`.
    Entered,
    /// Polled, and left.
    Suspended,
    /// Ended: nothing left.
    #[default]
    Ended,
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
/// Entering costs a thread-local pointer swap (and the `on_resume` calls of
/// its hooks, if any); leaving, the same.
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
#[derive(Default)]
struct Inner {
    /// The task's frame.
    frame: RefCell<Frame>,
    /// While entered: the frame that was current before, to restore.
    prev: FramePtr,
    state: State,
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
            prev: ptr::null(),
            state: State::New,
        }))
    }

    /// Whether the frame is entered (between [`enter`](TaskFrame::enter) and
    /// [`leave`](TaskFrame::leave)).
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
        self.0.state == State::Entered
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
        if this.state != State::Suspended {
            return self.enter_first();
        }
        this.state = State::Entered;
        this.prev = frame::install(&this.frame);
        if frame::has_registrations(&this.frame) {
            return frame::resume_current(&this.frame).map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// `enter` when the frame is not suspended: its first poll, or nothing.
    #[cold]
    #[inline(never)]
    fn enter_first(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        if this.state == State::New {
            this.state = State::Entered;
            this.prev = frame::install(&this.frame);
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
        if !frame::is_current(&this.frame) {
            return Ok(());
        }
        debug_assert_eq!(this.state, State::Entered);
        this.state = State::Suspended;
        if frame::has_registrations(&this.frame) {
            return frame::uninstall_slow(&this.frame, this.prev, Leave::Suspend)
                .map_or(Ok(()), Err);
        }
        frame::restore(this.prev);
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
        let mut panic = None;
        let this = &mut *self.0;
        match this.state {
            State::Ended => return Ok(()),
            State::Entered if frame::is_current(&this.frame) => {}
            State::Entered => {
                let stray = mem::replace(&mut self.0, Box::new(Inner::default()));
                Box::leak(stray);
                return Ok(());
            }
            State::New | State::Suspended => {
                this.prev = frame::install(&this.frame);
                if this.state == State::Suspended {
                    panic = frame::resume(&this.frame);
                }
            }
        }
        this.state = State::Ended;
        let ended = frame::uninstall(&this.frame, this.prev, Leave::End);
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
        d.field("state", &self.0.state);
        // An entered frame may be current on another thread (if the
        // `TaskFrame` was moved there while entered): not read then.
        if self.0.state != State::Entered {
            d.field("frame", &self.0.frame);
        }
        d.finish()
    }
}
