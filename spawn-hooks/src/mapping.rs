//! The immutable map from variables to values.
//!
//! A [`Mapping`] is a sorted, shared slice of entries. Cloning it (which is
//! what capturing a snapshot or inheriting into a child does) is one reference
//! count increment. Adding a binding builds a new slice (copy on write); an
//! existing slice is never mutated, so a captured mapping never changes. A
//! frame builds its current mapping from the one it started with and its
//! bindings only when something captures it (see `frame::Frame`).

use std::any::Any;
use std::fmt;
use std::ptr::NonNull;

use crate::sync::{arc_any, arc_slice, Arc, ArcAny};

/// A type-erased, shared value, as mappings and snapshots hold it. The
/// variable id it is stored under fixes its concrete type (see
/// `variable::downcast`).
#[derive(Clone)]
pub(crate) struct Value {
    shared: ArcAny,
    /// Where `shared` keeps the value, found once: reading the value as its
    /// type is then one load, where going through the `Arc` reads the
    /// alignment from the vtable first (4 of the 41 instructions of a
    /// `Variable::get`, benches/icount.sh). Derived from the `Arc`'s own
    /// pointer, so valid for reads of the whole value while it lives.
    data: NonNull<()>,
}

// SAFETY: `data` is only ever read through, as a shared reference to the
// value `shared` holds (`variable::downcast`), and only while `shared`
// keeps it alive; that value is `Send + Sync`, so sending or sharing a
// `Value` sends or shares nothing that an `Arc<dyn Any + Send + Sync>`
// would not. (Pays: the cached address saves `get` 4 instructions of 40,
// see `data`; `NonNull` keeps `Option<&T>` of it free of a null check.)
unsafe impl Send for Value {}
// SAFETY: as for `Send`.
unsafe impl Sync for Value {}

impl Value {
    /// A value of `shared`, whose value is at `at` (`sync::arc_any`).
    #[inline]
    pub(crate) fn new((shared, at): (ArcAny, *const ())) -> Value {
        debug_assert!(std::ptr::eq(at, Arc::as_ptr(&shared).cast::<()>()));
        let Some(data) = NonNull::new(at.cast_mut()) else {
            unreachable!("an `Arc` points to its value")
        };
        Value { shared, data }
    }

    /// Shares `value`.
    #[inline]
    pub(crate) fn of<T: Any + Send + Sync>(value: T) -> Value {
        Value::new(arc_any(value))
    }

    /// The address of the value.
    #[inline]
    pub(crate) fn data(&self) -> NonNull<()> {
        self.data
    }

    /// The value, type-erased.
    pub(crate) fn get(&self) -> &(dyn Any + Send + Sync) {
        &*self.shared
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    pub(crate) value: Value,
}

/// An immutable map from variable ids to values; `None` is the empty map and
/// costs no allocation.
#[derive(Clone, Default)]
pub(crate) struct Mapping {
    entries: Option<Arc<[Entry]>>,
}

/// Below this many entries a linear scan beats a binary search.
const LINEAR_SCAN: usize = 8;

impl Mapping {
    pub(crate) const fn empty() -> Mapping {
        Mapping { entries: None }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.as_deref().map_or(0, <[Entry]>::len)
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<&Value> {
        let entries = self.entries.as_deref()?;
        if entries.len() > LINEAR_SCAN {
            return search(entries, id);
        }
        scan(entries, id)
    }

    /// [`get`](Mapping::get) for a read inlined where a variable is read:
    /// the search of a larger mapping is out of line, so that the read of a
    /// small one stays small (`Variable::get` of a mapping of one entry: 5
    /// instructions less than through `get`, benches/icount.sh).
    #[inline(always)]
    pub(crate) fn get_inlined(&self, id: u64) -> Option<&Value> {
        let entries = self.entries.as_deref()?;
        // One check for "empty or large" (`search_out_of_line` finds nothing
        // in an empty slice): the scan then starts without one.
        if entries.len().wrapping_sub(1) >= LINEAR_SCAN {
            return search_out_of_line(entries, id);
        }
        scan(entries, id)
    }

    /// Returns a new mapping where `id` maps to `value`; `self` is unchanged.
    pub(crate) fn with(&self, id: u64, value: Value) -> Mapping {
        let old = self.entries.as_deref().unwrap_or(&[]);
        let mut entries = Vec::with_capacity(old.len() + 1);
        match old.binary_search_by_key(&id, |e| e.id) {
            Ok(i) => {
                entries.extend_from_slice(old);
                entries[i].value = value;
            }
            Err(i) => {
                entries.extend_from_slice(&old[..i]);
                entries.push(Entry { id, value });
                entries.extend_from_slice(&old[i..]);
            }
        }
        Mapping {
            entries: Some(arc_slice(entries)),
        }
    }

    /// The entries, sorted by id.
    pub(crate) fn entries(&self) -> &[Entry] {
        self.entries.as_deref().unwrap_or(&[])
    }

    /// A mapping of `entries`, which are sorted by id without duplicates.
    pub(crate) fn from_sorted(entries: Vec<Entry>) -> Mapping {
        debug_assert!(entries.windows(2).all(|w| w[0].id < w[1].id));
        if entries.is_empty() {
            return Mapping::empty();
        }
        Mapping {
            entries: Some(arc_slice(entries)),
        }
    }

    /// Whether two mappings are the same allocation (or both empty).
    pub(crate) fn ptr_eq(&self, other: &Mapping) -> bool {
        match (&self.entries, &other.entries) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    pub(crate) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.entries.iter().flat_map(|e| e.iter().map(|e| e.id))
    }
}

/// [`Mapping::get`] in a small mapping. Indexed rather than
/// `iter().find`: a tighter loop (one counter), measured 6 instructions
/// less per read of a mapping of one entry.
#[inline(always)]
fn scan(entries: &[Entry], id: u64) -> Option<&Value> {
    let mut i = 0;
    while i < entries.len() {
        if entries[i].id == id {
            return Some(&entries[i].value);
        }
        i += 1;
    }
    None
}

/// [`Mapping::get`] in a larger mapping.
#[inline]
fn search(entries: &[Entry], id: u64) -> Option<&Value> {
    entries
        .binary_search_by_key(&id, |e| e.id)
        .ok()
        .map(|i| &entries[i].value)
}

/// [`search`], out of line.
#[inline(never)]
fn search_out_of_line(entries: &[Entry], id: u64) -> Option<&Value> {
    search(entries, id)
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.ids()).finish()
    }
}

#[cfg(all(test, not(spawn_hooks_loom)))]
mod tests {
    use super::*;

    fn val(m: &Mapping, id: u64) -> Option<u32> {
        m.get(id).map(|v| *v.get().downcast_ref::<u32>().unwrap())
    }

    #[test]
    fn copy_on_write_leaves_the_original_unchanged() {
        let a = Mapping::empty().with(3, Value::of(30u32));
        let b = a.with(1, Value::of(10u32)).with(3, Value::of(33u32));
        assert_eq!(val(&a, 3), Some(30));
        assert_eq!(val(&a, 1), None);
        assert_eq!(val(&b, 1), Some(10));
        assert_eq!(val(&b, 3), Some(33));
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn lookup_is_right_on_both_sides_of_the_scan_threshold() {
        let mut m = Mapping::empty();
        for id in (1..=40u64).rev() {
            m = m.with(id * 2, Value::of(id as u32));
            for probe in 1..=81u64 {
                let expect = (probe % 2 == 0 && probe / 2 >= id).then_some((probe / 2) as u32);
                assert_eq!(val(&m, probe), expect, "probe {probe} len {}", m.len());
            }
        }
        assert!(m.ids().collect::<Vec<_>>().windows(2).all(|w| w[0] < w[1]));
    }
}
