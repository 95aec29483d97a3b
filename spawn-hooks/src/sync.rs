//! The one place the core takes its shared-state primitives from.
//!
//! Under `--cfg spawn_hooks_loom` every atomic, `Arc`, mutex and thread-local
//! that carries synchronisation comes from loom, so the models in
//! `loom-tests/` explore every interleaving of them. In a normal build these
//! are plain re-exports of `std`: the shim costs nothing.
//!
//! Two things deliberately stay on `std` in both builds: the counter that gives
//! each `Variable` its id (a `Variable` must be const-constructible in a
//! `static`, and loom's atomics are not const) and `RefCell`, which never
//! crosses a thread.

#[cfg(not(spawn_hooks_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
    pub(crate) use std::thread_local;

    use super::ArcAny;

    /// One step of a wait for another thread: a spin first, then a yield.
    pub(crate) fn backoff(spins: &mut u32) {
        if *spins < 100 {
            *spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }

    /// Makes an `Arc<[T]>` from a vector.
    pub(crate) fn arc_slice<T>(v: Vec<T>) -> Arc<[T]> {
        Arc::from(v)
    }

    /// Makes a type-erased value; with the address of the value in it,
    /// taken from the typed `Arc` (a constant offset, where the erased one
    /// reads the alignment from the vtable).
    pub(crate) fn arc_any<T: std::any::Any + Send + Sync>(v: T) -> (ArcAny, *const ()) {
        let v = Arc::new(v);
        let at = Arc::as_ptr(&v).cast::<()>();
        (v, at)
    }

    /// [`arc_any`] of an initialized `Arc::new_uninit`.
    ///
    /// # Safety
    ///
    /// The value is initialized.
    pub(crate) unsafe fn arc_any_init<T: std::any::Any + Send + Sync>(
        v: Arc<std::mem::MaybeUninit<T>>,
    ) -> (ArcAny, *const ()) {
        // SAFETY: the caller's contract.
        let v = unsafe { v.assume_init() };
        let at = Arc::as_ptr(&v).cast::<()>();
        (v, at)
    }
}

#[cfg(spawn_hooks_loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

    use super::ArcAny;

    /// One step of a wait for another thread: under loom, a yield, so that
    /// the model lets the other thread run (a spin would never end).
    pub(crate) fn backoff(_: &mut u32) {
        loom::thread::yield_now();
    }

    /// `loom::thread_local!`, also accepting std's `const { ... }`
    /// initializer (loom's macro matches the initializer as an `expr`
    /// fragment, which a `const` block is not): loom's thread-locals are
    /// initialized lazily either way, so the block is just evaluated.
    macro_rules! loom_thread_local {
        ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr }; $($rest:tt)*) => {
            loom::thread_local!($(#[$attr])* $vis static $name: $t = $init;);
            $crate::sync::thread_local!($($rest)*);
        };
        ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr }) => {
            loom::thread_local!($(#[$attr])* $vis static $name: $t = $init;);
        };
        ($($other:tt)*) => {
            loom::thread_local!($($other)*);
        };
    }
    pub(crate) use loom_thread_local as thread_local;

    /// Makes an `Arc<[T]>` from a vector (loom's `Arc` cannot coerce).
    pub(crate) fn arc_slice<T>(v: Vec<T>) -> Arc<[T]> {
        Arc::from_std(std::sync::Arc::from(v))
    }

    /// Makes a type-erased value (loom's `Arc` cannot coerce), with the
    /// address of the value in it (loom's `Arc` keeps the std one).
    pub(crate) fn arc_any<T: std::any::Any + Send + Sync>(v: T) -> (ArcAny, *const ()) {
        let v = std::sync::Arc::new(v);
        let at = std::sync::Arc::as_ptr(&v).cast::<()>();
        (
            Arc::from_std(v as std::sync::Arc<dyn std::any::Any + Send + Sync>),
            at,
        )
    }

    /// [`arc_any`] of an initialized `Arc::new_uninit`.
    ///
    /// # Safety
    ///
    /// The value is initialized.
    pub(crate) unsafe fn arc_any_init<T: std::any::Any + Send + Sync>(
        v: std::sync::Arc<std::mem::MaybeUninit<T>>,
    ) -> (ArcAny, *const ()) {
        // SAFETY: the caller's contract.
        let v = unsafe { v.assume_init() };
        let at = std::sync::Arc::as_ptr(&v).cast::<()>();
        (
            Arc::from_std(v as std::sync::Arc<dyn std::any::Any + Send + Sync>),
            at,
        )
    }
}

pub(crate) use imp::*;

/// A type-erased shared value.
pub(crate) type ArcAny = Arc<dyn std::any::Any + Send + Sync>;

/// Locks a mutex, ignoring poisoning: no code that can panic ever runs while
/// one of the core's mutexes is held, so a poisoned lock holds consistent data.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
