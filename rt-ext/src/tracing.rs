//! `tracing` integration (the `tracing` cargo feature): span guards that are
//! right across `.await`, and spans that follow spawns.
//!
//! * [`enter`] (or [`SpanExt::enter_ctx`]) enters a span until its guard
//!   drops, like [`Span::enter`], but through a [`Lifecycle`] hook of the
//!   current frame: the span is exited whenever the frame suspends and
//!   entered again when it is polled, on whatever thread polls it. While the
//!   task waits, the worker runs other tasks with no trace of its span.
//! * Work spawned through rt-ext ([`crate::spawn`], `spawn_blocking`,
//!   `spawn_local`, [`crate::JoinSet`], [`crate::TaskTracker`],
//!   [`crate::thread::spawn`], the [`crate::Runtime`] and [`crate::Handle`]
//!   methods) starts inside the spawner's current span, without
//!   `.in_current_span()`. Turn that off per spawn with [`without_span`], for
//!   a frame and everything spawned from it with [`set_spans_follow_spawns`],
//!   or for a runtime with [`Builder::spans_follow_spawns`].
//!
//! # With `Instrument` and `#[instrument]`
//!
//! A guard belongs to its frame (the task, unless the code makes more), and a
//! frame re-enters its guards' spans when it is polled, before the code inside
//! it runs. A span entered by [`tracing::Instrument::instrument`] (or
//! `#[tracing::instrument]`) *inside* the task is entered after that, on the
//! way down to the instrumented future, so it would cover a guard taken
//! inside the instrumented body. Give the body its own frame, inside the
//! instrumentation: use this module's [`Instrument`] and
//! `#[rt_ext::instrument]` (feature `macros`, a default one) in place of
//! tracing's, or write `body.frame().instrument(span)`. The spawn paths of
//! rt-ext already nest this way. Where the nesting is broken, the guard's
//! first resume notices, and a warning names the call site of [`enter`]
//! (once per call site). Each call site's first guard on each thread is
//! checked, then one in 64 (see [`enter`]).
//!
//! ```
//! use rt_ext as ctx;
//!
//! #[rt_ext::instrument(ret)]
//! async fn render(rows: u32) -> u32 {
//!     let span = tracing::info_span!("chunk");
//!     let _chunk = ctx::tracing::enter(&span);
//!     tokio::task::yield_now().await;
//!     tracing::info!("under render:chunk"); // render:chunk, not chunk:render
//!     rows * 2
//! }
//! # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
//! # let _default = tracing::dispatcher::set_default(&dispatch);
//! # ctx::Runtime::new().unwrap().block_on(async { assert_eq!(render(2).await, 4) });
//! ```
//!
//! By hand, with tracing's `Instrument`:
//!
//! ```
//! use rt_ext::{self as ctx, FutureExt as _};
//! use tracing::{info_span, Instrument as _, Span};
//!
//! # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
//! # let _default = tracing::dispatcher::set_default(&dispatch);
//! async fn render() -> Option<tracing::Id> {
//!     async {
//!         let span = info_span!("chunk");
//!         let _chunk = rt_ext::tracing::enter(&span);
//!         tokio::task::yield_now().await;
//!         Span::current().id() // `chunk`, inside `render`
//!     }
//!     .frame()
//!     .instrument(info_span!("render"))
//!     .await
//! }
//! # ctx::Builder::new_current_thread().build().unwrap().block_on(async {
//! #     let current = render().await.unwrap();
//! #     let name = tracing::dispatcher::get_default(|d| {
//! #         use tracing_subscriber::registry::LookupSpan;
//! #         d.downcast_ref::<tracing_subscriber::Registry>().unwrap().span(&current).unwrap().name()
//! #     });
//! #     assert_eq!(name, "chunk");
//! # });
//! ```
//!
//! Held-across-await detection ([`crate::no_suspend`]) works without this
//! feature; with it, each detection is also a `tracing` warning.
//!
//! # Examples
//!
//! ```
//! use rt_ext as ctx;
//! use tracing::{info, info_span, Span};
//!
//! # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
//! # let _default = tracing::dispatcher::set_default(&dispatch);
//! let rt = ctx::Builder::new_current_thread().enable_all().build().unwrap();
//! rt.block_on(async {
//!     let span = info_span!("request", id = 7);
//!     let _entered = ctx::tracing::enter(&span); // exits on every suspension
//!     tokio::task::yield_now().await;
//!     info!("under `request` on whatever thread resumed the task");
//!
//!     // a child task starts inside the spawner's span
//!     let child = ctx::spawn(async { Span::current().id() });
//!     assert_eq!(child.await.unwrap(), span.id());
//! });
//! ```

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::{Mutex, PoisonError};

use ::tracing::Span;

use crate::{
    BindError, Binding, Builder, Framed, FutureExt, HookGuard, Inherit, Lifecycle, Snapshot,
    Variable,
};

// ===== Instrument =====

/// A future instrumented by [`Instrument`]: its own frame, inside the span.
pub type Instrumented<F> = ::tracing::instrument::Instrumented<Framed<F>>;

/// tracing's [`Instrument`](::tracing::Instrument), with the body given a
/// frame of its own inside the span, so that span guards taken in it
/// ([`enter`]) nest inside the span after every await. The same method
/// names as tracing's: switching is an import change.
///
/// With tracing's own `Instrument`, the span is entered around each poll of
/// the future, *inside* the task's frame; a guard taken in the body belongs
/// to that frame, whose hooks re-enter the guard's span before the wrapper
/// enters its own: after the first await, events lose the guard's span.
/// Here the body's frame sits inside the wrapper, so its hooks run after the
/// span is entered. Like `.frame()`, the frame takes its context where
/// `instrument` is called. The frame costs about 30 instructions per poll
/// over tracing's `Instrument` (621 against 591 per poll under
/// tracing-subscriber's `Registry`; `span_rt_instrument_poll` in
/// `benches/src/bin/icount.rs`).
///
/// # Examples
///
/// ```
/// use rt_ext::tracing::Instrument as _;
/// use tracing::{info_span, Span};
///
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// rt_ext::Builder::new_current_thread().build().unwrap().block_on(async {
///     let inner = info_span!("inner");
///     let seen = async {
///         let _g = rt_ext::tracing::enter(&inner);
///         tokio::task::yield_now().await;
///         Span::current().id() // still `inner`, inside `outer`
///     }
///     .instrument(info_span!("outer"))
///     .await;
///     assert_eq!(seen, inner.id());
/// });
/// ```
pub trait Instrument: Future + Sized {
    /// Runs this future in a frame of its own, inside `span`: the span is
    /// entered around each poll, and the frame's hooks run inside it.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::tracing::Instrument as _;
    /// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    /// # let _default = tracing::dispatcher::set_default(&dispatch);
    /// let span = tracing::info_span!("job");
    /// let fut = async { tracing::Span::current().id() }.instrument(span.clone());
    /// assert_eq!(futures::executor::block_on(fut), span.id());
    /// ```
    fn instrument(self, span: Span) -> Instrumented<Self> {
        ::tracing::Instrument::instrument(self.frame(), span)
    }

    /// [`instrument`](Instrument::instrument) with the span current here.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::tracing::Instrument as _;
    /// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    /// # let _default = tracing::dispatcher::set_default(&dispatch);
    /// let span = tracing::info_span!("job");
    /// let fut = span.in_scope(|| async { tracing::Span::current().id() }.in_current_span());
    /// assert_eq!(futures::executor::block_on(fut), span.id());
    /// ```
    fn in_current_span(self) -> Instrumented<Self> {
        self.instrument(Span::current())
    }
}

impl<F: Future> Instrument for F {}

// ===== span guards =====

/// Enters `span` in the current frame until the returned guard drops; unlike
/// [`Span::enter`], the guard may be held across `.await`.
///
/// The span is entered now, exited whenever the frame suspends (on the thread
/// that polled it, before `poll` returns, also when the poll unwinds), entered
/// again when the frame is polled again (on whatever thread), and exited when
/// the guard drops. It is entered and exited through its own dispatcher.
///
/// The guard borrows the span, as [`Span::enter`]'s does: keep the span in a
/// variable (`let span = info_span!(..); let _g = enter(&span);`), or give it
/// away with [`entered`] (or [`SpanExt::entered_ctx`]) where it has no other
/// use. Borrowing costs the subscriber nothing; a guard that owned a handle
/// of its own would cost a clone and a close of the span (about 240
/// instructions under tracing-subscriber's `Registry`, more than the whole
/// of `Span::enter`). Only where the guard's drop cannot exit the span at
/// once (it is dropped on another thread, or while its frame is suspended)
/// does the guard hand a clone of the span to its frame, which exits and
/// releases it at its next resume or end.
///
/// Under instrumentation, use this module's [`Instrument`] and
/// `#[rt_ext::instrument]` rather than tracing's: inside a future
/// instrumented with [`tracing::Instrument`] or `#[tracing::instrument]`,
/// the guard's span nests the wrong way after an await, and the guard's
/// first resume warns (see the
/// [module docs](self#with-instrument-and-instrument)). The check costs a
/// lookup of the current span when the guard is taken (about 50
/// instructions under `Registry`, a third of `Span::enter`), so it is made
/// for the first guard taken at each call site on each thread, then for one
/// in 64: a call site whose nesting is broken is reported on its first
/// guard, or soon after where only some of its callers break it.
///
/// # Panics
///
/// Panics where [`try_enter`] returns an error, as [`crate::enter`] does: in a
/// tokio runtime thread's unframed code (a plain `tokio::spawn` task or
/// `#[tokio::main]` body; spawn with [`crate::spawn`] or frame the future
/// with `.frame()`), or inside a [`Variable::with`] callback.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// use tracing::{info_span, Span};
///
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// ctx::Builder::new_current_thread().build().unwrap().block_on(async {
///     let span = info_span!("load");
///     let guard = ctx::tracing::enter(&span);
///     tokio::task::yield_now().await; // exited while suspended, then re-entered
///     assert_eq!(Span::current().id(), span.id());
///     drop(guard);
///     assert!(Span::current().is_none());
/// });
/// ```
///
/// The span must outlive the guard:
///
/// ```compile_fail,E0716
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// let guard = rt_ext::tracing::enter(&tracing::info_span!("gone")); // use `entered`
/// drop(guard);
/// ```
#[track_caller]
#[inline]
pub fn enter(span: &Span) -> SpanGuard<'_> {
    // Not through `try_enter`: the guard put in a `Result` and taken out
    // again costs 9 instructions (benches/icount.sh, `span_guard_enter`).
    match hook_for(span) {
        Ok(hook) => SpanGuard {
            hook: Some(hook),
            span,
        },
        Err(e) => refused(e),
    }
}

/// The panic of [`enter`] and [`entered`] where the frame refuses the hook,
/// out of line. With it, and with `enter` and the guard's drop inlined
/// where they are used, a span guard taken and dropped costs 37
/// instructions less (benches/icount.sh, `span_guard_enter`).
#[cold]
#[inline(never)]
#[track_caller]
fn refused(e: BindError) -> ! {
    panic!("rt-ext: {e}")
}

/// Like [`enter`], but returns an error instead of panicking where the
/// current frame refuses hooks (the span is then not left entered).
///
/// # Examples
///
/// ```
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// let span = tracing::info_span!("job");
/// // a plain thread outside any runtime accepts hooks
/// let guard = rt_ext::tracing::try_enter(&span).expect("framed");
/// assert_eq!(tracing::Span::current().id(), span.id());
/// drop(guard);
/// ```
#[track_caller]
pub fn try_enter(span: &Span) -> Result<SpanGuard<'_>, BindError> {
    hook_for(span).map(|hook| SpanGuard {
        hook: Some(hook),
        span,
    })
}

/// [`enter`] for a span given away: the guard owns it, as tracing's
/// [`Span::entered`] does, and the span closes (if no other handle keeps it)
/// after the guard has exited it for the last time.
///
/// # Panics
///
/// Panics where [`enter`] does.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// ctx::Builder::new_current_thread().build().unwrap().block_on(async {
///     let _request = ctx::tracing::entered(tracing::info_span!("request"));
///     tokio::task::yield_now().await;
///     tracing::info!("under `request`");
/// });
/// ```
#[track_caller]
#[inline]
pub fn entered(span: Span) -> OwnedSpanGuard {
    match hook_for(&span) {
        Ok(hook) => OwnedSpanGuard {
            hook: Some(hook),
            span,
        },
        Err(e) => refused(e),
    }
}

/// Enters `span` and registers the hook that keeps it entered while the
/// current frame runs. The hook refers to the span by id: the guard keeps
/// the span alive.
///
/// The common guard, of an enabled span whose nesting is not checked, is
/// registered here; the others out of line ([`hook_for_rare`]), each with
/// a hook type of its own, so that the common hook carries nothing for them
/// and its calls check nothing for them. Against one hook type for all
/// three: 7 instructions a poll with a span guard, 12 a guard taken and
/// dropped (benches/icount.sh, `span_guard_poll_yield_now` and
/// `span_guard_enter`).
#[track_caller]
#[inline]
fn hook_for(span: &Span) -> Result<HookGuard, BindError> {
    let taken_at = Location::caller();
    // Entered through the span's own handle, so that the hook's copy of
    // its id and dispatcher is never borrowed and is built in registers: 3
    // instructions against entering through the copy (benches/icount.sh,
    // `span_guard_enter`). Nothing between here and the registration can
    // unwind. A disabled span's guard is never sampled: it has no nesting.
    let hook = span.with_subscriber(|(id, dispatch)| {
        if check_this_one(taken_at) {
            return None;
        }
        dispatch.enter(id);
        Some(SpanHook {
            id: id.clone(),
            dispatch: dispatch.clone(),
            entered: true,
        })
    });
    match hook {
        // On refusal the hook is dropped, which exits the span again.
        Some(Some(hook)) => crate::try_enter(hook),
        Some(None) => hook_for_rare(span, taken_at, true),
        None => hook_for_rare(span, taken_at, false),
    }
}

/// [`hook_for`] for a disabled span (no subscriber wants it), or a guard
/// whose nesting is checked (`sampled`, see [`check_this_one`]).
///
/// A disabled span has nothing to enter, but its guard registers a hook all
/// the same: it is refused where any other guard is, so code that takes one
/// where it cannot panics with and without a subscriber alike.
#[cold]
#[inline(never)]
fn hook_for_rare(
    span: &Span,
    taken_at: &'static Location<'static>,
    sampled: bool,
) -> Result<HookGuard, BindError> {
    let hook = span.with_subscriber(|(id, dispatch)| {
        let parent = if sampled {
            current_span_id(dispatch)
        } else {
            None
        };
        dispatch.enter(id);
        CheckedSpanHook {
            hook: SpanHook {
                id: id.clone(),
                dispatch: dispatch.clone(),
                entered: true,
            },
            parent,
            checked: !sampled,
            taken_at,
        }
    });
    match hook {
        Some(hook) => crate::try_enter(hook),
        None => crate::try_enter(DisabledSpan),
    }
}

/// [`enter`] and [`entered`] as methods of [`Span`].
///
/// # Examples
///
/// ```
/// use rt_ext::tracing::SpanExt as _;
///
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// rt_ext::Runtime::new().unwrap().block_on(async {
///     let span = tracing::info_span!("handler");
///     let _entered = span.enter_ctx();
///     tokio::task::yield_now().await;
///     tracing::info!("logged under `handler`");
/// });
/// ```
pub trait SpanExt: sealed::Sealed {
    /// Enters the span in the current frame until the guard drops, across
    /// awaits; see [`enter`].
    ///
    /// # Panics
    ///
    /// Panics where [`enter`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::tracing::SpanExt as _;
    ///
    /// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    /// # let _default = tracing::dispatcher::set_default(&dispatch);
    /// let span = tracing::info_span!("startup");
    /// let guard = span.enter_ctx();
    /// assert_eq!(tracing::Span::current().id(), span.id());
    /// drop(guard);
    /// ```
    #[track_caller]
    fn enter_ctx(&self) -> SpanGuard<'_>;

    /// Enters the span in the current frame until the guard, which owns it,
    /// drops; see [`entered`].
    ///
    /// # Panics
    ///
    /// Panics where [`enter`] does.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::tracing::SpanExt as _;
    ///
    /// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    /// # let _default = tracing::dispatcher::set_default(&dispatch);
    /// let guard = tracing::info_span!("startup").entered_ctx();
    /// assert_eq!(tracing::Span::current().id(), guard.span().id());
    /// drop(guard);
    /// ```
    #[track_caller]
    fn entered_ctx(self) -> OwnedSpanGuard;
}

impl SpanExt for Span {
    #[track_caller]
    #[inline]
    fn enter_ctx(&self) -> SpanGuard<'_> {
        enter(self)
    }

    #[track_caller]
    #[inline]
    fn entered_ctx(self) -> OwnedSpanGuard {
        entered(self)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for tracing::Span {}
}

/// The guard of a span entered with [`enter`]: while it lives, the span is
/// entered whenever its frame runs. Dropping it exits the span (if its frame
/// is suspended, or runs on another thread, when the frame next runs or is
/// dropped).
///
/// It borrows the span, like tracing's [`Entered`](::tracing::span::Entered).
/// `Send`, so a future holding one across an `.await` stays `Send`.
///
/// Forgetting the guard (`mem::forget`) leaves the span entered whenever the
/// frame runs, until the frame ends, as forgetting tracing's guard leaves
/// its span entered on the thread: if the span closes meanwhile, its id may
/// be entered after it closed.
///
/// # Examples
///
/// ```
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// let span = tracing::info_span!("batch");
/// let guard: rt_ext::tracing::SpanGuard<'_> = rt_ext::tracing::enter(&span);
/// println!("{guard:?}");
/// ```
#[must_use = "the span is exited as soon as this guard is dropped"]
pub struct SpanGuard<'a> {
    /// `None` only once dropped.
    hook: Option<HookGuard>,
    span: &'a Span,
}

impl fmt::Debug for SpanGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanGuard")
            .field("span", self.span)
            .finish_non_exhaustive()
    }
}

impl Drop for SpanGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        let span = self.span;
        if let Some(hook) = self.hook.take() {
            // Where the hook outlives this borrow, the frame gets a handle
            // of its own.
            hook.release_keeping(|| span.clone());
        }
    }
}

/// The guard of a span entered with [`entered`], which owns the span: while
/// it lives, the span is entered whenever its frame runs. Dropping it exits
/// the span (if its frame is suspended, or runs on another thread, when the
/// frame next runs or is dropped), then releases it.
///
/// `Send`, so a future holding one across an `.await` stays `Send`.
///
/// # Examples
///
/// ```
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// let guard = rt_ext::tracing::entered(tracing::info_span!("batch"));
/// assert_eq!(guard.span().metadata().map(|m| m.name()), Some("batch"));
/// ```
#[must_use = "the span is exited as soon as this guard is dropped"]
pub struct OwnedSpanGuard {
    /// `None` only once dropped.
    hook: Option<HookGuard>,
    span: Span,
}

impl OwnedSpanGuard {
    /// The span this guard keeps entered.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    /// # let _default = tracing::dispatcher::set_default(&dispatch);
    /// let span = tracing::info_span!("batch");
    /// let id = span.id();
    /// let guard = rt_ext::tracing::entered(span);
    /// assert_eq!(guard.span().id(), id);
    /// ```
    pub fn span(&self) -> &Span {
        &self.span
    }
}

impl fmt::Debug for OwnedSpanGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSpanGuard")
            .field("span", &self.span)
            .finish_non_exhaustive()
    }
}

impl Drop for OwnedSpanGuard {
    #[inline]
    fn drop(&mut self) {
        let span = std::mem::replace(&mut self.span, Span::none());
        if let Some(hook) = self.hook.take() {
            // Released after the hook: now, or by the frame when the hook
            // outlives this guard.
            hook.release_keeping(move || span);
        }
    }
}

/// The hook behind [`SpanGuard`] and [`OwnedSpanGuard`], for an enabled
/// span. `entered` makes enter and exit pair up whatever the order of
/// calls, so the span is never left entered on a thread and never exited
/// twice.
struct SpanHook {
    /// The span's id and dispatcher. Not a `Span`: the guard keeps the span
    /// alive, for as long as the hook may enter it (see
    /// `HookGuard::release_keeping`).
    id: ::tracing::Id,
    dispatch: ::tracing::Dispatch,
    entered: bool,
}

impl SpanHook {
    fn enter(&mut self) {
        if !self.entered {
            self.entered = true;
            self.dispatch.enter(&self.id);
        }
    }

    fn exit(&mut self) {
        if self.entered {
            self.entered = false;
            self.dispatch.exit(&self.id);
        }
    }
}

impl Lifecycle for SpanHook {
    fn on_yield(&mut self) {
        self.exit();
    }

    fn on_resume(&mut self) {
        self.enter();
    }
}

/// [`SpanHook`] for a guard whose nesting is checked on its first resume
/// (the guards [`check_this_one`] picks).
struct CheckedSpanHook {
    hook: SpanHook,
    /// The span that was current when the guard was taken: on resume it
    /// must be current again before this span is re-entered, or the nesting
    /// is broken (see [`check_nesting`]).
    parent: Option<::tracing::Id>,
    /// Whether the nesting is checked already, or not to be.
    checked: bool,
    /// Where the guard was taken, for the warning.
    taken_at: &'static Location<'static>,
}

impl Lifecycle for CheckedSpanHook {
    fn on_yield(&mut self) {
        self.hook.exit();
    }

    fn on_resume(&mut self) {
        // Both ways a tail call: no stack frame for the call out of line
        // (2 instructions a poll, benches/icount.sh `span_guard_poll`,
        // whose one guard is its call site's first, so checked).
        if self.checked {
            self.hook.enter();
        } else {
            check_nesting(self);
        }
    }
}

/// The hook of a disabled span's guard: nothing to enter or exit.
struct DisabledSpan;

impl Lifecycle for DisabledSpan {
    fn on_yield(&mut self) {}

    fn on_resume(&mut self) {}
}

/// The id of the current span of the span's own dispatcher, the one that
/// enters and exits it, and so the one whose stack of entered spans the
/// nesting is about. Asking it directly skips the lookup of the default
/// dispatcher (about 40 instructions), and a disabled span (no dispatcher
/// wants it) needs no lookup at all: entering it does nothing, so it cannot
/// nest wrong.
fn current_span_id(dispatch: &::tracing::Dispatch) -> Option<::tracing::Id> {
    dispatch.current_span().id().cloned()
}

/// How many guards taken at one call site on one thread go unchecked after
/// each that is checked (see [`check_this_one`]).
const UNCHECKED_RUN: u8 = 63;

thread_local! {
    /// For a few call sites of [`enter`] (by a hash of the location's
    /// address; one that collides evicts the other): the call site, and how
    /// many of its next guards go unchecked.
    static SAMPLED: [Cell<(usize, u8)>; 16] = const { [const { Cell::new((0, 0)) }; 16] };
}

/// Whether the guard taken at `at` checks its nesting: the first of its
/// call site on this thread, then one in `UNCHECKED_RUN + 1`. Where the
/// nesting of a call site is broken, it is broken for every guard of the
/// callers that break it, so sampling finds it; checking every guard would
/// cost its lookup of the current span (about 50 instructions, a third of
/// `Span::enter` + drop under `Registry`) every time.
#[inline]
fn check_this_one(at: &'static Location<'static>) -> bool {
    let key = std::ptr::from_ref(at) as usize;
    let slot = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize;
    SAMPLED
        .try_with(|sampled| {
            let entry = &sampled[slot];
            match entry.get() {
                (site, unchecked) if site == key && unchecked > 0 => {
                    entry.set((site, unchecked - 1));
                    false
                }
                _ => {
                    entry.set((key, UNCHECKED_RUN));
                    true
                }
            }
        })
        .unwrap_or(true)
}

/// Warns, once per call site of [`enter`], when a span guard resumes while
/// the span that was current when it was taken is not current: a wrapper
/// inside the guard's frame (tracing's `Instrument`, `#[instrument]`, a
/// tower `TraceLayer`) enters its span only after the frame's hooks have
/// re-entered theirs, so the guard's span would be nested the wrong way and
/// events after the await would lose it.
///
/// The nesting of a frame and the wrappers around and inside it does not
/// change from one poll to the next, so the first resume tells: checking it
/// costs a lookup of the current span (about 50 instructions under
/// tracing-subscriber's `Registry`, which reads the span's slot for its
/// metadata), once per checked guard, on top of the one when it is taken.
/// Then enters the span: the first resume of a checked guard.
#[cold]
#[inline(never)]
fn check_nesting(hook: &mut CheckedSpanHook) {
    hook.checked = true;
    if current_span_id(&hook.hook.dispatch) != hook.parent {
        nesting_broken(hook);
    }
    hook.hook.enter();
}

#[cold]
#[inline(never)]
fn nesting_broken(hook: &CheckedSpanHook) {
    static WARNED: Mutex<Vec<&'static Location<'static>>> = Mutex::new(Vec::new());
    {
        let mut warned = WARNED.lock().unwrap_or_else(PoisonError::into_inner);
        if warned.contains(&hook.taken_at) {
            return;
        }
        warned.push(hook.taken_at);
    }
    ::tracing::warn!(
        location = %hook.taken_at,
        "rt-ext: the span guard taken at {} resumed outside the span that was current \
         when it was taken: a wrapper inside its frame (`#[tracing::instrument]`, \
         `tracing::Instrument::instrument`, a tower trace layer) enters its span after \
         the frame's hooks, so events after an await lose the guard's span. Use \
         `#[rt_ext::instrument]` or `rt_ext::tracing::Instrument`, which give the body a \
         frame of its own inside the span, or frame the body yourself: \
         `async {{ .. }}.frame().instrument(span)`.",
        hook.taken_at,
    );
}

impl Drop for SpanHook {
    fn drop(&mut self) {
        // Hooks are dropped entered, on the thread that runs their frame.
        self.exit();
    }
}

// ===== spans that follow spawns =====

/// The setting behind [`set_spans_follow_spawns`], inherited like any
/// variable; unset means on.
pub(crate) static FOLLOW: Variable<bool> = Variable::new("rt_ext::tracing::spans_follow_spawns");

thread_local! {
    /// Set while a [`without_span`] closure runs on this thread.
    static WITHOUT_SPAN: Cell<bool> = const { Cell::new(false) };
}

/// The span a piece of work spawned now, with `snapshot` as its context,
/// starts in: the current span, unless spans do not follow spawns here.
pub(crate) fn span_to_follow(snapshot: &Snapshot) -> Span {
    let off = WITHOUT_SPAN.try_with(Cell::get).unwrap_or(false)
        || (!snapshot.is_empty() && snapshot.get(&FOLLOW) == Some(false));
    if off {
        Span::none()
    } else {
        Span::current()
    }
}

/// The inheritor of spans (see `crate::inheritors`): work spawned now
/// starts inside the spawner's current span (with the switches of
/// [`span_to_follow`]), on every spawn path, runtime-hook mode included. The
/// span is entered around every poll of the child, outside its frame, so it
/// is the child's outermost span and the child's own span guards nest
/// inside it (they exit first on every suspension).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FollowSpan;

impl Inherit for FollowSpan {
    type Hook = FollowedSpan;

    #[inline]
    fn child(&self, context: &Snapshot) -> Option<FollowedSpan> {
        let span = span_to_follow(context);
        (!span.is_none()).then_some(FollowedSpan {
            span,
            entered: false,
        })
    }
}

/// The hook [`FollowSpan`] gives a child: its span, entered while it runs.
pub(crate) struct FollowedSpan {
    span: Span,
    entered: bool,
}

impl Lifecycle for FollowedSpan {
    #[inline]
    fn on_yield(&mut self) {
        if self.entered {
            self.entered = false;
            self.span.with_subscriber(|(id, d)| d.exit(id));
        }
    }

    #[inline]
    fn on_resume(&mut self) {
        if !self.entered {
            self.entered = true;
            self.span.with_subscriber(|(id, d)| d.enter(id));
        }
    }
}

impl Drop for FollowedSpan {
    fn drop(&mut self) {
        // Dropped entered, on the thread that ran the child's last step.
        self.on_yield();
    }
}

/// Whether work spawned from the current context starts inside the current
/// span (the default), as set by [`set_spans_follow_spawns`] or
/// [`Builder::spans_follow_spawns`].
///
/// # Examples
///
/// ```
/// assert!(rt_ext::tracing::spans_follow_spawns());
/// let _off = rt_ext::tracing::set_spans_follow_spawns(false);
/// assert!(!rt_ext::tracing::spans_follow_spawns());
/// ```
pub fn spans_follow_spawns() -> bool {
    FOLLOW.get().unwrap_or(true)
}

/// Sets whether work spawned from the current frame starts inside the
/// spawner's current span, until the returned binding drops. Like any
/// binding it is inherited: turned off here, it is off in everything spawned
/// from here, and in what that spawns, unless they turn it on again.
///
/// Turn it off for long-lived background work spawned from short-lived
/// spans (a span stays open while any task entered in it lives).
///
/// # Panics
///
/// Panics where [`Variable::set`] does (in a tokio runtime thread's unframed
/// code, or inside a [`Variable::with`] callback).
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// use tracing::Span;
///
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// ctx::Builder::new_current_thread().build().unwrap().block_on(async {
///     let span = tracing::info_span!("request");
///     let _entered = ctx::tracing::enter(&span);
///     let _off = ctx::tracing::set_spans_follow_spawns(false);
///     let background = ctx::spawn(async { Span::current().is_none() });
///     assert!(background.await.unwrap());
/// });
/// ```
#[track_caller]
pub fn set_spans_follow_spawns(on: bool) -> Binding {
    FOLLOW.set(on)
}

/// Runs `f` with spans not following spawns: work spawned directly by `f`,
/// on this thread while it runs, starts in no span. This is the per-spawn
/// switch; the setting the spawned work inherits is unchanged, so what it
/// spawns in turn follows its spans again.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// use tracing::Span;
///
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// ctx::Builder::new_current_thread().build().unwrap().block_on(async {
///     let span = tracing::info_span!("request");
///     let _entered = ctx::tracing::enter(&span);
///     let detached = ctx::tracing::without_span(|| ctx::spawn(async { Span::current().is_none() }));
///     let attached = ctx::spawn(async { Span::current().is_none() });
///     assert!(detached.await.unwrap());
///     assert!(!attached.await.unwrap());
/// });
/// ```
pub fn without_span<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the flag even if `f` unwinds, and keeps an enclosing
    /// `without_span` in force when this one returns.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = WITHOUT_SPAN.try_with(|w| w.set(self.0));
        }
    }
    let _restore = Restore(WITHOUT_SPAN.with(|w| w.replace(true)));
    f()
}

impl Builder {
    /// Whether work spawned in the runtime starts inside the spawner's
    /// current span (on by default). Off, the runtime's `block_on` and the
    /// `spawn` methods of its [`Runtime`](crate::Runtime) and
    /// [`Handle`](crate::Handle) bind [`set_spans_follow_spawns`]`(false)` in
    /// the work they start, which everything spawned from there inherits.
    /// (A [`Handle::current`](crate::Handle::current) does not carry the
    /// switch, but work running in the runtime has inherited it already.)
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext as ctx;
    /// use tracing::Span;
    ///
    /// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    /// # let _default = tracing::dispatcher::set_default(&dispatch);
    /// let rt = ctx::Builder::new_current_thread()
    ///     .spans_follow_spawns(false)
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async {
    ///     let span = tracing::info_span!("request");
    ///     let _entered = ctx::tracing::enter(&span);
    ///     assert!(ctx::spawn(async { Span::current().is_none() }).await.unwrap());
    /// });
    /// ```
    pub fn spans_follow_spawns(&mut self, on: bool) -> &mut Self {
        self.settings.spans_follow_spawns = Some(on);
        self
    }
}

pub use crate::tracing_fields::{FmtBuilder, JsonEvents, LogVariables, TextEvents, TextFields};
