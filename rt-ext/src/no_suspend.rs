//! The held-across-await detector: a wrapper for values that must not be
//! held while their task is suspended, which reports it when they are.

use std::any::type_name;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::Location;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{HookGuard, Lifecycle};

/// Suspensions seen so far with a [`NoSuspend`] value held.
static SUSPENDED_WHILE_HELD: AtomicU64 = AtomicU64::new(0);

/// Whether every detection panics.
static PANIC_ON_SUSPEND: AtomicBool = AtomicBool::new(false);

/// Wraps `value`, which must not be held across an `.await` (a
/// `std::sync::MutexGuard`, a `RefCell` borrow, the guard of a plain
/// `span.enter()`): whenever its frame suspends while the wrapper lives, the
/// suspension is reported. Same as [`NoSuspend::new`].
///
/// A report adds one to [`suspended_while_held`]; with the `tracing` feature
/// it is also a warning (target `rt_ext::no_suspend`) that names the value's
/// type and the location of this call; and it panics if
/// [`set_panic_on_suspend`] is on or the wrapper was made by
/// [`NoSuspend::strict`]. The panic comes out of the suspending poll, after
/// the frame is left.
///
/// Nothing is registered until this is called, so code that does not use it
/// pays nothing. In a tokio runtime thread's unframed code (a plain
/// `tokio::spawn` task) there is no frame to watch and nothing is reported.
///
/// # Examples
///
/// ```
/// use std::sync::Mutex;
/// use rt_ext as ctx;
///
/// static QUEUE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
///
/// let before = ctx::suspended_while_held();
/// ctx::Builder::new_current_thread().build().unwrap().block_on(async {
///     let mut queue = ctx::no_suspend(QUEUE.lock().unwrap());
///     queue.push(1);
///     tokio::task::yield_now().await; // reported: the lock is held here
///     drop(queue);
///     let mut queue = ctx::no_suspend(QUEUE.lock().unwrap());
///     queue.push(2);
///     drop(queue); // released before the await: nothing to report
///     tokio::task::yield_now().await;
/// });
/// assert_eq!(ctx::suspended_while_held() - before, 1);
/// ```
#[track_caller]
pub fn no_suspend<T>(value: T) -> NoSuspend<T> {
    NoSuspend::watch(value, false, Location::caller())
}

/// How many times, so far in this process, a frame suspended while a
/// [`NoSuspend`] value was held in it.
///
/// # Examples
///
/// ```
/// let seen = rt_ext::suspended_while_held();
/// # let _ = seen;
/// ```
pub fn suspended_while_held() -> u64 {
    SUSPENDED_WHILE_HELD.load(Ordering::Relaxed)
}

/// Makes every later detection panic (`true`), or only those of
/// [`NoSuspend::strict`] wrappers (`false`, the default), process-wide. Meant
/// for tests and debug builds.
///
/// # Examples
///
/// ```
/// use std::cell::RefCell;
/// use rt_ext as ctx;
///
/// ctx::set_panic_on_suspend(true);
/// let cell = RefCell::new(0);
/// let rt = ctx::Builder::new_current_thread().build().unwrap();
/// let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
///     rt.block_on(async {
///         let _borrow = ctx::no_suspend(cell.borrow_mut());
///         tokio::task::yield_now().await;
///     })
/// }));
/// ctx::set_panic_on_suspend(false);
/// assert!(caught.is_err());
/// ```
pub fn set_panic_on_suspend(on: bool) {
    PANIC_ON_SUSPEND.store(on, Ordering::Relaxed);
}

/// A value that must not be held across an `.await`, made by [`no_suspend`];
/// it dereferences to the value. See [`no_suspend`] for what a detection
/// does.
///
/// # Examples
///
/// ```
/// use rt_ext::NoSuspend;
///
/// let mut n = NoSuspend::new(1);
/// *n += 1;
/// assert_eq!(NoSuspend::into_inner(n), 2);
/// ```
#[must_use = "the value is released when this wrapper is dropped"]
pub struct NoSuspend<T> {
    // Declared first, so the value is released before the watch ends.
    value: T,
    location: &'static Location<'static>,
    watch: Option<HookGuard>,
}

impl<T> NoSuspend<T> {
    /// Wraps `value`; see [`no_suspend`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::cell::RefCell;
    ///
    /// let cell = RefCell::new(vec![1]);
    /// let borrowed = rt_ext::NoSuspend::new(cell.borrow());
    /// assert_eq!(borrowed.len(), 1);
    /// ```
    #[track_caller]
    pub fn new(value: T) -> NoSuspend<T> {
        NoSuspend::watch(value, false, Location::caller())
    }

    /// Wraps `value` so that a suspension while it is held panics, whatever
    /// [`set_panic_on_suspend`] says.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext as ctx;
    ///
    /// let rt = ctx::Builder::new_current_thread().build().unwrap();
    /// let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     rt.block_on(async {
    ///         let _held = ctx::NoSuspend::strict("must not cross an await");
    ///         tokio::task::yield_now().await;
    ///     })
    /// }));
    /// assert!(caught.is_err());
    /// ```
    #[track_caller]
    pub fn strict(value: T) -> NoSuspend<T> {
        NoSuspend::watch(value, true, Location::caller())
    }

    /// Ends the watch and returns the value.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = rt_ext::no_suspend(5);
    /// assert_eq!(rt_ext::NoSuspend::into_inner(n), 5);
    /// ```
    pub fn into_inner(this: NoSuspend<T>) -> T {
        let NoSuspend { value, watch, .. } = this;
        drop(watch);
        value
    }

    /// Where the wrapper was made: the caller of [`no_suspend`],
    /// [`NoSuspend::new`] or [`NoSuspend::strict`].
    ///
    /// # Examples
    ///
    /// ```
    /// let n = rt_ext::no_suspend(());
    /// assert_eq!(rt_ext::NoSuspend::location(&n).file(), file!());
    /// assert_eq!(rt_ext::NoSuspend::location(&n).line(), line!() - 2);
    /// ```
    pub fn location(this: &NoSuspend<T>) -> &'static Location<'static> {
        this.location
    }

    fn watch(value: T, strict: bool, location: &'static Location<'static>) -> NoSuspend<T> {
        let watch = Watch {
            location,
            held: type_name::<T>(),
            strict,
        };
        NoSuspend {
            value,
            location,
            // Refused only where no frame could tell us of a suspension.
            watch: crate::try_enter(watch).ok(),
        }
    }
}

impl<T> Deref for NoSuspend<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for NoSuspend<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for NoSuspend<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoSuspend")
            .field("value", &self.value)
            .field("location", &self.location)
            .finish()
    }
}

// ===== the hook =====

/// Registered in the frame of a [`NoSuspend`] while it lives.
struct Watch {
    location: &'static Location<'static>,
    held: &'static str,
    strict: bool,
}

impl Lifecycle for Watch {
    fn on_yield(&mut self) {
        // An unwinding poll also leaves the frame, but that is no suspension.
        if std::thread::panicking() {
            return;
        }
        SUSPENDED_WHILE_HELD.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        ::tracing::warn!(
            target: "rt_ext::no_suspend",
            location = %self.location,
            held = self.held,
            "a value that must not be held across an await was held while its task suspended",
        );
        if self.strict || PANIC_ON_SUSPEND.load(Ordering::Relaxed) {
            panic!(
                "rt-ext: a `{}` made by `no_suspend` at {} was held while its task suspended",
                self.held, self.location
            );
        }
    }

    fn on_resume(&mut self) {}
}
