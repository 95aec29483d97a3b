//! `Framed`: a future that runs in its own frame.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::frame::{self, Entered, Frame, Leave};
use crate::mapping::{Mapping, Value};

/// How far a framed future has got.
enum State {
    /// Not polled yet: the frame holds the mapping it was created with.
    Given,
    /// Polled at least once, not finished.
    Suspended,
    /// Finished (or its first poll never came and it was dropped).
    Done,
}

pin_project! {
    /// A future running in its own frame: bindings made and hooks registered
    /// while it runs belong to it, its hooks run when it suspends and
    /// resumes, and none of it is visible to the code that polls it.
    ///
    /// Made by [`FutureExt::frame`], [`Variable::scope`](crate::Variable::scope)
    /// and [`Snapshot::scope`](crate::Snapshot::scope). When dropped while
    /// suspended (cancelled), the frame is resumed while the inner future is
    /// dropped, so its destructors see its context and its hooks are dropped
    /// entered.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::{FutureExt, Variable};
    ///
    /// static V: Variable<u8> = Variable::new("v");
    /// # futures::executor::block_on(async {
    /// let inner = async {
    ///     let _b = V.set(1);
    ///     V.get()
    /// }
    /// .frame();
    /// assert_eq!(inner.await, Some(1));
    /// assert_eq!(V.get(), None);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Framed<F> {
        #[pin]
        future: Option<F>,
        // In a cell: while a poll runs, the thread's current-frame pointer
        // points here (the future is pinned, and borrowed for the poll).
        frame: RefCell<Frame>,
        state: State,
    }

    impl<F> PinnedDrop for Framed<F> {
        fn drop(this: Pin<&mut Self>) {
            let mut this = this.project();
            if this.future.is_none() {
                drop_leftovers(this.frame);
                return;
            }
            // Mutant: a cancelled frame is not entered; its future drops outside it.
            #[cfg(spawn_hooks_mutant = "cancel_unentered")]
            if matches!(this.state, State::Suspended) {
                return;
            }
            let resuming = match mem::replace(this.state, State::Done) {
                State::Suspended => true,
                State::Given => false,
                State::Done => return,
            };
            let entered = Entered::install(this.frame, Leave::End);
            let resumed = if resuming { entered.resume() } else { None };
            this.future.set(None);
            let left = entered.leave();
            frame::rethrow(resumed.or(left));
            drop_leftovers(this.frame);
        }
    }
}

/// What an ended frame in which nothing was registered keeps (its starting
/// mapping, dropped with its owner rather than at its end: see
/// `frame::uninstall`). Dropped with the `Framed` as any field would be,
/// except while the thread unwinds: a value's destructor that panics then
/// would abort the process, so the drop is made here, its panic discarded.
#[inline]
fn drop_leftovers(frame: &mut RefCell<Frame>) {
    if std::thread::panicking() {
        drop_leftovers_while_unwinding(frame);
    }
}

#[cold]
#[inline(never)]
fn drop_leftovers_while_unwinding(frame: &mut RefCell<Frame>) {
    let left = mem::take(frame.get_mut());
    let _ = frame::catch(move || drop(left));
}

impl<F> Framed<F> {
    fn new(fut: F, frame: Frame, state: State) -> Framed<F> {
        Framed {
            future: Some(fut),
            frame: RefCell::new(frame),
            state,
        }
    }

    /// A frame that starts from the context current here, at its creation
    /// (TC39: a generator or async callback runs in the context of its
    /// creation), not where it is first polled. Inlined: where a frame is
    /// made and polled at once, out of line it cost 23 instructions
    /// (benches/icount.sh, `frame_run` 165 against 142).
    #[inline]
    pub(crate) fn inherit(fut: F) -> Framed<F> {
        Framed::given(frame::current_mapping(), fut)
    }

    /// [`Framed::inherit`] plus one binding.
    pub(crate) fn inherit_with(id: u64, value: Value, fut: F) -> Framed<F> {
        Framed::given(frame::current_mapping().with(id, value), fut)
    }

    pub(crate) fn given(mapping: Mapping, fut: F) -> Framed<F> {
        Framed::new(fut, Frame::with_mapping(mapping), State::Given)
    }

    pub(crate) fn isolated(fut: F) -> Framed<F> {
        Framed::new(fut, Frame::isolated(), State::Given)
    }

    /// The inner future, if it has not finished.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::FutureExt;
    /// let framed = std::future::ready(3).frame();
    /// assert!(framed.get_ref().is_some());
    /// ```
    pub fn get_ref(&self) -> Option<&F> {
        self.future.as_ref()
    }
}

impl<F: Future> Future for Framed<F> {
    type Output = F::Output;

    // Inlined into the executor's poll (tokio's `Core::poll`), which then
    // saves and restores registers once: 446.6 -> 429.6 instructions per
    // poll of a task (benches/icount.sh, `poll_rtext`; tokio alone, 400.6).
    #[inline(always)]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.as_mut().project();
        if !matches!(this.state, State::Suspended) {
            // The first poll (or one after completion, which panics): the
            // frame holds nothing yet, so it takes the common poll below
            // (were it to hold hooks, they would be resumed, as on any
            // entry).
            first_poll(this.state);
        }
        // The common poll: a suspended frame with nothing to resume.
        if !frame::has_registrations(this.frame) {
            return poll_entered(this.future, this.frame, this.state, cx, false);
        }
        poll_resuming(self, cx)
    }
}

/// Steps 1 to 5: enters `frame`, polls the inner future in it and leaves
/// it, with the passes over the hooks inlined if `hooks` (a constant where
/// this is inlined).
///
/// The panic of a hook on the way in, if any, goes on from here, as if the
/// future had panicked (unwinding drops `entered`: the frame is left, the
/// other hooks yield); but when the thread is already unwinding (polled
/// from a destructor), a second panic would abort the process: the panic is
/// discarded, and the poll goes on without the hook, which is gone.
#[inline(always)]
fn poll_entered<F: Future>(
    mut future: Pin<&mut Option<F>>,
    frame: &RefCell<Frame>,
    state: &mut State,
    cx: &mut Context<'_>,
    hooks: bool,
) -> Poll<F::Output> {
    let mut entered = Entered::install(frame, Leave::Suspend);
    if hooks {
        frame::rethrow(entered.resume_inline());
    }
    let Some(fut) = future.as_mut().as_pin_mut() else {
        unreachable!("a suspended frame has its future")
    };
    let poll = fut.poll(cx);
    if poll.is_ready() {
        // Drop what the future still owns while its frame is current; the
        // frame ends even if that destructor panics.
        *state = State::Done;
        entered.ending();
        future.set(None);
        frame::rethrow(entered.leave());
        return poll;
    }
    // Suspending: known here, not read back from the guard.
    let left = if hooks {
        entered.suspend_hooks()
    } else {
        entered.suspend()
    };
    frame::rethrow(left);
    poll
}

/// A poll of a suspended frame with work to do on the way in: hooks to
/// resume, or removals deferred by guards dropped elsewhere. Out of line, so
/// that the common poll inlined into the executor stays small, with the
/// passes over the hooks both ways inlined here: one function saves the
/// registers for the poll and its hooks. With the first poll's own work
/// out of line too (`first_poll`): `poll_rtext_hook` 616.6 -> 600.6
/// instructions, `spawn_rtext` 2,212.8 -> 2,181.8, `frame_run` 168 -> 137
/// (benches/icount.sh).
#[inline(never)]
fn poll_resuming<F: Future>(framed: Pin<&mut Framed<F>>, cx: &mut Context<'_>) -> Poll<F::Output> {
    let this = framed.project();
    poll_entered(this.future, this.frame, this.state, cx, true)
}

/// Marks the frame suspended at its first poll; panics if it is done.
#[cold]
#[inline(never)]
fn first_poll(state: &mut State) {
    if matches!(state, State::Done) {
        polled_after_completion();
    }
    *state = State::Suspended;
}

#[cold]
#[track_caller]
fn polled_after_completion() -> ! {
    panic!("`Framed` polled after completion")
}

impl<F> fmt::Debug for Framed<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Given => "new",
            State::Suspended => "suspended",
            State::Done => "done",
        };
        f.debug_struct("Framed")
            .field("state", &state)
            .field("frame", &self.frame)
            .finish()
    }
}

/// Runs `executor`, a future that polls other tasks inside its own poll (an
/// executor nested in a task, such as tokio's `LocalSet`), in a frame that
/// behaves like a runtime thread's base frame: empty, and refusing bindings
/// and hooks.
///
/// Tasks the executor polls without frames of their own then see what
/// unframed tasks see anywhere else: nothing of the caller's context, and no
/// way to bind into it (a binding there would be shared by all of them).
/// Tasks that have their own frame (spawned framed, or `.frame()`d) are not
/// affected.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use rt_ext::{isolate, FutureExt, Variable};
///
/// static V: Variable<u8> = Variable::new("v");
///
/// // A tiny executor that polls a queue of unframed tasks.
/// let seen = Rc::new(RefCell::new(Vec::new()));
/// let s = seen.clone();
/// let executor = async move {
///     // An unframed task: reads nothing, cannot bind.
///     s.borrow_mut().push((V.get(), V.try_set(1).is_err()));
///     // A framed one: its own frame.
///     let framed = async { let _b = V.set(2); V.get() }.frame().await;
///     s.borrow_mut().push((framed, false));
/// };
/// # futures::executor::block_on(async {
/// let _b = V.set(9);
/// isolate(executor).await;
/// assert_eq!(*seen.borrow(), [(None, true), (Some(2), false)]);
/// assert_eq!(V.get(), Some(9));
/// # });
/// ```
pub fn isolate<F: Future>(executor: F) -> Framed<F> {
    Framed::isolated(executor)
}

/// Gives a future its own frame.
pub trait FutureExt: Future + Sized {
    /// Runs this future in its own frame, which starts from the context
    /// current here, where `frame` is called, and keeps its own context
    /// across awaits.
    ///
    /// The frame takes its context at its creation, as a TC39 generator or
    /// async callback does (and as tracing's `in_current_span` and
    /// OpenTelemetry's `with_current_context` do): whoever polls it later,
    /// from whatever context, does not change what it sees. A plain,
    /// unframed future has no context of its own: it runs in whatever frame
    /// polls it.
    ///
    /// Use it to isolate the branches of a `join!` or `select!`, which
    /// otherwise share their task's frame.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::{FutureExt, Variable};
    ///
    /// static BRANCH: Variable<&str> = Variable::new("branch");
    /// # futures::executor::block_on(async {
    /// let a = async { let _b = BRANCH.set("a"); BRANCH.get() }.frame();
    /// let b = async { BRANCH.get() }.frame();
    /// assert_eq!(futures::join!(a, b), (Some("a"), None));
    /// # });
    /// ```
    ///
    /// The context of creation, not of the first poll (test262's
    /// `context-propagation/generators.js`):
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use std::future::Future;
    /// use std::task::{Context, Poll};
    /// use rt_ext::{FutureExt, Variable};
    ///
    /// static V: Variable<&str> = Variable::new("v");
    /// let waker = futures::task::noop_waker();
    /// let mut cx = Context::from_waker(&waker);
    ///
    /// let mut framed = V.sync_scope("init", || Box::pin(async { V.get() }.frame()));
    /// let seen = V.sync_scope("first poll", || framed.as_mut().poll(&mut cx));
    /// assert_eq!(seen, Poll::Ready(Some("init")));
    ///
    /// // Unframed, it sees whatever frame polls it.
    /// let mut unframed = V.sync_scope("init", || Box::pin(async { V.get() }));
    /// let seen = V.sync_scope("first poll", || unframed.as_mut().poll(&mut cx));
    /// assert_eq!(seen, Poll::Ready(Some("first poll")));
    /// ```
    fn frame(self) -> Framed<Self> {
        Framed::inherit(self)
    }
}

impl<F: Future> FutureExt for F {}
