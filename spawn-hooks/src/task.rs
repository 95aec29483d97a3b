//! `TaskFrame`: a frame driven by an executor's own poll callbacks.
//!
//! [`Framed`](crate::Framed) wraps a future and runs the poll protocol around
//! each of its polls. Some executors offer callbacks instead: one when a task
//! is spawned, one before and one after each poll, one when the task ends
//! (tokio's task hooks, for example). A `TaskFrame` lets such an executor give
//! every task a frame without wrapping its future: [`enter`](TaskFrame::enter)
//! before the poll, [`leave`](TaskFrame::leave) after it, [`end`](TaskFrame::end)
//! when the task is done. An executor whose callbacks get only a task id (and
//! may run the after-poll callback of one poll while the next poll of the
//! task starts on another thread, as tokio's do) keeps its frames in a
//! [`TaskTable`](crate::TaskTable) instead.
//!
//! None of these methods unwinds: a panic of a hook or of a destructor is
//! caught and returned, because they run inside the executor's own code.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr::{self, NonNull};

use crate::frame::{self, Frame, FramePtr, Leave};
use crate::lifecycle::Lifecycle;
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
/// # use spawn_hooks as rt_ext;
/// use rt_ext::{Snapshot, TaskFrame, Variable};
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
pub struct TaskFrame(Option<NonNull<Inner>>);

// SAFETY: a `TaskFrame` owns its `Inner` as a `Box` would (it is one, made
// into a pointer: see `TaskFrame::new`), and `Inner` is `Send`.
unsafe impl Send for TaskFrame {}

/// Boxed: while entered, the thread's current-frame pointer points into the
/// box, and the `TaskFrame` itself may move (a [`TaskTable`] keeps the box
/// pointer). One pointer wide, so an executor's table of frames stays small.
///
/// [`TaskTable`]: crate::TaskTable
pub(crate) struct Inner {
    /// The task's frame.
    frame: RefCell<Frame>,
    /// While entered: the frame that was current before, to restore.
    /// Otherwise [`not_entered`] or [`ended`]: the state lives in the same
    /// word, so a poll writes one word here, not a separate state byte.
    prev: Cell<FramePtr>,
    /// Under loom: touched by every entry and exit, so that a model reports
    /// two threads using the frame without the hand-over a `TaskTable`
    /// orders (the frame itself is in plain cells loom does not see).
    #[cfg(spawn_hooks_loom)]
    used: loom::cell::UnsafeCell<()>,
}

impl Inner {
    /// Records a use of the frame by this thread (under loom only).
    #[inline(always)]
    fn used(&self) {
        #[cfg(spawn_hooks_loom)]
        self.used.with_mut(|_| ());
    }
}

// SAFETY: `prev` is the only field that is not `Send`. It is never
// dereferenced here: it is only handed back to the thread-local it came from,
// by `leave` or `end` on the thread where this frame is current (they check
// that first, and do nothing else otherwise). The frame itself is `Send`.
unsafe impl Send for Inner {}

/// The result of [`Inner::end`].
pub(crate) enum Ended {
    /// Ended (or had ended before); the panic of a hook or destructor, if any.
    Done(Result<(), CaughtPanic>),
    /// Entered, but not the calling thread's current frame: it may still be
    /// current on some thread, and must be leaked, not freed.
    Stray,
}

impl Inner {
    fn new(snapshot: Snapshot) -> Box<Inner> {
        Box::new(Inner {
            frame: RefCell::new(Frame::with_mapping(snapshot.into_mapping())),
            prev: Cell::new(not_entered()),
            #[cfg(spawn_hooks_loom)]
            used: loom::cell::UnsafeCell::new(()),
        })
    }

    fn is_entered(&self) -> bool {
        let prev = self.prev.get();
        prev != not_entered() && prev != ended()
    }

    /// Before a poll (see [`TaskFrame::enter`]). The caller has the frame to
    /// itself: `&mut TaskFrame`, or a [`TaskTable`](crate::TaskTable) slot it
    /// owns.
    #[inline(always)]
    pub(crate) fn enter(&self) -> Result<(), CaughtPanic> {
        self.used();
        if self.prev.get() != not_entered() {
            // Entered already, or ended.
            return Ok(());
        }
        self.prev.set(frame::install(&self.frame));
        // A frame not polled yet has nothing to resume unless it was made
        // with an inherited hook, which is then resumed here.
        if frame::has_registrations(&self.frame) {
            return frame::resume_current(&self.frame).map_or(Ok(()), Err);
        }
        Ok(())
    }

    /// After a poll (see [`TaskFrame::leave`]); does nothing unless the frame
    /// is entered and the calling thread's current frame.
    #[inline]
    pub(crate) fn leave(&self) -> Result<(), CaughtPanic> {
        let prev = self.prev.get();
        // Entered (by `enter`: only `enter` and `end` install the frame, and
        // only `leave` and `end` remove it) and current on this thread.
        if prev == not_entered() || prev == ended() || !frame::is_current(&self.frame) {
            return Ok(());
        }
        self.leave_installed()
    }

    /// [`leave`](Inner::leave) of a frame known to be entered and the
    /// calling thread's current frame (a [`TaskTable`](crate::TaskTable)
    /// checked it).
    #[inline(always)]
    pub(crate) fn leave_installed(&self) -> Result<(), CaughtPanic> {
        self.used();
        let prev = self.prev.replace(not_entered());
        frame::uninstall(&self.frame, prev, Leave::Suspend).map_or(Ok(()), Err)
    }

    /// The address of the frame of the `Inner` at `inner`, which is what a
    /// thread's current-frame pointer holds while it is entered: computed,
    /// not read (the `Inner` may be gone).
    #[inline(always)]
    pub(crate) fn frame_ptr(inner: *const Inner) -> FramePtr {
        inner
            .wrapping_byte_add(std::mem::offset_of!(Inner, frame))
            .cast()
    }

    /// When the task is done (see [`TaskFrame::end`]).
    pub(crate) fn end(&self) -> Ended {
        self.used();
        let mut panic = None;
        let prev = match self.prev.get() {
            p if p == ended() => return Ended::Done(Ok(())),
            p if p == not_entered() => {
                let prev = frame::install(&self.frame);
                panic = frame::resume(&self.frame);
                prev
            }
            p if frame::is_current(&self.frame) => p,
            _ => return Ended::Stray,
        };
        self.prev.set(ended());
        let ended = frame::uninstall(&self.frame, prev, Leave::End);
        Ended::Done(panic.or(ended).map_or(Ok(()), Err))
    }
}

impl TaskFrame {
    /// A frame that starts from `snapshot`: normally the spawner's context,
    /// captured in the spawn callback on the spawning thread.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// let task = rt_ext::TaskFrame::new(rt_ext::Snapshot::capture());
    /// assert!(!task.is_entered());
    /// ```
    pub fn new(snapshot: Snapshot) -> TaskFrame {
        // Kept as a raw pointer, not a `Box`: the thread's current-frame
        // pointer points into the allocation while the frame is entered, and
        // moving a `Box` (the `TaskFrame` moves freely) would assert that
        // nothing else points into it, which the aliasing models (Stacked
        // and Tree Borrows) then hold against the current-frame pointer.
        TaskFrame(NonNull::new(Box::into_raw(Inner::new(snapshot))))
    }

    /// The frame's `Inner`: there until [`into_raw`](TaskFrame::into_raw)
    /// takes it, which consumes the `TaskFrame`, or `end` leaks it.
    #[inline]
    fn inner(&self) -> &Inner {
        let inner = self.0.expect("a TaskFrame keeps its frame until consumed");
        // SAFETY: the pointer of a live `Box<Inner>` (`new`), owned by this
        // `TaskFrame` until `into_raw` or `drop`, which take it out first;
        // only shared references are made (its mutable parts are cells).
        unsafe { inner.as_ref() }
    }

    /// A frame that starts from `snapshot` with `hook` registered in it,
    /// suspended: resumed at the frame's first entry, before anything the
    /// task registers, and dropped (entered) when the frame ends. What
    /// [`Inheritance::task_frame`](crate::Inheritance::task_frame) makes.
    pub(crate) fn with_hook<H: Lifecycle>(snapshot: Snapshot, hook: H) -> TaskFrame {
        let task = TaskFrame::new(snapshot);
        let frame = &task.inner().frame;
        // The frame is in its box, where it stays: its address is its home.
        frame.borrow_mut().add_suspended_hook(frame, hook);
        task
    }

    /// The frame's `Inner`, for a [`TaskTable`](crate::TaskTable) to keep:
    /// the pointer of a `Box<Inner>`, which the table owns from now on.
    pub(crate) fn into_raw(mut self) -> *mut Inner {
        self.0
            .take()
            .expect("a TaskFrame keeps its frame until consumed")
            .as_ptr()
    }

    /// Whether the frame is entered (between [`enter`](TaskFrame::enter)
    /// and [`leave`](TaskFrame::leave)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// let mut task = rt_ext::TaskFrame::new(rt_ext::Snapshot::empty());
    /// task.enter().unwrap();
    /// assert!(task.is_entered());
    /// task.leave().unwrap();
    /// assert!(!task.is_entered());
    /// ```
    pub fn is_entered(&self) -> bool {
        self.inner().is_entered()
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
    /// # use spawn_hooks as rt_ext;
    /// let mut task = rt_ext::TaskFrame::new(rt_ext::Snapshot::empty());
    /// task.enter().expect("no hook panicked");
    /// # task.leave().unwrap();
    /// ```
    #[inline]
    pub fn enter(&mut self) -> Result<(), CaughtPanic> {
        self.inner().enter()
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
    /// # use spawn_hooks as rt_ext;
    /// let mut task = rt_ext::TaskFrame::new(rt_ext::Snapshot::empty());
    /// task.enter().unwrap();
    /// task.leave().expect("no hook panicked");
    /// ```
    #[inline]
    pub fn leave(&mut self) -> Result<(), CaughtPanic> {
        self.inner().leave()
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
    /// # use spawn_hooks as rt_ext;
    /// let mut task = rt_ext::TaskFrame::new(rt_ext::Snapshot::empty());
    /// task.end().expect("nothing panicked");
    /// ```
    pub fn end(&mut self) -> Result<(), CaughtPanic> {
        if self.0.is_none() {
            return Ok(());
        }
        match self.inner().end() {
            Ended::Done(result) => result,
            Ended::Stray => {
                // Gone from this `TaskFrame`, never freed.
                self.0 = None;
                Ok(())
            }
        }
    }
}

impl Drop for TaskFrame {
    /// Ends the frame if the executor did not (a panic of a hook is dropped:
    /// there is nobody to give it to), then drops what is left of it (its
    /// starting mapping, which may hold the last reference to a value whose
    /// destructor panics: caught too).
    fn drop(&mut self) {
        let _ = self.end();
        if let Some(inner) = self.0.take() {
            // SAFETY: the pointer of a `Box<Inner>` this `TaskFrame` owned
            // (see `inner`), ended, so current on no thread; taken out, so
            // freed once.
            let inner = unsafe { Box::from_raw(inner.as_ptr()) };
            let _ = frame::catch(move || drop(inner));
        }
    }
}

impl fmt::Debug for TaskFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TaskFrame");
        if self.0.is_none() {
            return d.field("state", &"ended").finish();
        }
        let inner = self.inner();
        let state = match inner.prev.get() {
            p if p == not_entered() => "not entered",
            p if p == ended() => "ended",
            _ => "entered",
        };
        d.field("state", &state);
        // An entered frame may be current on another thread (if the
        // `TaskFrame` was moved there while entered): not read then.
        if !inner.is_entered() {
            d.field("frame", &inner.frame);
        }
        d.finish()
    }
}
