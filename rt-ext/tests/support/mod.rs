//! Helpers shared by the integration tests. Each test binary includes what it
//! uses with `mod support;`.
#![allow(dead_code, unreachable_pub)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use rt_ext::Lifecycle;

// Compiled only where a test that uses it is built: `axum_service`
// (`tower`) and `otel_service` (`opentelemetry` and `propagation`).
#[cfg(any(
    feature = "tower",
    all(feature = "opentelemetry", feature = "propagation")
))]
pub mod http;
// Needs the `propagation` feature, as its tests do: `otel_propagator` and
// `propagation_otel_interop`.
#[cfg(feature = "propagation")]
pub mod propagation;

// ===== counting allocator =====

/// Counts allocations per thread and live bytes per process.
pub struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the counters
// are a const-initialized thread-local without destructor and an atomic,
// neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count(bytes: isize) {
    LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

/// Allocations made so far by the calling thread.
pub fn thread_allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

/// Bytes allocated and not yet freed, by the whole process.
pub fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

// ===== futures =====

/// Returns `Pending` once (waking itself), then `Ready`.
pub async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// A waker that does nothing.
pub fn noop_waker() -> Waker {
    Waker::from(Arc::new(Noop))
}

/// Polls `fut` once with a no-op waker.
pub fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    let waker = noop_waker();
    fut.poll(&mut Context::from_waker(&waker))
}

// ===== a recording hook =====

/// What a [`Recorder`] hook saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Yield(&'static str),
    Resume(&'static str),
    Dropped { name: &'static str, entered: bool },
    Note(String),
}

/// A shared, ordered log of events.
pub type Log = Arc<Mutex<Vec<Event>>>;

/// A hook that logs its calls, checks that they alternate, and records the
/// state it is dropped in.
pub struct Recorder {
    pub name: &'static str,
    pub log: Log,
    pub entered: bool,
}

impl Recorder {
    pub fn new(name: &'static str, log: &Log) -> Recorder {
        Recorder {
            name,
            log: log.clone(),
            entered: true,
        }
    }
}

impl Lifecycle for Recorder {
    fn on_yield(&mut self) {
        assert!(self.entered, "{}: on_yield twice in a row", self.name);
        self.entered = false;
        self.log.lock().unwrap().push(Event::Yield(self.name));
    }
    fn on_resume(&mut self) {
        assert!(!self.entered, "{}: on_resume twice in a row", self.name);
        self.entered = true;
        self.log.lock().unwrap().push(Event::Resume(self.name));
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Ok(mut log) = self.log.lock() {
            log.push(Event::Dropped {
                name: self.name,
                entered: self.entered,
            });
        }
    }
}

/// A tiny deterministic generator (xorshift), for reproducible "random"
/// schedules.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
