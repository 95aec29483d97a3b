//! A binding's value, as its frame keeps it.
//!
//! A value bound with `Variable::set` usually lives and dies in its frame:
//! read there a few times, or never, then dropped with its guard. Storing it
//! the way a mapping shares values (an `Arc<dyn Any>`) costs an allocation
//! per binding. So a [`Stored`] value small enough for a fixed buffer is kept
//! in the binding itself, and moved to shared storage (a [`Value`]) only the
//! first time something needs a reference to it that may outlive the
//! binding's place: a snapshot capturing the frame, or a reader borrowing it
//! (`Variable::with`, whose callback may capture).
//!
//! No reference to an inline value is ever handed out: readers only get
//! references into shared storage. That is what makes moving it out (from a
//! `&Stored`, while other bindings of the frame are borrowed) sound.
//!
//! Why the unsafe code pays: a type-erased value in a buffer needs it (to
//! write, read back, move out and drop a `T` the buffer's type does not
//! name), and the buffer is what takes the allocation, its free and the
//! catch around a destructor out of a `set` + drop. Measured with
//! `benches/icount.sh` (`bind_rtext`, a `u64` in a task's frame that has
//! bound before): 142 instructions inline, 567 with every value in an `Arc`
//! and the rest of the binding stack the same (task_local's `sync_scope`:
//! 34). Every unsafe block here is part of that.

use std::any::Any;
use std::cell::UnsafeCell;
use std::fmt;
use std::mem::{self, MaybeUninit};
use std::ptr;

use crate::mapping::Value;
use crate::sync::arc_any_init;

/// The largest value kept inline, in bytes.
const INLINE: usize = 16;

/// The buffer of an inline value: aligned for any value whose alignment is at
/// most 8 (integers, pointers, `Arc`s, `&'static str`, `Option`s of those).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Buf([MaybeUninit<u8>; INLINE]);

/// What a stored value's type contributes, as one static per type.
struct InlineVt {
    /// `drop_in_place` of the value; `None` when the type has no drop glue,
    /// so that removing such a binding runs no user code.
    drop: Option<unsafe fn(*mut Buf)>,
    /// Moves the value at the slot into shared storage (see [`promote`]).
    promote: unsafe fn(*const UnsafeCell<Repr>),
}

enum Repr {
    /// The value, moved into `buf`, of the type `vt` was made for.
    Inline {
        buf: Buf,
        vt: &'static InlineVt,
    },
    Shared(Value),
}

/// A binding's value: inline while nobody else holds it, shared once a
/// snapshot or a reader has needed it. Dropping it drops the value (inline)
/// or its share.
pub(crate) struct Stored(UnsafeCell<Repr>);

/// Whether a `T` fits the inline buffer.
const fn fits<T>() -> bool {
    mem::size_of::<T>() <= INLINE && mem::align_of::<T>() <= mem::align_of::<Buf>()
}

/// The static [`InlineVt`] of `T`.
struct VtOf<T>(T);

impl<T: Any + Send + Sync> VtOf<T> {
    const VT: InlineVt = InlineVt {
        drop: if mem::needs_drop::<T>() {
            Some(drop_inline::<T>)
        } else {
            None
        },
        promote: promote::<T>,
    };
}

/// Drops the `T` in `buf`.
///
/// # Safety
///
/// `buf` holds a `T` (written by `Stored::new`) that is dropped nowhere else.
unsafe fn drop_inline<T>(buf: *mut Buf) {
    // SAFETY: the caller's contract; `buf` is aligned for `T` (`fits`).
    // (Pays: see the module's docs.)
    unsafe { ptr::drop_in_place(buf.cast::<T>()) }
}

/// Moves the inline `T` of the stored value at `cell` into shared storage.
///
/// # Safety
///
/// `cell` is the cell of a live `Stored` made by `Stored::new::<T>` with an
/// inline value, and no reference to its contents is held across this call
/// (only shared references to the `Stored` itself).
unsafe fn promote<T: Any + Send + Sync>(cell: *const UnsafeCell<Repr>) {
    // The allocation comes first, while the cell is not touched: a global
    // allocator is user code, and if it read the same binding (which would
    // promote it), the value would move only once (checked below); and if
    // it fails by unwinding, the value stays where it was.
    let mut shared = std::sync::Arc::<T>::new_uninit();
    // SAFETY: the caller's contract: the cell is live and nothing refers
    // into it, so this exclusive reference is the only one for its life; no
    // user code runs while it lives (the allocation is done). (Pays: see
    // the module's docs.)
    let repr = unsafe { &mut *UnsafeCell::raw_get(cell) };
    let Repr::Inline { buf, .. } = repr else {
        return;
    };
    let Some(slot) = std::sync::Arc::get_mut(&mut shared) else {
        unreachable!("a new `Arc` is unique")
    };
    // SAFETY: `buf` holds a `T` (the caller's contract: it was made for
    // `T`, and is still inline), aligned (`fits`); it is moved out here and
    // the inline variant is overwritten below without being dropped, so the
    // value is neither dropped twice nor lost. The pointer comes from the
    // whole buffer, not a part of it. (Pays: see the module's docs.)
    slot.write(unsafe { ptr::read(ptr::addr_of!(*buf).cast::<T>()) });
    // SAFETY: written just above. (Pays: as `Arc::new`, without moving the
    // value out before the allocation has succeeded.)
    let value = Value::new(unsafe { arc_any_init(shared) });
    // The inline variant has no drop glue of its own (the value in the
    // buffer is dropped by `Stored`'s `Drop`, which sees `Shared` from now
    // on): overwriting it drops nothing.
    *repr = Repr::Shared(value);
}

impl Stored {
    /// Stores `value`: inline when it fits, else shared at once.
    #[inline]
    pub(crate) fn new<T: Any + Send + Sync>(value: T) -> Stored {
        if !fits::<T>() {
            return Stored::shared(Value::of(value));
        }
        let mut buf = Buf([MaybeUninit::uninit(); INLINE]);
        // SAFETY: `T` fits the buffer, in size and alignment (`fits`); the
        // pointer is derived from the whole buffer. The value is owned by the
        // buffer from now on: dropped by `Stored`'s `Drop` through `vt`, or
        // moved out by `promote`, which `vt` also names, both for this `T`.
        // Why unsafe at all: keeping a small value here rather than in an
        // `Arc` saves an allocation, its free and a catch per binding (`set`
        // + drop: 142 instructions against 567, see the module's docs).
        unsafe { ptr::addr_of_mut!(buf).cast::<T>().write(value) };
        Stored(UnsafeCell::new(Repr::Inline {
            buf,
            vt: &VtOf::<T>::VT,
        }))
    }

    /// Stores a value that is already shared.
    #[inline]
    pub(crate) fn shared(value: Value) -> Stored {
        Stored(UnsafeCell::new(Repr::Shared(value)))
    }

    /// The value, moved to shared storage first if it is inline. The only
    /// way to a reference to it, so no reference into the inline buffer ever
    /// exists outside this module.
    #[inline]
    pub(crate) fn get(&self) -> &Value {
        if let Some(value) = self.shared_part() {
            return value;
        }
        self.promote()
    }

    /// The shared value, if it is shared already.
    #[inline]
    fn shared_part(&self) -> Option<&Value> {
        // SAFETY: the only mutation through a shared `Stored` is `promote`,
        // which never runs while a reference into the cell is live (it
        // holds none across user code, and is only called on an inline
        // value, into which no reference is ever made outside it). This
        // reference is shared and lives as long as `self`'s borrow: once
        // shared, a value is never changed through `&self` again, so the
        // reference stays valid. (Pays: a reader needs no borrow flag of its
        // own here, see the module's docs.)
        match unsafe { &*self.0.get() } {
            Repr::Shared(value) => Some(value),
            Repr::Inline { .. } => None,
        }
    }

    #[cold]
    #[inline(never)]
    fn promote(&self) -> &Value {
        // SAFETY: as in `shared_part`: a short shared read of the tag,
        // before any mutation. (Pays: see the module's docs.)
        let vt = match unsafe { &*self.0.get() } {
            Repr::Inline { vt, .. } => *vt,
            Repr::Shared(_) => unreachable!("promoted an already shared value"),
        };
        // SAFETY: `vt` was made for the type of the inline value (`new`);
        // the cell is live, borrowed by `self`, and holds no reference into
        // its contents at this point (`shared_part`'s ended). (Pays: see the
        // module's docs.)
        unsafe { (vt.promote)(&self.0) };
        match self.shared_part() {
            Some(value) => value,
            None => unreachable!("the value was just promoted"),
        }
    }

    /// Whether dropping runs no user code: an inline value without drop
    /// glue. (A shared one may hold the last reference to its value.)
    #[inline]
    pub(crate) fn drops_trivially(&mut self) -> bool {
        match self.0.get_mut() {
            Repr::Inline { vt, .. } => vt.drop.is_none(),
            Repr::Shared(_) => false,
        }
    }
}

impl Drop for Stored {
    #[inline]
    fn drop(&mut self) {
        if let Repr::Inline { buf, vt } = self.0.get_mut() {
            if let Some(drop) = vt.drop {
                // SAFETY: the buffer holds the value `vt` was made for (it
                // was never promoted: a promoted value is `Shared`), dropped
                // only here; the pointer is derived from the whole buffer.
                // (Pays: see the module's docs.)
                unsafe { drop(ptr::addr_of_mut!(*buf)) }
            }
        }
        // A shared value drops its `Arc` with the `Repr`.
    }
}

impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match self.shared_part() {
            Some(_) => "shared",
            None => "inline",
        };
        f.write_str(place)
    }
}

#[cfg(all(test, not(spawn_hooks_loom)))]
mod tests {
    use super::*;
    use crate::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn read<T: Any + Clone>(s: &Stored) -> T {
        s.get().get().downcast_ref::<T>().unwrap().clone()
    }

    fn is_inline(s: &Stored) -> bool {
        s.shared_part().is_none()
    }

    #[test]
    fn small_values_are_inline_until_read() {
        let s = Stored::new(7u64);
        assert!(is_inline(&s));
        assert_eq!(read::<u64>(&s), 7);
        assert!(!is_inline(&s));
        let first = ptr::from_ref(s.get().get().downcast_ref::<u64>().unwrap());
        assert_eq!(
            first,
            ptr::from_ref(s.get().get().downcast_ref::<u64>().unwrap())
        );
    }

    #[test]
    fn large_or_overaligned_values_are_shared_at_once() {
        assert!(!is_inline(&Stored::new([1u64; 3])));
        assert!(!is_inline(&Stored::new(1u128)));
        assert!(is_inline(&Stored::new((1u64, 2u64))));
        assert!(is_inline(&Stored::new("sixteen bytes")));
        assert!(is_inline(&Stored::new(())));
        assert_eq!(read::<[u64; 3]>(&Stored::new([1u64, 2, 3])), [1, 2, 3]);
        assert_eq!(read::<u128>(&Stored::new(5u128)), 5);
    }

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>, u8);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_value_with_drop_glue_is_dropped_once_inline_or_promoted() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut s = Stored::new(Counted(drops.clone(), 1));
        assert!(is_inline(&s) && !s.drops_trivially());
        drop(s);
        assert_eq!(drops.load(Ordering::Relaxed), 1);

        let s = Stored::new(Counted(drops.clone(), 2));
        let shared = s.get().clone();
        assert_eq!(shared.get().downcast_ref::<Counted>().unwrap().1, 2);
        drop(s);
        assert_eq!(drops.load(Ordering::Relaxed), 1, "the snapshot's share");
        drop(shared);
        assert_eq!(drops.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn values_without_drop_glue_drop_trivially_until_shared() {
        let mut s = Stored::new(3u32);
        assert!(s.drops_trivially());
        let _ = s.get();
        assert!(!s.drops_trivially());
        let mut s = Stored::new(String::new());
        assert!(!s.drops_trivially(), "a String is shared at once");
    }

    #[test]
    fn an_inline_arc_keeps_its_count_through_promotion() {
        let inner = Arc::new(5u8);
        let s = Stored::new(inner.clone());
        assert!(is_inline(&s));
        assert_eq!(Arc::strong_count(&inner), 2);
        let shared = s.get().clone();
        assert_eq!(Arc::strong_count(&inner), 2, "moved, not cloned");
        drop((s, shared));
        assert_eq!(Arc::strong_count(&inner), 1);
    }
}
