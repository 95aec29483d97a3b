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

use std::fmt;

use crate::frame::{self, Frame, Leave};
use crate::snapshot::Snapshot;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Not polled yet.
    New,
    /// Current on some thread, between `enter` and `leave`.
    Entered,
    /// Polled, and left.
    Suspended,
    /// Ended: nothing left.
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
/// on that thread unless it is left first.
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
pub struct TaskFrame {
    /// The task's frame; while entered, the thread's previous frame (they
    /// are swapped in place).
    frame: Frame,
    state: State,
}

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
        TaskFrame {
            frame: Frame::with_mapping(snapshot.into_mapping()),
            state: State::New,
        }
    }

    /// Whether the frame is current on the calling thread (between
    /// [`enter`](TaskFrame::enter) and [`leave`](TaskFrame::leave)).
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
        self.state == State::Entered
    }

    /// Before a poll: makes the frame current on this thread and, from the
    /// second poll on, applies deferred removals and runs the hooks'
    /// `on_resume`. Does nothing if already entered or ended, or if the
    /// thread's context is gone (the poll then runs unframed).
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
    pub fn enter(&mut self) -> Result<(), CaughtPanic> {
        if !matches!(self.state, State::New | State::Suspended) {
            return Ok(());
        }
        let mut panic = None;
        let resuming = self.state == State::Suspended;
        if frame::enter_in_place(&mut self.frame, resuming, &mut panic).is_err() {
            return Ok(());
        }
        self.state = State::Entered;
        panic.map_or(Ok(()), Err)
    }

    /// After a poll that did not end the task: runs the hooks' `on_yield` and
    /// makes the thread's previous frame current again. Does nothing if not
    /// entered.
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
    pub fn leave(&mut self) -> Result<(), CaughtPanic> {
        if self.state != State::Entered {
            return Ok(());
        }
        let mut panic = None;
        frame::swap_out(&mut self.frame, Leave::Suspend, &mut panic);
        self.state = State::Suspended;
        panic.map_or(Ok(()), Err)
    }

    /// When the task is done (completed, cancelled or dropped): drops what is
    /// left of its bindings and hooks with the frame current (a suspended
    /// frame is resumed first, so hooks are dropped entered), then restores
    /// the thread's previous frame. Works whether or not the frame is entered.
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
        match self.state {
            State::Ended => return Ok(()),
            State::Entered => {}
            State::New | State::Suspended => {
                let resuming = self.state == State::Suspended;
                if frame::enter_in_place(&mut self.frame, resuming, &mut panic).is_err() {
                    // Cannot be made current: drop it as it is.
                    self.state = State::Ended;
                    drop(std::mem::take(&mut self.frame));
                    return Ok(());
                }
            }
        }
        self.state = State::Ended;
        frame::swap_out(&mut self.frame, Leave::End, &mut panic);
        panic.map_or(Ok(()), Err)
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
        f.debug_struct("TaskFrame")
            .field("state", &self.state)
            .field("frame", &self.frame)
            .finish()
    }
}
