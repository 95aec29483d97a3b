//! What the models share.
//!
//! Instrumentation (the event log, the live-value counter) uses `std` on
//! purpose: loom runs every model thread on one OS thread, a `std` mutex held
//! for a push never blocks, and keeping it out of loom's sight keeps the
//! number of interleavings down to the ones the core itself creates. All the
//! synchronisation a model relies on (gates, hand-offs, joins) is loom's.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::{Arc as StdArc, Mutex as StdMutex, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use loom::future::AtomicWaker;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Mutex};
use spawn_hooks::Lifecycle;

// ===== running a model =====

/// The payload of the panics the models raise on purpose; the panic hook
/// installed by [`model`] does not print them.
pub const DELIBERATE: &str = "deliberate panic";

/// Checks `f` under loom, for every interleaving within the preemption bound
/// (`LOOM_MAX_PREEMPTIONS`), and prints how many were explored and how long
/// that took (visible with `--nocapture`).
pub fn model<F>(name: &str, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    quiet_deliberate_panics();
    let runs = StdArc::new(StdAtomicUsize::new(0));
    let counted = runs.clone();
    let start = Instant::now();
    loom::model::Builder::new().check(move || {
        counted.fetch_add(1, StdOrdering::Relaxed);
        f();
    });
    eprintln!(
        "{name}: {} interleavings in {:.2?}",
        runs.load(StdOrdering::Relaxed),
        start.elapsed()
    );
}

fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&DELIBERATE) {
                default(info);
            }
        }));
    });
}

// ===== threads =====

loom::thread_local! {
    /// The name of the model thread, for the event log.
    static NAME: Cell<&'static str> = Cell::new("main");
    /// One bit per `Marker` hook in effect on this thread.
    static ACTIVE: Cell<u32> = Cell::new(0);
}

/// Spawns a loom thread that knows itself as `name` in the event log.
pub fn spawn<F, T>(name: &'static str, f: F) -> loom::thread::JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    loom::thread::spawn(move || {
        NAME.with(|n| n.set(name));
        f()
    })
}

/// The name of the calling model thread; `exited` while its thread-locals
/// are being destroyed (a base frame ending with its thread).
pub fn this_thread() -> &'static str {
    NAME.try_with(Cell::get).unwrap_or("exited")
}

/// The tags of the [`Marker`] hooks in effect on the calling thread, as bits.
pub fn active() -> u32 {
    ACTIVE.with(Cell::get)
}

fn set_active(tag: u32, on: bool) {
    let bit = 1 << tag;
    let _ = ACTIVE.try_with(|a| a.set(if on { a.get() | bit } else { a.get() & !bit }));
}

// ===== the event log =====

/// An ordered record of what happened where, as `"<event>@<thread>"` lines.
#[derive(Clone, Default)]
pub struct Log(StdArc<StdMutex<Vec<String>>>);

impl Log {
    /// An empty log.
    pub fn new() -> Log {
        Log::default()
    }

    /// Records `event` as happening on the calling thread.
    pub fn push(&self, event: impl fmt::Display) {
        let line = format!("{event}@{}", this_thread());
        self.0.lock().expect("log").push(line);
    }

    /// The lines recorded so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("log").clone()
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.lines()).finish()
    }
}

// ===== a hook that records its calls =====

/// A lifecycle hook that marks itself in effect on the thread it is entered
/// on (see [`active`]) and logs every call, flagging calls out of turn:
/// `yield!`/`resume!` when a call does not alternate, `drop-yielded` when it
/// is dropped while not entered.
pub struct Marker {
    tag: u32,
    log: Log,
    entered: bool,
}

impl Marker {
    /// A hook, entered from now on on the calling thread.
    pub fn new(tag: u32, log: &Log) -> Marker {
        set_active(tag, true);
        log.push(format_args!("enter {tag}"));
        Marker {
            tag,
            log: log.clone(),
            entered: true,
        }
    }
}

impl Lifecycle for Marker {
    fn on_yield(&mut self) {
        let bang = if self.entered { "" } else { "!" };
        self.log.push(format_args!("yield{bang} {}", self.tag));
        self.entered = false;
        set_active(self.tag, false);
    }

    fn on_resume(&mut self) {
        let bang = if self.entered { "!" } else { "" };
        self.log.push(format_args!("resume{bang} {}", self.tag));
        self.entered = true;
        set_active(self.tag, true);
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let what = if self.entered { "drop" } else { "drop-yielded" };
        self.log.push(format_args!("{what} {}", self.tag));
        set_active(self.tag, false);
    }
}

impl fmt::Debug for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Marker")
            .field("tag", &self.tag)
            .field("entered", &self.entered)
            .finish()
    }
}

// ===== values that count themselves =====

/// A count of live [`Counted`] values.
#[derive(Clone, Debug, Default)]
pub struct Live(StdArc<StdAtomicUsize>);

impl Live {
    /// A counter at zero.
    pub fn new() -> Live {
        Live::default()
    }

    /// How many values made from this counter are alive.
    pub fn count(&self) -> usize {
        self.0.load(StdOrdering::Relaxed)
    }

    /// A value counted until it drops.
    pub fn value(&self, n: u32) -> Counted {
        self.0.fetch_add(1, StdOrdering::Relaxed);
        Counted {
            n,
            live: self.clone(),
        }
    }
}

/// A value that is counted in its [`Live`] while it exists.
#[derive(Debug)]
pub struct Counted {
    /// The payload.
    pub n: u32,
    live: Live,
}

impl Clone for Counted {
    fn clone(&self) -> Counted {
        self.live.value(self.n)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.live.0.fetch_sub(1, StdOrdering::Relaxed);
    }
}

/// Runs `look` when dropped and logs what it returned: shows which context a
/// destructor runs in.
pub struct Probe<F: Fn() -> String> {
    log: Log,
    look: F,
}

impl<F: Fn() -> String> Probe<F> {
    /// A probe that logs `look()` when it drops.
    pub fn new(log: &Log, look: F) -> Probe<F> {
        Probe {
            log: log.clone(),
            look,
        }
    }
}

impl<F: Fn() -> String> Drop for Probe<F> {
    fn drop(&mut self) {
        self.log.push((self.look)());
    }
}

impl<F: Fn() -> String> fmt::Debug for Probe<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe").finish_non_exhaustive()
    }
}

// ===== a gate futures wait on =====

/// A one-shot condition a future can await; [`open`](Gate::open) wakes the
/// waiter, from any thread.
#[derive(Debug)]
pub struct Gate {
    open: AtomicBool,
    /// Some future has registered a waker (so its poll will return `Pending`
    /// unless the gate opens meanwhile).
    armed: AtomicBool,
    waker: AtomicWaker,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate {
            open: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        })
    }

    /// Opens the gate and wakes the future waiting on it, if any.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Spins (yielding to loom) until some future waits on the gate.
    pub fn wait_armed(&self) {
        while !self.armed.load(Ordering::Acquire) {
            loom::thread::yield_now();
        }
    }

    /// A future that completes once the gate is open.
    pub fn wait(&self) -> Wait<'_> {
        Wait { gate: self }
    }
}

/// The future of [`Gate::wait`].
#[derive(Debug)]
pub struct Wait<'a> {
    gate: &'a Gate,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.gate.is_open() {
            return Poll::Ready(());
        }
        self.gate.waker.register_by_ref(cx.waker());
        if self.gate.is_open() {
            return Poll::Ready(());
        }
        // Armed only once this poll is sure to return `Pending`: a thread that
        // waits for `armed` before opening knows the future suspended.
        self.gate.armed.store(true, Ordering::Release);
        Poll::Pending
    }
}

// ===== handing a value to another thread =====

/// A slot one thread fills and another awaits.
#[derive(Debug)]
pub struct Handoff<T> {
    slot: Mutex<Option<T>>,
    waker: AtomicWaker,
}

impl<T> Handoff<T> {
    /// An empty slot.
    pub fn new() -> Arc<Handoff<T>> {
        Arc::new(Handoff {
            slot: Mutex::new(None),
            waker: AtomicWaker::new(),
        })
    }

    /// Fills the slot and wakes the taker.
    pub fn put(&self, value: T) {
        *self.slot.lock().expect("slot") = Some(value);
        self.waker.wake();
    }

    /// Waits (in `loom::future::block_on`) for the value and takes it.
    pub fn take(&self) -> T {
        loom::future::block_on(std::future::poll_fn(|cx| {
            self.waker.register_by_ref(cx.waker());
            match self.slot.lock().expect("slot").take() {
                Some(value) => Poll::Ready(value),
                None => Poll::Pending,
            }
        }))
    }
}

// ===== wakers =====

/// A hand-made waker that logs each wake with the waking thread.
pub fn logging_waker(log: &Log) -> Waker {
    struct Logging(Log);
    impl Wake for Logging {
        fn wake(self: StdArc<Self>) {
            self.0.push("wake");
        }
    }
    Waker::from(StdArc::new(Logging(log.clone())))
}

/// A hand-made waker that raises a flag, and the flag: a thread that polls
/// only after [`WakeFlag::wait`] never polls spuriously.
pub fn flag_waker() -> (Waker, WakeFlag) {
    struct Raise(Arc<AtomicBool>);
    impl Wake for Raise {
        fn wake(self: StdArc<Self>) {
            self.0.store(true, Ordering::Release);
        }
    }
    let flag = Arc::new(AtomicBool::new(false));
    (
        Waker::from(StdArc::new(Raise(flag.clone()))),
        WakeFlag(flag),
    )
}

/// The flag of a [`flag_waker`].
#[derive(Debug)]
pub struct WakeFlag(Arc<AtomicBool>);

impl WakeFlag {
    /// Spins (yielding to loom) until the waker was woken, then lowers the
    /// flag.
    pub fn wait(&self) {
        while !self.0.load(Ordering::Acquire) {
            loom::thread::yield_now();
        }
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Polls `fut` once with `waker`.
pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// A boxed, type-erased, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
