//! OpenTelemetry (the `opentelemetry` cargo feature): the current
//! [`Context`] follows every spawn, holds across awaits, and carries rt-ext
//! variables across process boundaries.
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
//! * [`Propagator`] (with the `propagation` feature too) is an OpenTelemetry
//!   [`TextMapPropagator`](opentelemetry::propagation::TextMapPropagator)
//!   for a [`Codec`](crate::propagation::Codec): beside `traceparent` in a
//!   composite propagator, it carries rt-ext variables through any
//!   transport instrumented with OpenTelemetry.
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

#[cfg(feature = "propagation")]
pub use self::propagator::{received, snapshot, Propagator, Received};

// ===== propagation =====

#[cfg(feature = "propagation")]
mod propagator {
    use opentelemetry::baggage::BaggageExt as _;
    use opentelemetry::propagation::text_map_propagator::FieldIter;
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
    use opentelemetry::Context;
    use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

    use crate::propagation::{Codec, DecodeError, Skipped};
    use crate::Snapshot;

    /// The W3C header, as OpenTelemetry's carriers name it.
    const BAGGAGE: &str = "baggage";

    // What a baggage key or value may not hold raw: the set the codec's own
    // baggage writer uses.
    use crate::propagation::baggage::VALUE as TEXT;

    /// What a member's properties (`;p=1;q`) may not hold raw: their own
    /// separators stay.
    const PROPERTIES: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b',').add(b'\\').add(b'%');

    /// An OpenTelemetry [`TextMapPropagator`] that carries the variables of
    /// a [`Codec`] in the W3C `baggage` header, the form of
    /// [`Codec::inject`] and [`Codec::extract`] (and so of the
    /// [`ClientLayer`](crate::propagation::ClientLayer) and
    /// [`ServerLayer`](crate::propagation::ServerLayer)).
    ///
    /// Put it in a [`TextMapCompositePropagator`] beside
    /// `TraceContextPropagator`, and whatever transport is instrumented with
    /// OpenTelemetry carries rt-ext variables beside `traceparent`. (It
    /// needs the `propagation` feature beside `opentelemetry`.)
    ///
    /// * **inject** writes the codec's variables of the rt-ext context of
    ///   `cx`: the [`Snapshot`] that extract stored in it, if any (so a
    ///   context extracted from one request and injected into another
    ///   forwards what was received), else the current rt-ext context.
    /// * **extract** decodes them onto that same rt-ext context (the one
    ///   stored in the given context, else the current one, as the
    ///   `ServerLayer` decodes onto the context where the service is
    ///   called) and stores the result in the returned [`Context`]: read it
    ///   with [`snapshot`] and run the handler in it
    ///   ([`Snapshot::scope`]), or the whole report with [`received`].
    /// * **fields** is `["baggage"]`.
    ///
    /// Why the `baggage` header: it is what OpenTelemetry's
    /// `BaggagePropagator` reads and writes in every language, so a service
    /// in between that propagates baggage forwards the variables untouched,
    /// and a client with rt-ext's `ClientLayer` talks to a server with this
    /// propagator (and the other way round). A value is written as the
    /// codec writes baggage: a string-like value as that string,
    /// percent-encoded, anything else as JSON.
    ///
    /// **Beside `BaggagePropagator`.** Both write the one `baggage` header,
    /// and an [`Injector`] can only replace a field, so inject writes the
    /// [`Baggage`](opentelemetry::baggage::Baggage) of `cx` into it too
    /// (members under the codec's names are the codec's), within the
    /// codec's limits. List this propagator *after* `BaggagePropagator`
    /// (as in `tracecontext,baggage` then this one); listed before, its
    /// variables are overwritten. Extract leaves OpenTelemetry's baggage to
    /// `BaggagePropagator`, which reads the codec's members as plain
    /// baggage too. Without `BaggagePropagator`, inject still writes the
    /// context's OpenTelemetry baggage, which the other side then does not
    /// extract.
    ///
    /// **Bad input** never panics and never fails the extraction of the
    /// other propagators: a header over the codec's size or entry limit is
    /// refused whole (the returned context holds no snapshot, and
    /// [`Received::error`] says why), a member that cannot be decoded is
    /// skipped and reported ([`Received::skipped`]) while the others are
    /// decoded. No `baggage` header: the context is returned as it was.
    ///
    /// [`TextMapCompositePropagator`]: opentelemetry::propagation::TextMapCompositePropagator
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator as _};
    /// use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
    /// use opentelemetry::{Context, SpanId, TraceId};
    /// use opentelemetry_sdk::propagation::TraceContextPropagator;
    /// use rt_ext::{self as ctx, propagation::Codec};
    ///
    /// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
    ///
    /// let propagator = TextMapCompositePropagator::new(vec![
    ///     Box::new(TraceContextPropagator::new()),
    ///     Box::new(ctx::otel::Propagator::new(Codec::builder().var(&TENANT).build().unwrap())),
    /// ]);
    ///
    /// // the client: the current span context and the current rt-ext context
    /// let span = SpanContext::new(
    ///     TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
    ///     SpanId::from(0x00f067aa0ba902b7),
    ///     TraceFlags::SAMPLED,
    ///     true,
    ///     TraceState::default(),
    /// );
    /// let mut headers = HashMap::new();
    /// TENANT.sync_scope("acme".into(), || {
    ///     let cx = Context::new().with_remote_span_context(span.clone());
    ///     propagator.inject_context(&cx, &mut headers);
    /// });
    /// assert_eq!(headers["baggage"], "tenant=acme");
    ///
    /// // the server
    /// let cx = propagator.extract(&headers);
    /// assert_eq!(cx.span().span_context().trace_id(), span.trace_id());
    /// let received = ctx::otel::snapshot(&cx).unwrap();
    /// assert_eq!(received.run(|| TENANT.get()).as_deref(), Some("acme"));
    /// ```
    #[derive(Clone, Debug)]
    pub struct Propagator {
        codec: Codec,
        fields: [String; 1],
    }

    impl Propagator {
        /// A propagator of the variables listed in `codec`.
        ///
        /// # Examples
        ///
        /// ```
        /// use opentelemetry::propagation::TextMapPropagator as _;
        /// use rt_ext::{otel::Propagator, propagation::Codec};
        ///
        /// let propagator = Propagator::new(Codec::builder().scope_chain().build().unwrap());
        /// assert_eq!(propagator.fields().collect::<Vec<_>>(), ["baggage"]);
        /// ```
        pub fn new(codec: Codec) -> Propagator {
            Propagator {
                codec,
                fields: [BAGGAGE.to_owned()],
            }
        }

        /// The header: the codec's variables bound in `snapshot`, after the
        /// members of the context's OpenTelemetry baggage under other
        /// names, for as many of those as fit in the codec's limits.
        fn header(&self, cx: &Context, snapshot: &Snapshot) -> String {
            let ours = self.codec.to_baggage(snapshot);
            let ours_count = if ours.is_empty() {
                0
            } else {
                ours.split(',').count()
            };
            let max_bytes = self.codec.max_bytes();
            let max_entries = self.codec.max_entries();
            let mut value = String::new();
            let mut count = 0;
            for (key, (text, metadata)) in cx.baggage() {
                let key = key.as_str().trim();
                if key.is_empty() || self.codec.lookup(key).is_some() {
                    continue;
                }
                if count + ours_count >= max_entries {
                    break;
                }
                let start = value.len();
                value.extend(utf8_percent_encode(key, TEXT));
                value.push('=');
                value.extend(utf8_percent_encode(text.as_str().trim(), TEXT));
                let metadata = metadata.as_str().trim();
                if !metadata.is_empty() {
                    value.push(';');
                    value.extend(utf8_percent_encode(metadata, PROPERTIES));
                }
                value.push(',');
                // Foreign members go first, while the header stays in bounds.
                if value.len() + ours.len() > max_bytes {
                    value.truncate(start);
                    continue;
                }
                count += 1;
            }
            if ours.is_empty() {
                value.pop(); // the last comma, if any
            } else {
                value.push_str(&ours);
            }
            value
        }
    }

    impl TextMapPropagator for Propagator {
        fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
            let captured;
            let snapshot = match snapshot(cx) {
                Some(stored) => stored,
                None => {
                    captured = Snapshot::capture();
                    &captured
                }
            };
            let header = self.header(cx, snapshot);
            if !header.is_empty() {
                injector.set(BAGGAGE, header);
            }
        }

        fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
            let Some(parts) = extractor.get_all(BAGGAGE) else {
                return cx.clone();
            };
            let stored = snapshot(cx).cloned();
            let base = stored.clone().unwrap_or_else(Snapshot::capture);
            let received = match self.codec.decode_baggage_parts(&base, &parts) {
                Ok(decoded) => Received {
                    snapshot: Some(decoded.snapshot),
                    skipped: decoded.skipped,
                    error: None,
                },
                Err(error) => Received {
                    snapshot: stored,
                    skipped: Vec::new(),
                    error: Some(error),
                },
            };
            cx.with_value(received)
        }

        fn fields(&self) -> FieldIter<'_> {
            FieldIter::new(&self.fields)
        }
    }

    /// What a [`Propagator`] extracted into a [`Context`]: the decoded
    /// rt-ext context and the report of what was skipped or refused.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use opentelemetry::propagation::TextMapPropagator as _;
    /// use rt_ext::{self as ctx, propagation::Codec};
    ///
    /// static ATTEMPT: ctx::Variable<u32> = ctx::Variable::new("attempt");
    /// let propagator = ctx::otel::Propagator::new(Codec::builder().var(&ATTEMPT).build().unwrap());
    ///
    /// let headers = HashMap::from([("baggage".to_string(), "attempt=-1,other=1".to_string())]);
    /// let cx = propagator.extract(&headers);
    /// let received = ctx::otel::received(&cx).unwrap();
    /// assert_eq!(received.snapshot().unwrap().get(&ATTEMPT), None);
    /// assert_eq!(received.skipped().len(), 2); // `attempt` is no u32, `other` unknown
    /// assert!(received.error().is_none());
    /// ```
    #[derive(Clone, Debug)]
    pub struct Received {
        snapshot: Option<Snapshot>,
        skipped: Vec<Skipped>,
        error: Option<DecodeError>,
    }

    impl Received {
        /// The decoded rt-ext context; `None` if the header was refused
        /// whole (and no earlier extraction had stored one).
        ///
        /// # Examples
        ///
        /// ```
        /// use std::collections::HashMap;
        /// use opentelemetry::propagation::TextMapPropagator as _;
        /// use rt_ext::{self as ctx, propagation::Codec};
        ///
        /// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
        /// let propagator = ctx::otel::Propagator::new(Codec::builder().var(&TENANT).build().unwrap());
        /// let headers = HashMap::from([("baggage".to_string(), "tenant=acme".to_string())]);
        /// let cx = propagator.extract(&headers);
        /// let snapshot = ctx::otel::received(&cx).unwrap().snapshot().unwrap();
        /// assert_eq!(snapshot.get(&TENANT).as_deref(), Some("acme"));
        /// ```
        pub fn snapshot(&self) -> Option<&Snapshot> {
            self.snapshot.as_ref()
        }

        /// The members skipped: not `key=value`, unknown to the codec,
        /// corrupt or mistyped, of an unreadable version, duplicated.
        ///
        /// # Examples
        ///
        /// ```
        /// use std::collections::HashMap;
        /// use opentelemetry::propagation::TextMapPropagator as _;
        /// use rt_ext::{self as ctx, propagation::{Codec, SkipReason}};
        ///
        /// let propagator = ctx::otel::Propagator::new(Codec::builder().build().unwrap());
        /// let headers = HashMap::from([("baggage".to_string(), "userId=alice".to_string())]);
        /// let cx = propagator.extract(&headers);
        /// let skipped = ctx::otel::received(&cx).unwrap().skipped();
        /// assert_eq!(skipped[0].name(), Some("userId"));
        /// assert_eq!(skipped[0].reason(), &SkipReason::Unknown);
        /// ```
        pub fn skipped(&self) -> &[Skipped] {
            &self.skipped
        }

        /// Why the whole header was refused, if it was: over the codec's
        /// size or entry limit.
        ///
        /// # Examples
        ///
        /// ```
        /// use std::collections::HashMap;
        /// use opentelemetry::propagation::TextMapPropagator as _;
        /// use rt_ext::{self as ctx, propagation::{Codec, DecodeError}};
        ///
        /// let propagator = ctx::otel::Propagator::new(Codec::builder().build().unwrap());
        /// let headers = HashMap::from([("baggage".to_string(), "a=1,".repeat(3000))]);
        /// let cx = propagator.extract(&headers);
        /// assert!(ctx::otel::snapshot(&cx).is_none());
        /// let error = ctx::otel::received(&cx).unwrap().error();
        /// assert!(matches!(error, Some(DecodeError::TooLarge { .. })));
        /// ```
        pub fn error(&self) -> Option<&DecodeError> {
            self.error.as_ref()
        }
    }

    /// What a [`Propagator`] extracted into `cx`, if one did.
    ///
    /// # Examples
    ///
    /// ```
    /// use opentelemetry::Context;
    /// assert!(rt_ext::otel::received(&Context::new()).is_none());
    /// ```
    pub fn received(cx: &Context) -> Option<&Received> {
        cx.get::<Received>()
    }

    /// The rt-ext context a [`Propagator`] extracted into `cx`, if it did:
    /// run the request's handler in it ([`Snapshot::scope`]), so that the
    /// handler and the tasks it spawns see the caller's values.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use opentelemetry::propagation::TextMapPropagator as _;
    /// use rt_ext::{self as ctx, propagation::Codec};
    ///
    /// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
    /// let propagator = ctx::otel::Propagator::new(Codec::builder().var(&TENANT).build().unwrap());
    ///
    /// let headers = HashMap::from([("baggage".to_string(), "tenant=acme".to_string())]);
    /// let cx = propagator.extract(&headers);
    /// let received = ctx::otel::snapshot(&cx).cloned().unwrap_or_else(ctx::Snapshot::capture);
    /// let seen = ctx::Runtime::new().unwrap().block_on(received.scope(async {
    ///     ctx::spawn(async { TENANT.get() }).await.unwrap()
    /// }));
    /// assert_eq!(seen.as_deref(), Some("acme"));
    /// ```
    pub fn snapshot(cx: &Context) -> Option<&Snapshot> {
        received(cx).and_then(Received::snapshot)
    }
}
