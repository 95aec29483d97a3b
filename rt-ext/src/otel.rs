//! OpenTelemetry (the `opentelemetry` cargo feature): the current
//! [`Context`] follows every spawn and holds across awaits.
//!
//! * Work spawned through any rt-ext spawn path ([`crate::spawn`],
//!   [`crate::spawn_blocking`], [`crate::spawn_local`], [`crate::JoinSet`],
//!   [`crate::TaskTracker`], [`crate::thread::spawn`], the
//!   [`Runtime`](crate::Runtime) and [`Handle`](crate::Handle) methods, and
//!   in runtime-hook mode plain `tokio::spawn`) runs with the OpenTelemetry
//!   context that was current where it was spawned: the child's
//!   `Context::current()` is its spawner's, after any number of awaits, on
//!   whatever worker polls it. No `.with_current_context()` is needed.
//! * [`attach`] makes a context current until its guard drops, across
//!   awaits: it is detached whenever the task suspends and attached again
//!   when it resumes, on whatever worker, and what the task spawns inherits
//!   it.
//!
//! ```
//! use opentelemetry::Context;
//! use rt_ext as ctx;
//!
//! #[derive(Debug, PartialEq)]
//! struct Tenant(u32);
//!
//! ctx::Runtime::new().unwrap().block_on(async {
//!     let _attached = ctx::otel::attach(Context::new().with_value(Tenant(7)));
//!     tokio::task::yield_now().await; // detached while suspended
//!     let child = ctx::spawn(async {
//!         tokio::task::yield_now().await;
//!         Context::current().get::<Tenant>().map(|t| t.0)
//!     });
//!     assert_eq!(child.await.unwrap(), Some(7));
//!     let blocking = ctx::spawn_blocking(|| Context::current().get::<Tenant>().map(|t| t.0));
//!     assert_eq!(blocking.await.unwrap(), Some(7));
//! });
//! ```
//!
//! # Why not `cx.attach()` across an await
//!
//! OpenTelemetry's own [`Context::attach`] guard is `!Send`, so a task that
//! holds one across an `.await` cannot be spawned on a multi-thread
//! runtime; and held across an await where it compiles (a current-thread
//! runtime, a `LocalSet`), the context stays attached on the thread while
//! the task waits, so every other task run there sees it. Its spans then
//! get the wrong parents. [`attach`] returns a `Send` guard that keeps the
//! context attached only while its task runs. (A plain guard taken and
//! dropped between two awaits is fine: it never outlives a poll.)
//!
//! # With `with_context` and other wrappers
//!
//! A guard belongs to its frame (the task, unless the code makes more), and
//! a frame attaches its guards' contexts when it is polled, before the code
//! inside it runs. A wrapper inside the task that attaches a context of its
//! own around each poll (OpenTelemetry's
//! [`FutureExt::with_context`](opentelemetry::context::FutureExt::with_context))
//! attaches it after that, on top: an [`attach`] guard taken inside the
//! wrapped future is current only until its first await. Give the wrapped
//! body a frame of its own inside the wrapper, `body.frame().with_context(cx)`
//! (`use rt_ext::FutureExt as _`): its guards are then attached after the
//! wrapper's context, every time.
//!
//! ```
//! use opentelemetry::{context::FutureExt as _, Context};
//! use rt_ext::{self as ctx, FutureExt as _};
//!
//! #[derive(Debug, PartialEq)]
//! struct Step(&'static str);
//!
//! ctx::Runtime::new().unwrap().block_on(async {
//!     let outer = Context::new().with_value(Step("outer"));
//!     let seen = async {
//!         let _inner = ctx::otel::attach(Context::current().with_value(Step("inner")));
//!         tokio::task::yield_now().await;
//!         Context::current().get::<Step>().map(|s| s.0)
//!     }
//!     .frame()
//!     .with_context(outer)
//!     .await;
//!     assert_eq!(seen, Some("inner"));
//! });
//! ```
//!
//! # Spans
//!
//! A span made current with [`attach`] (`Context::current_with_span(span)`)
//! is the parent of the spans that the task and everything it spawns start
//! with the default parent (`tracer.start(..)`, `tracer.in_span(..)`):
//!
//! ```
//! use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
//! use opentelemetry::Context;
//! use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
//! use rt_ext as ctx;
//!
//! let exporter = InMemorySpanExporter::default();
//! let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
//! let tracer = provider.tracer("docs");
//!
//! ctx::Runtime::new().unwrap().block_on(async {
//!     let request = tracer.start("request");
//!     let _request = ctx::otel::attach(Context::current_with_span(request));
//!     tokio::task::yield_now().await;
//!     let tracer = tracer.clone();
//!     ctx::spawn(async move { tracer.in_span("child", |_| ()) }).await.unwrap();
//! }); // the guard drops: the `request` span ends with its context
//!
//! let spans = exporter.get_finished_spans().unwrap();
//! let (child, request) = (&spans[0], &spans[1]);
//! assert_eq!(child.parent_span_id, request.span_context.span_id());
//! assert_eq!(child.span_context.trace_id(), request.span_context.trace_id());
//! ```

use std::cell::RefCell;
use std::fmt;

use opentelemetry::{Context, ContextGuard};

use crate::{BindError, HookGuard, Inherit, Lifecycle, Snapshot};

// ===== the context that follows spawns =====

/// The inheritor of OpenTelemetry's context (see `crate::inheritors`): a
/// child gets the context current at its spawn, attached whenever it runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FollowContext;

impl Inherit for FollowContext {
    type Hook = Attached;

    #[inline]
    fn child(&self, _: &Snapshot) -> Option<Attached> {
        // `Context` tells no one whether it is empty: an empty one is
        // attached too, which makes the child see what it would anyway.
        Some(Attached::new(Context::current()))
    }
}

thread_local! {
    /// The guards of the contexts attached by [`Attached`] hooks on this
    /// thread. OpenTelemetry's guards cannot leave their thread; a hook
    /// attaches on resume and detaches on the same thread before the poll
    /// returns (or when it is dropped, entered, on the thread that runs its
    /// frame).
    static ATTACHED: RefCell<Attachments> = const {
        RefCell::new(Attachments { guards: Vec::new(), next: 0 })
    };
}

/// The guards of one thread, each with the id its hook knows it by.
struct Attachments {
    /// Usually in the order of attachment, innermost last: the guard to
    /// drop on a yield is then the last. Not always: a hook removed out of
    /// order (its [`AttachGuard`] dropped before a later one) takes its own
    /// guard from the middle, and OpenTelemetry's context stack keeps the
    /// later context current, as for its own guards dropped out of order.
    guards: Vec<(u64, ContextGuard)>,
    /// The id of the next guard: unique on this thread, which is all that
    /// matters, since a guard never leaves its thread.
    next: u64,
}

/// A hook that keeps an OpenTelemetry [`Context`] attached while its frame
/// runs: attached on resume, detached on yield and when dropped.
pub(crate) struct Attached {
    cx: Context,
    /// The id of this hook's guard in its thread's [`ATTACHED`], while
    /// attached.
    guard: Option<u64>,
}

impl Attached {
    pub(crate) fn new(cx: Context) -> Attached {
        Attached { cx, guard: None }
    }
}

impl Lifecycle for Attached {
    #[inline]
    fn on_resume(&mut self) {
        if self.guard.is_none() {
            let guard = self.cx.clone().attach();
            // A thread that is exiting has no list any more: the guard is
            // dropped with the closure, detaching at once.
            self.guard = ATTACHED
                .try_with(move |a| {
                    let mut a = a.borrow_mut();
                    let id = a.next;
                    a.next = a.next.wrapping_add(1);
                    a.guards.push((id, guard));
                    id
                })
                .ok();
        }
    }

    #[inline]
    fn on_yield(&mut self) {
        let Some(id) = self.guard.take() else { return };
        // Taken out of the cell first, and dropped after: dropping a guard
        // may drop a context, and with it code that attaches or detaches.
        // By identity, never by position: a guard dropped out of order must
        // not detach another's context.
        let guard = ATTACHED
            .try_with(|a| {
                let mut a = a.borrow_mut();
                let at = a.guards.iter().rposition(|(i, _)| *i == id)?;
                Some(a.guards.remove(at).1)
            })
            .ok()
            .flatten();
        drop(guard);
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // Dropped entered, on the thread that ran its frame's last step.
        self.on_yield();
    }
}

impl fmt::Debug for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attached")
            .field("cx", &self.cx)
            .field("attached", &self.guard.is_some())
            .finish()
    }
}

// ===== attach =====

/// Makes `cx` the current OpenTelemetry context in the current frame until
/// the returned guard drops; unlike [`Context::attach`], the guard is `Send`
/// and may be held across `.await`.
///
/// The context is attached now, detached whenever the frame suspends (on
/// the thread that polled it, before `poll` returns, also when the poll
/// unwinds), attached again when the frame is polled again (on whatever
/// thread), and detached when the guard drops. Work the frame spawns
/// through rt-ext starts with it current. A guard dropped while a later
/// one is alive leaves the later context current (as OpenTelemetry's own
/// guards do).
///
/// Under a wrapper that attaches its own context around each poll
/// ([`with_context`](opentelemetry::context::FutureExt::with_context)),
/// give the body a frame of its own inside the wrapper (see the
/// [module docs](self#with-with_context-and-other-wrappers)).
///
/// # Panics
///
/// Panics where [`try_attach`] returns an error, as [`crate::enter`] does:
/// in a tokio runtime thread's unframed code (a plain `tokio::spawn` task
/// or `#[tokio::main]` body: spawn with [`crate::spawn`], use
/// `#[rt_ext::main]`, or frame the future with `.frame()`), or inside a
/// [`Variable::with`](crate::Variable::with) callback. The message names
/// the fixes that apply where it happened.
///
/// # Examples
///
/// ```
/// use opentelemetry::Context;
/// use rt_ext as ctx;
///
/// #[derive(Debug, PartialEq)]
/// struct RequestId(u64);
///
/// ctx::Builder::new_multi_thread().build().unwrap().block_on(async {
///     let guard = ctx::otel::attach(Context::current().with_value(RequestId(7)));
///     tokio::task::yield_now().await; // detached while suspended, then attached again
///     assert_eq!(Context::current().get::<RequestId>(), Some(&RequestId(7)));
///     drop(guard);
///     assert_eq!(Context::current().get::<RequestId>(), None);
/// });
/// ```
#[track_caller]
pub fn attach(cx: Context) -> AttachGuard {
    match try_attach(cx) {
        Ok(guard) => guard,
        Err(e) => panic!("rt-ext: {e}"),
    }
}

/// Like [`attach`], but returns an error instead of panicking where the
/// current frame refuses hooks (the context is then not left attached).
///
/// # Errors
///
/// A [`BindError`] in a tokio runtime thread's unframed code, or inside a
/// [`Variable::with`](crate::Variable::with) callback; its message names
/// the fixes.
///
/// # Examples
///
/// ```
/// use opentelemetry::Context;
///
/// #[derive(Debug, PartialEq)]
/// struct Job(u8);
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// rt.block_on(async {
///     // a plain tokio task runs unframed: refused, nothing left attached
///     let refused = tokio::spawn(async {
///         let err = rt_ext::otel::try_attach(Context::new().with_value(Job(1))).unwrap_err();
///         (err.is_unframed(), Context::current().get::<Job>().is_none())
///     });
///     assert_eq!(refused.await.unwrap(), (true, true));
/// });
///
/// // a plain thread outside any runtime accepts it
/// let guard = rt_ext::otel::try_attach(Context::new().with_value(Job(2))).expect("framed");
/// assert_eq!(Context::current().get::<Job>(), Some(&Job(2)));
/// drop(guard);
/// ```
pub fn try_attach(cx: Context) -> Result<AttachGuard, BindError> {
    let mut hook = Attached::new(cx);
    // A registered hook is entered: attached before it is registered.
    hook.on_resume();
    // On refusal the hook is dropped, which detaches the context again.
    crate::try_enter(hook).map(|hook| AttachGuard { _hook: hook })
}

/// The guard of a context attached with [`attach`]: while it lives, the
/// context is current whenever its frame runs. Dropping it detaches the
/// context (if its frame is suspended, when the frame next runs or is
/// dropped).
///
/// `Send`, so a future holding one across an `.await` stays `Send`.
///
/// # Examples
///
/// ```
/// use opentelemetry::Context;
///
/// let guard: rt_ext::otel::AttachGuard = rt_ext::otel::attach(Context::new());
/// println!("{guard:?}");
/// std::thread::spawn(move || drop(guard)).join().unwrap();
/// ```
#[must_use = "the context is detached as soon as this guard is dropped"]
pub struct AttachGuard {
    _hook: HookGuard,
}

impl fmt::Debug for AttachGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachGuard").finish_non_exhaustive()
    }
}
