//! A hook as a frame stores it: in place when small (a span guard's hook,
//! an attached OpenTelemetry context, a boxed hook), in a box otherwise,
//! and called where it is.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, MaybeUninit};

use crate::lifecycle::Lifecycle;

/// The room a hook has in its slot: eight words, what a hook holding a
/// `tracing::Span` (five words) plus a few fields takes. A larger or
/// over-aligned hook is boxed, and its box stored here.
type Room = MaybeUninit<[usize; 8]>;

/// A hook of any type, stored in place (or boxed, when it does not fit),
/// with the functions that call and drop it.
///
/// Storing a hook in place rather than in a `Box<dyn Lifecycle>` spares a
/// registration its allocation and its removal the free: 146 instructions of
/// the 1,111 of a span guard taken and dropped (`span_guard_enter`,
/// benches/icount.sh).
pub(crate) struct StoredHook {
    /// The hook (or its box). In a cell: while a pass calls the hook through
    /// a [`HookPtr`], the frame's other code may hold shared references to
    /// the slot this is in, which assert nothing about a cell's contents.
    room: UnsafeCell<Room>,
    calls: &'static Calls,
}

/// The functions of one hook type, called on the hook's address.
struct Calls {
    on_resume: unsafe fn(*mut u8),
    on_yield: unsafe fn(*mut u8),
    drop: unsafe fn(*mut u8),
}

/// The [`Calls`] of `H`.
struct CallsOf<H>(PhantomData<H>);

impl<H: Lifecycle> CallsOf<H> {
    const CALLS: Calls = Calls {
        on_resume: on_resume::<H>,
        on_yield: on_yield::<H>,
        drop: drop_hook::<H>,
    };
}

/// Calls `on_resume` of the `H` at `hook`.
///
/// # Safety
///
/// `hook` is the address of a live `H` that nothing else uses meanwhile.
unsafe fn on_resume<H: Lifecycle>(hook: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { (*hook.cast::<H>()).on_resume() }
}

/// Calls `on_yield` of the `H` at `hook`.
///
/// # Safety
///
/// As for [`on_resume`].
unsafe fn on_yield<H: Lifecycle>(hook: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { (*hook.cast::<H>()).on_yield() }
}

/// Drops the `H` at `hook` in place.
///
/// # Safety
///
/// As for [`on_resume`]; the `H` is not used again.
unsafe fn drop_hook<H>(hook: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { hook.cast::<H>().drop_in_place() }
}

// SAFETY: a `StoredHook` owns one `H: Lifecycle`, which is `Send`, in place
// or in a `Box<H>`, which is `Send` too; it holds no other data, and its
// calls only reach the hook through the `StoredHook` (or a `HookPtr` made
// from it, which the pass that made it uses on the thread that holds it).
unsafe impl Send for StoredHook {}

impl StoredHook {
    /// Stores `hook`: in place if it fits in the room (size and alignment),
    /// else boxed, with its box in place.
    #[inline]
    pub(crate) fn new<H: Lifecycle>(hook: H) -> StoredHook {
        if fits::<H>() {
            StoredHook::in_room(hook)
        } else {
            // A `Box<H>` is one word: it fits.
            StoredHook::in_room(Box::new(hook))
        }
    }

    /// Stores `hook` in place; it fits (else this panics, unreachably).
    #[inline]
    fn in_room<H: Lifecycle>(hook: H) -> StoredHook {
        // A constant once `H` is known: no check is left in the code.
        assert!(fits::<H>(), "a hook stored in place fits");
        let mut room = Room::uninit();
        // SAFETY: `H` fits in `room`, in size and in alignment (asserted
        // above); `room` is a fresh local, written once.
        unsafe { room.as_mut_ptr().cast::<H>().write(hook) };
        StoredHook {
            room: UnsafeCell::new(room),
            calls: &CallsOf::<H>::CALLS,
        }
    }

    /// Calls the hook's `on_resume`.
    #[inline]
    pub(super) fn on_resume(&mut self) {
        // SAFETY: the room holds the hook `calls` belongs to (`new`), and
        // `&mut self` is the only way to it now.
        unsafe { (self.calls.on_resume)(self.room.get_mut().as_mut_ptr().cast()) }
    }

    /// A pointer to call the hook through where it is (see [`HookPtr`]).
    #[inline]
    pub(super) fn as_ptr(&self) -> HookPtr {
        HookPtr {
            hook: self.room.get().cast(),
            calls: self.calls,
        }
    }
}

/// Whether an `H` fits in a hook's room, in size and alignment.
const fn fits<H>() -> bool {
    mem::size_of::<H>() <= mem::size_of::<Room>() && mem::align_of::<H>() <= mem::align_of::<Room>()
}

impl Drop for StoredHook {
    fn drop(&mut self) {
        // SAFETY: the room holds the hook `calls` belongs to (`new`), and
        // `&mut self` is the only way to it; it is not used again.
        unsafe { (self.calls.drop)(self.room.get_mut().as_mut_ptr().cast()) }
    }
}

impl fmt::Debug for StoredHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredHook").finish_non_exhaustive()
    }
}

/// The address of a [`StoredHook`]'s hook and its functions: what a pass
/// over a frame's hooks calls, with the frame not borrowed.
#[derive(Clone, Copy)]
pub(super) struct HookPtr {
    hook: *mut u8,
    calls: &'static Calls,
}

impl HookPtr {
    /// Calls the hook's `on_resume`, or its `on_yield` when `yielding`.
    ///
    /// # Safety
    ///
    /// The `StoredHook` this came from is alive and has not moved, and
    /// nothing else calls or drops its hook until this returns.
    #[inline]
    pub(super) unsafe fn call(self, yielding: bool) {
        // SAFETY: the caller's contract: `hook` is the address of the live
        // hook `calls` belongs to, used by nothing else meanwhile.
        unsafe {
            if yielding {
                (self.calls.on_yield)(self.hook)
            } else {
                (self.calls.on_resume)(self.hook)
            }
        }
    }
}

#[cfg(all(test, not(spawn_hooks_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counting<const N: usize> {
        calls: Arc<AtomicUsize>,
        _pad: [u64; N],
    }

    impl<const N: usize> Lifecycle for Counting<N> {
        fn on_yield(&mut self) {
            self.calls.fetch_add(10, Ordering::Relaxed);
        }
        fn on_resume(&mut self) {
            self.calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl<const N: usize> Drop for Counting<N> {
        fn drop(&mut self) {
            self.calls.fetch_add(100, Ordering::Relaxed);
        }
    }

    fn exercise<const N: usize>() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut stored = StoredHook::new(Counting::<N> {
            calls: calls.clone(),
            _pad: [7; N],
        });
        stored.on_resume();
        // SAFETY: `stored` lives, stays put and is not used meanwhile.
        unsafe { stored.as_ptr().call(true) };
        // SAFETY: as above.
        unsafe { stored.as_ptr().call(false) };
        // Moved between calls, as a slot is when its list grows.
        let moved = [stored];
        assert_eq!(calls.load(Ordering::Relaxed), 12);
        drop(moved);
        assert_eq!(calls.load(Ordering::Relaxed), 112);
        assert_eq!(Arc::strong_count(&calls), 1, "dropped once");
    }

    #[test]
    fn small_and_large_hooks_are_called_and_dropped_once() {
        // In place (one word short of the room, and the whole room) ...
        exercise::<6>();
        exercise::<7>();
        // ... and boxed.
        exercise::<8>();
        exercise::<64>();
    }

    #[test]
    fn a_boxed_trait_object_is_stored_in_place() {
        let calls = Arc::new(AtomicUsize::new(0));
        let boxed: Box<dyn Lifecycle> = Box::new(Counting::<0> {
            calls: calls.clone(),
            _pad: [],
        });
        let mut stored = StoredHook::new(boxed);
        stored.on_resume();
        drop(stored);
        assert_eq!(calls.load(Ordering::Relaxed), 101);
    }

    #[test]
    fn over_aligned_hooks_are_boxed() {
        #[repr(align(64))]
        struct Aligned(Arc<AtomicUsize>);
        impl Lifecycle for Aligned {
            fn on_yield(&mut self) {}
            fn on_resume(&mut self) {
                assert_eq!(self as *mut Aligned as usize % 64, 0);
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let mut stored = StoredHook::new(Aligned(calls.clone()));
        stored.on_resume();
        drop(stored);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(Arc::strong_count(&calls), 1);
    }
}
