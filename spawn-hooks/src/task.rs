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
use crate::lifecycle::Lifecycle;
use crate::snapshot::Snapshot;
use crate::sync::{AtomicBool, Ordering};

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
    /// A paired entry keeps `not_entered()` here: its record is in a
    /// thread-local (`frame::paired_push`).
    prev: FramePtr,
    /// Set while a thread may still use the frame after its poll returned:
    /// from a paired entry of a frame that has (or gains) hooks, until the
    /// end of its `leave_paired`. An executor may start the next poll on
    /// another thread before that leave has returned (tokio does): the next
    /// poll waits for this to clear ([`TaskFrame::wait_unclaimed`]). A frame
    /// without hooks is never claimed: its `leave_paired` reads nothing but
    /// thread-locals.
    claimed: AtomicBool,
}

/// Claims the task frame whose frame is at `frame` (see `Inner::claimed`).
///
/// # Safety
///
/// `frame` is the frame of a live `TaskFrame`.
unsafe fn claim(frame: FramePtr) {
    // SAFETY: the caller's contract; `frame` is the `frame` field of an
    // `Inner`, from which its `claimed` field is reached.
    unsafe { &*claim_word(frame) }.store(true, Ordering::Relaxed);
}

/// The claim word of the task frame whose frame is at `frame`.
fn claim_word(frame: FramePtr) -> *const AtomicBool {
    frame
        .cast::<u8>()
        .wrapping_sub(mem::offset_of!(Inner, frame))
        .wrapping_add(mem::offset_of!(Inner, claimed))
        .cast::<AtomicBool>()
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
    /// # use spawn_hooks as rt_ext;
    /// let task = rt_ext::TaskFrame::new(rt_ext::Snapshot::capture());
    /// assert!(!task.is_entered());
    /// ```
    pub fn new(snapshot: Snapshot) -> TaskFrame {
        TaskFrame(Box::new(Inner {
            frame: RefCell::new(Frame::with_mapping(snapshot.into_mapping())),
            prev: not_entered(),
            claimed: AtomicBool::new(false),
        }))
    }

    /// A frame that starts from `snapshot` with `hook` registered in it,
    /// suspended: resumed at the frame's first entry, before anything the
    /// task registers, and dropped (entered) when the frame ends. What
    /// [`Inheritance::task_frame`](crate::Inheritance::task_frame) makes.
    pub(crate) fn with_hook(snapshot: Snapshot, hook: Box<dyn Lifecycle>) -> TaskFrame {
        let task = TaskFrame::new(snapshot);
        let frame = &task.0.frame;
        // The frame is in its box, where it stays: its address is its home.
        frame.borrow_mut().add_suspended_hook(frame, hook);
        task
    }

    /// Whether the frame is entered (between [`enter`](TaskFrame::enter) or
    /// [`enter_paired`](TaskFrame::enter_paired) and [`leave`](TaskFrame::leave)
    /// or [`leave_paired`](TaskFrame::leave_paired)).
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
        self.0.is_entered() || frame::paired_of(&self.0.frame).is_some()
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
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::{Snapshot, TaskFrame};
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
        // SAFETY: the caller's contract.
        let inner = unsafe { inner_at(this) };
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
    /// # use spawn_hooks as rt_ext;
    /// let mut task = rt_ext::TaskFrame::new(rt_ext::Snapshot::empty());
    /// task.enter().expect("no hook panicked");
    /// # task.leave().unwrap();
    /// ```
    #[inline]
    pub fn enter(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        if this.prev != not_entered() || frame::paired_of(&this.frame).is_some() {
            // Entered already (with `enter` or `enter_paired`), or ended.
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
    /// # use spawn_hooks as rt_ext;
    /// let mut task = rt_ext::TaskFrame::new(rt_ext::Snapshot::empty());
    /// task.enter().unwrap();
    /// task.leave().expect("no hook panicked");
    /// ```
    #[inline]
    pub fn leave(&mut self) -> Result<(), CaughtPanic> {
        let this = &mut *self.0;
        // Entered with `enter` (a paired entry keeps `not_entered()`, and is
        // left with `leave_paired`) and current on this thread: only `enter`,
        // `enter_paired` and `end` install the frame, and only `leave`,
        // `leave_paired` and `end` remove it (an entered frame that `end`
        // cannot remove is leaked, never reused).
        if this.prev == not_entered() || !frame::is_current(&this.frame) {
            return Ok(());
        }
        let prev = mem::replace(&mut this.prev, not_entered());
        frame::uninstall(&this.frame, prev, Leave::Suspend).map_or(Ok(()), Err)
    }

    /// Before a poll, for an executor that calls its after-poll callback on
    /// the polling thread but possibly after the task could already be
    /// polled again elsewhere (tokio does): waits until no thread is still
    /// in a `leave_paired` of the frame, makes it current and records the
    /// entry, with the executor's `tag` (a task id), in a thread-local, so
    /// that entering stores nothing to the heap (a store to the heap just
    /// before the poll measured several nanoseconds per poll). From the
    /// second poll on, hooks resume as with `enter`; a frame that has hooks
    /// is then claimed until [`leave_paired`](TaskFrame::leave_paired) has
    /// finished with it. Takes the `TaskFrame` by address: no reference to it
    /// is made before the wait.
    ///
    /// # Safety
    ///
    /// - `this` points to a live `TaskFrame` that is not entered, and no
    ///   thread but one in its `leave_paired` uses it.
    /// - [`leave_paired`](TaskFrame::leave_paired) with the same `tag`, or
    ///   [`end`](TaskFrame::end), follows on this thread, after every entry
    ///   made on this thread since has been left; the `TaskFrame` is not
    ///   used on another thread before then (except by `wait_unclaimed` and
    ///   `is_claimed`).
    /// - `tag` is not 0, and tells this entry apart from any other paired
    ///   entry open on the thread.
    /// - Between the return of the poll and `leave_paired`, no code on this
    ///   thread reads the context unless the entry was claimed with
    ///   [`claim_paired`](TaskFrame::claim_paired): another thread may
    ///   already be polling or ending an unclaimed frame then.
    ///
    /// # Errors
    ///
    /// Returns the panic of a hook, caught, as `enter` does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::{Snapshot, TaskFrame, Variable};
    ///
    /// static V: Variable<u32> = Variable::new("v");
    ///
    /// let task = V.sync_scope(1, || TaskFrame::new(Snapshot::capture()));
    /// // SAFETY: alive, not entered, used by nobody else; left below, on
    /// // this thread, nothing entered between.
    /// unsafe { TaskFrame::enter_paired(&task, 7) }.unwrap();
    /// assert_eq!(V.get(), Some(1));
    /// // SAFETY: entered above with tag 7, on this thread.
    /// unsafe { TaskFrame::leave_paired(7) }.unwrap();
    /// assert_eq!(V.get(), None);
    /// ```
    #[inline(always)]
    pub unsafe fn enter_paired(this: *const TaskFrame, tag: u64) -> Result<(), CaughtPanic> {
        // SAFETY: the caller's contract. Everything below goes through a
        // shared reference to the `Inner` (its mutable parts are cells and
        // atomics).
        let inner = unsafe { &*inner_at(this) };
        if inner.claimed.load(Ordering::Acquire) {
            return enter_paired_after_wait(inner, tag);
        }
        enter_paired_now(inner, tag)
    }

    /// Claims the frame of this thread's innermost paired entry until its
    /// [`leave_paired`](TaskFrame::leave_paired), as a frame with hooks is:
    /// for an executor that runs code reading the context between the
    /// return of the poll and `leave_paired` (a user's after-poll callback
    /// run inside the task's frame), which the next poll of the task on
    /// another thread, or its end there, must then wait for. Does nothing
    /// without a paired entry.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::{Snapshot, TaskFrame};
    ///
    /// let task = TaskFrame::new(Snapshot::empty());
    /// // SAFETY: alive, not entered, used by nobody else; left below.
    /// unsafe { TaskFrame::enter_paired(&task, 1) }.unwrap();
    /// TaskFrame::claim_paired();
    /// // SAFETY: `task` is alive.
    /// assert!(unsafe { TaskFrame::is_claimed(&task) });
    /// // SAFETY: entered above with tag 1, on this thread.
    /// unsafe { TaskFrame::leave_paired(1) }.unwrap();
    /// // SAFETY: as above.
    /// assert!(!unsafe { TaskFrame::is_claimed(&task) });
    /// ```
    #[inline]
    pub fn claim_paired() {
        if let Some(entry) = frame::paired_of(frame::current_ptr()) {
            if entry.flags & frame::CLAIMED == 0 {
                // SAFETY: the innermost paired entry's frame is a live
                // `TaskFrame`'s, entered on this thread.
                unsafe { claim(entry.frame) };
                frame::paired_set_claimed();
                // Claimed, it is left through `uninstall_slow`, which
                // unmarks it: its guards may now find it entered here.
                // SAFETY: as above; the frame is alive and in place.
                frame::mark(unsafe { &*entry.frame });
            }
        }
    }

    /// After a poll: leaves the innermost paired entry of this thread if it
    /// has `tag` (a task that ended in its poll has none left): its hooks
    /// yield, the previous frame becomes current again, and a claimed frame
    /// is released last. An entry whose frame has no hooks is left without
    /// reading the frame at all, so another thread may already be polling
    /// or ending it.
    ///
    /// # Safety
    ///
    /// The entry with `tag` was made on this thread with `enter_paired`, and
    /// every entry made on this thread after it has been left.
    ///
    /// # Errors
    ///
    /// Returns the panic of a hook, caught, as `leave` does.
    ///
    /// # Examples
    ///
    /// See [`enter_paired`](TaskFrame::enter_paired).
    #[inline]
    pub unsafe fn leave_paired(tag: u64) -> Result<(), CaughtPanic> {
        let Some(entry) = frame::paired_top(tag) else {
            return Ok(());
        };
        debug_assert!(
            frame::is_current_ptr(entry.frame),
            "left a frame that is not current"
        );
        if entry.flags != 0 {
            // SAFETY: the caller's contract.
            return unsafe { leave_paired_slow() };
        }
        frame::paired_leave_plain(entry);
        Ok(())
    }

    /// Waits until no thread is still in a `leave_paired` of the frame of
    /// the `TaskFrame` at `this` (spinning briefly, then yielding). Makes no
    /// reference to the `TaskFrame`.
    ///
    /// # Safety
    ///
    /// `this` points to a live `TaskFrame`.
    ///
    /// # Examples
    ///
    /// See [`enter_paired`](TaskFrame::enter_paired).
    #[inline]
    pub unsafe fn wait_unclaimed(this: *const TaskFrame) {
        // SAFETY: the caller's contract.
        let claimed = unsafe { TaskFrame::claim_of(this) };
        if claimed.load(Ordering::Acquire) {
            wait_released(claimed);
        }
    }

    /// Whether a thread is still in a `leave_paired` of the frame of the
    /// `TaskFrame` at `this` (see [`wait_unclaimed`](TaskFrame::wait_unclaimed)).
    ///
    /// # Safety
    ///
    /// `this` points to a live `TaskFrame`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// let task = rt_ext::TaskFrame::new(rt_ext::Snapshot::empty());
    /// // SAFETY: `task` is alive.
    /// assert!(!unsafe { rt_ext::TaskFrame::is_claimed(&task) });
    /// ```
    #[inline]
    pub unsafe fn is_claimed(this: *const TaskFrame) -> bool {
        // SAFETY: the caller's contract.
        unsafe { TaskFrame::claim_of(this) }.load(Ordering::Acquire)
    }

    /// The claim word of the `TaskFrame` at `this`, without a reference to
    /// the `TaskFrame`.
    ///
    /// # Safety
    ///
    /// `this` points to a live `TaskFrame`; the word lives as long as it.
    #[inline]
    unsafe fn claim_of<'a>(this: *const TaskFrame) -> &'a AtomicBool {
        // SAFETY: the caller's contract.
        let inner = unsafe { inner_at(this) };
        // SAFETY: `inner` points into the live box; the word is atomic.
        unsafe { &*ptr::addr_of!((*inner).claimed) }
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
        let this = &mut *self.0;
        let mut panic = None;
        let mut release = false;
        let prev = if this.prev == ended() {
            return Ok(());
        } else if let Some(entry) = frame::paired_of(&this.frame) {
            // Entered with `enter_paired` on this thread (a task that ends
            // in its poll): its record goes, its claim after the teardown.
            frame::paired_pop();
            release = entry.flags & frame::CLAIMED != 0;
            entry.prev
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
                    claimed: AtomicBool::new(false),
                }),
            );
            Box::leak(stray);
            return Ok(());
        };
        this.prev = ended();
        let ended = frame::uninstall(&this.frame, prev, Leave::End);
        if release {
            this.claimed.store(false, Ordering::Release);
        }
        panic.or(ended).map_or(Ok(()), Err)
    }
}

/// The `Inner` of the `TaskFrame` at `this`, without a reference to the
/// `TaskFrame` (another thread may still be leaving its frame).
///
/// # Safety
///
/// `this` points to a live `TaskFrame`.
#[inline(always)]
unsafe fn inner_at(this: *const TaskFrame) -> *const Inner {
    // SAFETY: the caller's contract; a `Box<Inner>` is a non-null pointer to
    // its `Inner`, read here as such (not as a second box). The box pointer
    // does not change while the `TaskFrame` lives but through `&mut`.
    unsafe { ptr::addr_of!((*this).0).cast::<*const Inner>().read() }
}

/// `enter_paired` once the frame is not claimed.
#[inline(always)]
fn enter_paired_now(inner: &Inner, tag: u64) -> Result<(), CaughtPanic> {
    debug_assert!(!inner.is_entered(), "entered twice");
    let prev = frame::install_unmarked(&inner.frame);
    frame::paired_push(&inner.frame, prev, tag);
    // A frame not polled yet has nothing to resume: its first entry skips
    // the work as any frame without hooks does.
    if frame::has_registrations(&inner.frame) {
        return resume_paired(inner);
    }
    Ok(())
}

/// `enter_paired` of a frame that another thread is still leaving.
#[cold]
#[inline(never)]
fn enter_paired_after_wait(inner: &Inner, tag: u64) -> Result<(), CaughtPanic> {
    wait_released(&inner.claimed);
    enter_paired_now(inner, tag)
}

/// `enter_paired` of a frame with hooks or deferred removals.
#[cold]
#[inline(never)]
fn resume_paired(inner: &Inner) -> Result<(), CaughtPanic> {
    let resumed = frame::resume_current(&inner.frame);
    if frame::has_hooks(&inner.frame) {
        TaskFrame::claim_paired();
    }
    resumed.map_or(Ok(()), Err)
}

/// `leave_paired` of an entry that is claimed or pushed another aside (its
/// record is the innermost): hooks yield, the record goes, and the claim is
/// released last, the last use of the frame.
///
/// # Safety
///
/// As for `leave_paired`, whose checks found the entry.
#[cold]
#[inline(never)]
unsafe fn leave_paired_slow() -> Result<(), CaughtPanic> {
    let Some(entry) = frame::paired_of(frame::current_ptr()) else {
        return Ok(());
    };
    let claimed = entry.flags & frame::CLAIMED != 0;
    let yielded = if claimed {
        // SAFETY: claimed, the frame stays alive and unused elsewhere until
        // released below.
        frame::uninstall_slow(unsafe { &*entry.frame }, entry.prev, Leave::Suspend)
    } else {
        frame::restore(entry.prev);
        None
    };
    frame::paired_pop();
    if claimed {
        // SAFETY: as above.
        unsafe { &*claim_word(entry.frame) }.store(false, Ordering::Release);
    }
    yielded.map_or(Ok(()), Err)
}

#[cold]
#[inline(never)]
fn wait_released(claimed: &AtomicBool) {
    let mut spins = 0u32;
    while claimed.load(Ordering::Acquire) {
        if spins < 100 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
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
