//! Inheritable hooks: what a spawn gives the work it spawns besides its
//! variables.
//!
//! Some state that must follow work into spawned tasks is not a variable but
//! something in effect on the spawning thread: tracing's current span,
//! OpenTelemetry's current `Context`, a C library's per-thread setting. An
//! [`Inherit`] implementation reads it at the spawn, on the spawning thread,
//! and says what the child gets: a hook that puts a copy of it in effect
//! whenever the child runs, a hook derived from it, or nothing (Kotlin's
//! `CopyableThreadContextElement`). The child's hook starts suspended: it is
//! resumed before the child first runs, yields whenever the child suspends,
//! and is dropped, entered, when the child ends (or is resumed and dropped
//! when the child is dropped unfinished).
//!
//! An executor (or a spawn function) captures an [`Inheritance`] on the
//! spawning thread: the context as a [`Snapshot`], and the child's hook. It
//! then runs the child in it with [`Inheritance::scope`] (a future),
//! [`Inheritance::run`] (a closure) or [`Inheritance::task_frame`] (an
//! executor's own task table). The hook wraps the child's frame: it resumes
//! before the hooks the child registers and yields after them, so whatever
//! the child enters nests inside what it inherited.
//!
//! rt-ext's spawn paths (and its runtime-hook mode) ask its built-in
//! inheritors (spans, OpenTelemetry's context) and every inheritor
//! [`register`]ed at run time.

use std::fmt;
use std::future::Future;
use std::mem;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::future::Framed;
use crate::lifecycle::Lifecycle;
use crate::snapshot::Snapshot;
use crate::task::TaskFrame;

/// Says, at each spawn, what hook the spawned work starts with.
///
/// [`child`](Inherit::child) is called by every spawn path on the spawning
/// thread, while the spawner runs, with the context the child starts from.
/// It reads whatever it follows (a thread-local, the current span) and
/// returns the child's hook, or `None` when this child gets nothing.
///
/// Tuples of inheritors are inheritors (each asked in order, their hooks
/// resumed in that order and yielded in reverse), and so is `()` (nothing).
///
/// A child's hook that panics is dropped at once (all that the child
/// inherited: it is one hook) and the panic goes on from the child's poll;
/// if the thread is already unwinding (a child polled or dropped from a
/// destructor), the panic is discarded instead of aborting the process, and
/// the child goes on without the hook.
///
/// # Examples
///
/// A per-thread "tenant" setting that spawned work keeps:
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use std::cell::Cell;
/// use rt_ext::{Inherit, Inheritance, Lifecycle, Snapshot};
///
/// thread_local!(static TENANT: Cell<u32> = const { Cell::new(0) });
///
/// struct FollowTenant;
/// impl Inherit for FollowTenant {
///     type Hook = TenantHook;
///     fn child(&self, _: &Snapshot) -> Option<TenantHook> {
///         let tenant = TENANT.with(Cell::get);
///         (tenant != 0).then_some(TenantHook { tenant, saved: 0 })
///     }
/// }
///
/// struct TenantHook { tenant: u32, saved: u32 }
/// impl Lifecycle for TenantHook {
///     fn on_resume(&mut self) { self.saved = TENANT.with(|t| t.replace(self.tenant)) }
///     fn on_yield(&mut self) { TENANT.with(|t| t.set(self.saved)) }
/// }
/// impl Drop for TenantHook {
///     // Dropped entered, on the thread that ran the child's last step.
///     fn drop(&mut self) { TENANT.with(|t| t.set(self.saved)) }
/// }
///
/// TENANT.with(|t| t.set(7));
/// let inheritance = Inheritance::capture(&FollowTenant);
/// let seen = std::thread::spawn(move || inheritance.run(|| TENANT.with(Cell::get)))
///     .join()
///     .unwrap();
/// assert_eq!(seen, 7);
/// ```
pub trait Inherit: Sync + 'static {
    /// The hook a child starts with.
    type Hook: Lifecycle;

    /// The hook of a piece of work spawned now, from `context` (the
    /// spawner's context, which the child starts from); `None`: nothing.
    fn child(&self, context: &Snapshot) -> Option<Self::Hook>;
}

impl Inherit for () {
    type Hook = ();

    #[inline]
    fn child(&self, _: &Snapshot) -> Option<()> {
        None
    }
}

impl<A: Inherit, B: Inherit> Inherit for (A, B) {
    type Hook = (Option<A::Hook>, Option<B::Hook>);

    #[inline]
    fn child(&self, context: &Snapshot) -> Option<Self::Hook> {
        match (self.0.child(context), self.1.child(context)) {
            (None, None) => None,
            both => Some(both),
        }
    }
}

/// Nothing to do: the hook of `()`, the inheritor of nothing.
impl Lifecycle for () {
    #[inline]
    fn on_yield(&mut self) {}
    #[inline]
    fn on_resume(&mut self) {}
}

/// A hook that may be absent.
impl<H: Lifecycle> Lifecycle for Option<H> {
    #[inline]
    fn on_yield(&mut self) {
        if let Some(h) = self {
            h.on_yield();
        }
    }
    #[inline]
    fn on_resume(&mut self) {
        if let Some(h) = self {
            h.on_resume();
        }
    }
}

/// Two hooks: the first resumes first and yields last.
impl<A: Lifecycle, B: Lifecycle> Lifecycle for (A, B) {
    #[inline]
    fn on_yield(&mut self) {
        self.1.on_yield();
        self.0.on_yield();
    }
    #[inline]
    fn on_resume(&mut self) {
        self.0.on_resume();
        self.1.on_resume();
    }
}

impl<H: Lifecycle + ?Sized> Lifecycle for Box<H> {
    #[inline]
    fn on_yield(&mut self) {
        (**self).on_yield();
    }
    #[inline]
    fn on_resume(&mut self) {
        (**self).on_resume();
    }
}

// ===== inheritors registered at run time =====

/// [`Inherit`] with its hook boxed, for the registry.
trait DynInherit: Sync {
    fn child_boxed(&self, context: &Snapshot) -> Option<Box<dyn Lifecycle>>;
}

impl<I: Inherit> DynInherit for I {
    fn child_boxed(&self, context: &Snapshot) -> Option<Box<dyn Lifecycle>> {
        self.child(context)
            .map(|h| Box::new(h) as Box<dyn Lifecycle>)
    }
}

/// Inheritors added by [`register`], in registration order.
static REGISTERED: RwLock<Vec<&'static dyn DynInherit>> = RwLock::new(Vec::new());

/// Whether [`REGISTERED`] is not empty: what a spawn reads when nothing is.
static ANY_REGISTERED: AtomicBool = AtomicBool::new(false);

/// Adds `inheritor` to the inheritors that every spawn made through
/// [`Registered`] (all of rt-ext's spawn paths) asks, after the built-in
/// ones, for the rest of the process. Registering the same inheritor again
/// does nothing.
///
/// Each child gets one allocation per registered inheritor that returns a
/// hook; a spawn pays nothing while none is registered but one atomic load.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use rt_ext::{Inherit, Lifecycle, Snapshot};
///
/// struct Audit;
/// impl Inherit for Audit {
///     type Hook = ();
///     fn child(&self, _: &Snapshot) -> Option<()> {
///         None // asked at every spawn; gives nothing here
///     }
/// }
///
/// static AUDIT: Audit = Audit;
/// rt_ext::register(&AUDIT);
/// ```
pub fn register<I: Inherit>(inheritor: &'static I) {
    let inheritor: &'static dyn DynInherit = inheritor;
    let mut list = REGISTERED.write().unwrap_or_else(PoisonError::into_inner);
    let known = list
        .iter()
        .any(|i| std::ptr::addr_eq(*i as *const dyn DynInherit, inheritor));
    if !known {
        list.push(inheritor);
        ANY_REGISTERED.store(true, Ordering::Release);
    }
}

/// The inheritors added with [`register`], as one [`Inherit`]; its hook is
/// the list of their hooks.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use rt_ext::{Inheritance, Registered};
///
/// let inheritance = Inheritance::capture(&Registered);
/// assert_eq!(inheritance.run(|| 1 + 1), 2);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Registered;

impl Inherit for Registered {
    type Hook = Hooks;

    #[inline]
    fn child(&self, context: &Snapshot) -> Option<Hooks> {
        if !ANY_REGISTERED.load(Ordering::Acquire) {
            return None;
        }
        registered_hooks(context)
    }
}

#[cold]
fn registered_hooks(context: &Snapshot) -> Option<Hooks> {
    let list = REGISTERED.read().unwrap_or_else(PoisonError::into_inner);
    let hooks: Vec<_> = list.iter().filter_map(|i| i.child_boxed(context)).collect();
    (!hooks.is_empty()).then(|| Hooks(hooks.into_boxed_slice()))
}

/// The hooks that registered inheritors gave one child: resumed in
/// registration order, yielded in reverse. A hook that panics is dropped at
/// once, the others are still called (so that none is dropped half done),
/// and the first panic goes on from the call; as the child's inherited hook
/// is one hook, the child's poll then drops them all.
pub struct Hooks(Box<[Box<dyn Lifecycle>]>);

impl Hooks {
    fn each(&mut self, yielding: bool) {
        let mut first = None;
        let mut i = 0;
        while i < self.0.len() {
            let k = if yielding { self.0.len() - 1 - i } else { i };
            let hook = &mut self.0[k];
            let called = catch_unwind(AssertUnwindSafe(|| {
                if yielding {
                    hook.on_yield();
                } else {
                    hook.on_resume();
                }
            }));
            match called {
                Ok(()) => i += 1,
                // Dropped; `i` stays: resuming, the next hook slid into
                // place `k`; yielding, the next is `k - 1`, which is where
                // `i` points in the shorter list.
                Err(p) => {
                    let mut list = std::mem::take(&mut self.0).into_vec();
                    let gone = list.remove(k);
                    self.0 = list.into_boxed_slice();
                    let _ = crate::frame::catch(move || drop(gone));
                    first.get_or_insert(p);
                }
            }
        }
        if let Some(p) = first {
            resume_unwind(p);
        }
    }
}

impl Lifecycle for Hooks {
    fn on_yield(&mut self) {
        self.each(true);
    }

    fn on_resume(&mut self) {
        self.each(false);
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks").field("len", &self.0.len()).finish()
    }
}

// ===== running spawned work in what it inherits =====

/// What a spawn passes to the work it spawns: the spawner's context and the
/// child's hook from the inheritors `I`, captured on the spawning thread.
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use rt_ext::{Inheritance, Registered, Variable};
///
/// static USER: Variable<&str> = Variable::new("user");
/// let inheritance = USER.sync_scope("ada", || Inheritance::capture(&Registered));
/// # futures::executor::block_on(async {
/// assert_eq!(inheritance.scope(async { USER.get() }).await, Some("ada"));
/// # });
/// ```
pub struct Inheritance<I: Inherit> {
    snapshot: Snapshot,
    hook: Option<I::Hook>,
}

impl<I: Inherit> Inheritance<I> {
    /// Captures the current context and asks `inheritors` for the child's
    /// hook: call it on the spawning thread, at the spawn.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// let inheritance = rt_ext::Inheritance::capture(&());
    /// assert!(!inheritance.has_hook());
    /// ```
    #[inline]
    pub fn capture(inheritors: &I) -> Inheritance<I> {
        Inheritance::from_snapshot(Snapshot::capture(), inheritors)
    }

    /// Like [`capture`](Inheritance::capture), from a given context (the
    /// inheritors still read the calling thread).
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::{Inheritance, Snapshot};
    /// let inheritance = Inheritance::from_snapshot(Snapshot::empty(), &());
    /// assert!(inheritance.snapshot().is_empty());
    /// ```
    #[inline]
    pub fn from_snapshot(snapshot: Snapshot, inheritors: &I) -> Inheritance<I> {
        let hook = inheritors.child(&snapshot);
        Inheritance { snapshot, hook }
    }

    /// The context the child starts from.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// assert!(rt_ext::Inheritance::capture(&()).snapshot().is_empty());
    /// ```
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Whether an inheritor gave the child a hook.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// assert!(!rt_ext::Inheritance::capture(&rt_ext::Registered).has_hook());
    /// ```
    pub fn has_hook(&self) -> bool {
        self.hook.is_some()
    }

    /// Runs `fut` in its own frame that starts from the captured context,
    /// with the child's hook around it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # futures::executor::block_on(async {
    /// let child = rt_ext::Inheritance::capture(&()).scope(async { 7 });
    /// assert_eq!(child.await, 7);
    /// # });
    /// ```
    #[inline]
    pub fn scope<F: Future>(self, fut: F) -> Inherited<Framed<F>, I::Hook> {
        Inherited {
            future: Framed::given(self.snapshot.into_mapping(), fut),
            hook: self.hook,
        }
    }

    /// The child's frame (as [`scope`](Inheritance::scope) makes it) and its
    /// hook, apart: for a spawn that spawns the bare [`Framed`] future when
    /// there is no hook (the common case, at the cost of a framed future and
    /// nothing more), and wraps it with [`Inherited::new`] when there is.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::{Inheritance, Inherited};
    /// # futures::executor::block_on(async {
    /// let out = match Inheritance::capture(&()).scope_and_hook(async { 3 }) {
    ///     (framed, None) => framed.await,
    ///     (framed, Some(hook)) => Inherited::new(framed, hook).await,
    /// };
    /// assert_eq!(out, 3);
    /// # });
    /// ```
    #[inline]
    pub fn scope_and_hook<F: Future>(self, fut: F) -> (Framed<F>, Option<I::Hook>) {
        (Framed::given(self.snapshot.into_mapping(), fut), self.hook)
    }

    /// Runs `f` in a frame that starts from the captured context, with the
    /// child's hook resumed around it, then dropped (entered), even if `f`
    /// panics.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// let inheritance = rt_ext::Inheritance::capture(&());
    /// assert_eq!(std::thread::spawn(move || inheritance.run(|| 5)).join().unwrap(), 5);
    /// ```
    pub fn run<R>(self, f: impl FnOnce() -> R) -> R {
        let mut hook = self.hook;
        if hook.is_some() {
            call(&mut hook, <I::Hook as Lifecycle>::on_resume);
        }
        let result = self.snapshot.run(f);
        drop(hook);
        result
    }

    /// A [`TaskFrame`] that starts from the captured context, with the
    /// child's hook registered in it, suspended: resumed at the frame's first
    /// entry, dropped (entered) when it ends.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// let mut task = rt_ext::Inheritance::capture(&()).task_frame();
    /// task.enter().unwrap();
    /// task.end().unwrap();
    /// ```
    pub fn task_frame(self) -> TaskFrame {
        match self.hook {
            None => TaskFrame::new(self.snapshot),
            Some(hook) => TaskFrame::with_hook(self.snapshot, hook),
        }
    }
}

impl<I: Inherit> fmt::Debug for Inheritance<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inheritance")
            .field("snapshot", &self.snapshot)
            .field("has_hook", &self.hook.is_some())
            .finish()
    }
}

/// Calls `f` on the hook in `slot`. If it panics, the hook is dropped at once
/// and the panic goes on, unless the thread is already unwinding (a poll
/// from a destructor): a second panic would abort the process, so it is
/// discarded and the caller goes on without the hook.
///
/// Always through `catch_unwind`: checking `std::thread::panicking()` first
/// and calling directly otherwise measured 23 instructions more per poll of
/// a task following a span (the check is a call into the standard library).
#[inline]
fn call<L: Lifecycle>(slot: &mut Option<L>, f: fn(&mut L)) {
    let Some(hook) = slot else { return };
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(hook))) {
        hook_panicked(slot, panic);
    }
}

#[cold]
#[inline(never)]
fn hook_panicked<L>(slot: &mut Option<L>, panic: Box<dyn std::any::Any + Send>) {
    let gone = slot.take();
    let _ = crate::frame::catch(move || drop(gone));
    if !std::thread::panicking() {
        resume_unwind(panic);
    }
}

pin_project! {
    /// A spawned future with the hook it inherited around it: the hook
    /// resumes before every poll and yields after every `Pending` poll (or a
    /// poll that unwinds); it is dropped, entered, as soon as the future
    /// finishes, or, when the future is dropped unfinished, resumed while the
    /// future is dropped and dropped after it.
    ///
    /// Made by [`Inheritance::scope`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # futures::executor::block_on(async {
    /// let child: rt_ext::Inherited<_, _> = rt_ext::Inheritance::capture(&()).scope(async { 1 });
    /// assert_eq!(child.await, 1);
    /// # });
    /// ```
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Inherited<F, H: Lifecycle> {
        #[pin]
        future: F,
        hook: Option<H>,
    }

    impl<F, H: Lifecycle> PinnedDrop for Inherited<F, H> {
        fn drop(this: Pin<&mut Self>) {
            // The future (dropped right after this) sees the hook resumed;
            // the hook drops after it, entered.
            let this = this.project();
            call(this.hook, H::on_resume);
        }
    }
}

impl<F, H: Lifecycle> Inherited<F, H> {
    /// `future` (normally a child's [`Framed`] future) with `hook` around
    /// it, suspended until the first poll.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// use rt_ext::{FutureExt, Inherited};
    /// # futures::executor::block_on(async {
    /// let child = Inherited::new(async { 2 }.frame(), ());
    /// assert_eq!(child.await, 2);
    /// # });
    /// ```
    pub fn new(future: F, hook: H) -> Inherited<F, H> {
        Inherited {
            future,
            hook: Some(hook),
        }
    }

    /// The wrapped future.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// let child = rt_ext::Inheritance::capture(&()).scope(async { 1 });
    /// assert!(child.get_ref().get_ref().is_some());
    /// ```
    pub fn get_ref(&self) -> &F {
        &self.future
    }
}

impl<F: Future, H: Lifecycle> Future for Inherited<F, H> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.hook.is_none() {
            return this.future.poll(cx);
        }
        poll_with_hook(this.future, this.hook, cx)
    }
}

#[inline]
fn poll_with_hook<F: Future, H: Lifecycle>(
    future: Pin<&mut F>,
    hook: &mut Option<H>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    call(hook, H::on_resume);
    // Yields the hook if the poll unwinds; forgotten otherwise.
    let resumed = Resumed(Some(hook));
    let poll = future.poll(cx);
    let hook = resumed.disarm();
    if poll.is_ready() {
        // Finished: dropped entered, now rather than with the task.
        *hook = None;
    } else {
        call(hook, H::on_yield);
    }
    poll
}

/// Yields its hook when dropped: on a poll that unwinds.
struct Resumed<'a, H: Lifecycle>(Option<&'a mut Option<H>>);

impl<'a, H: Lifecycle> Resumed<'a, H> {
    /// The poll returned: no unwinding to handle. Forgotten rather than
    /// dropped, which measured 7 instructions per poll less than a `Drop`
    /// run to find nothing to do.
    #[inline]
    fn disarm(mut self) -> &'a mut Option<H> {
        let hook = self.0.take();
        mem::forget(self);
        hook.unwrap_or_else(|| unreachable!("armed once"))
    }
}

impl<H: Lifecycle> Drop for Resumed<'_, H> {
    fn drop(&mut self) {
        if let Some(hook) = self.0.take() {
            call(hook, H::on_yield);
        }
    }
}

impl<F: fmt::Debug, H: Lifecycle> fmt::Debug for Inherited<F, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inherited")
            .field("future", &self.future)
            .field("has_hook", &self.hook.is_some())
            .finish()
    }
}
