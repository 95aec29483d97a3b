//! The memory a compact decode takes is bounded by its input, whatever the
//! input declares: a collection's length field that claims more elements
//! than follow (up to `u64::MAX`) costs no more than the elements that are
//! really there. Checked with a global allocator that records the largest
//! single allocation, for every collection type serde supports, under
//! hostile length fields, in inputs from a few bytes to the size limit.
#![cfg(feature = "propagation")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};

use rt_ext::propagation::{Codec, SkipReason};
use rt_ext::{Snapshot, Variable};
use serde::de::DeserializeOwned;
use serde::Serialize;

// ===== the largest allocation, per thread =====

struct Counting;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are this allocator's; the bookkeeping
// touches only a thread-local with a const initializer, which never
// allocates (and `try_with` never panics, even during thread teardown).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns the largest single allocation it made, in bytes.
fn largest_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    let result = f();
    (result, LARGEST.with(Cell::get))
}

// ===== hostile inputs =====

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A compact input of one entry, `name`, whose value is `value`.
fn input(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0xC7, 1, 1];
    varint(&mut out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    varint(&mut out, 0);
    varint(&mut out, value.len() as u64);
    out.extend_from_slice(value);
    out
}

/// A value that declares `declared` elements and holds `held` copies of
/// `element` (the postcard bytes of one element, or of a key and a value).
fn collection(declared: u64, element: &[u8], held: usize) -> Vec<u8> {
    let mut value = Vec::new();
    varint(&mut value, declared);
    for _ in 0..held {
        value.extend_from_slice(element);
    }
    value
}

/// The most a decode may allocate at once for an input of `len` bytes
/// whose collection elements take `element_size` bytes in memory. A valid
/// input can make the decoder presize a collection for as many elements as
/// it has bytes (an element takes at least one), and a hash table rounds
/// its buckets up to twice that, each with a control byte; 1 KiB is for
/// what any decode allocates (the snapshot, the report of a skipped entry).
fn bound(len: usize, element_size: usize) -> usize {
    1024 + 3 * len * (element_size + 1)
}

/// How one collection type fared: the largest allocation against its input,
/// for inputs of 1 KiB and more (where what every decode allocates does not
/// count), and the largest allocation for shorter inputs.
#[derive(Debug, Default)]
struct Fared {
    worst_ratio: f64,
    worst: (usize, usize),
    largest_short: (usize, usize),
}

/// Decodes `var`, of a collection type `T` with elements of `element_size`
/// bytes in memory, from hostile inputs: every declared length from `u64::MAX`
/// down to exactly what follows, with nothing, a few, or as many elements as
/// fit in the size limit after it. Each decode's largest allocation must be
/// within [`bound`]; the worst ratio to the input's size is returned.
fn check<T>(var: &'static Variable<T>, element: &[u8], element_size: usize) -> Fared
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    let codec = Codec::builder().var(var).build().unwrap();
    let name = var.name();
    let overhead = input(name, &collection(u64::MAX, &[], 0)).len() + 2;
    let fits = (codec.max_bytes() - overhead) / element.len();
    let mut fared = Fared::default();
    let mut hostile = 0;
    for held in [0, 1, 3, 100, fits] {
        let mut declared = vec![
            u64::MAX,
            u64::MAX >> 1,
            u64::from(u32::MAX),
            1 << 20,
            1 << 16,
            10_000,
        ];
        // lengths near what follows: exactly, one more, the bytes left
        let bytes = (held * element.len()) as u64;
        declared.extend([held as u64 + 1, bytes, bytes + 1, 2 * bytes + 8]);
        for declared in declared {
            let input = input(name, &collection(declared, element, held));
            assert!(input.len() <= codec.max_bytes());
            let (decoded, largest) =
                largest_of(|| codec.decode_onto(&Snapshot::empty(), &input).unwrap());
            if declared != held as u64 {
                hostile += 1;
                assert!(
                    matches!(decoded.skipped()[..], [ref s] if matches!(s.reason(), SkipReason::Corrupt(_))),
                    "{name}: declared {declared}, held {held}: {:?}",
                    decoded.skipped()
                );
            }
            let limit = bound(input.len(), element_size);
            assert!(
                largest <= limit,
                "{name}: an input of {} bytes (declared {declared}, held {held}) made an allocation of {largest} bytes (bound {limit})",
                input.len()
            );
            let ratio = largest as f64 / input.len() as f64;
            if input.len() < 1024 {
                if largest > fared.largest_short.0 {
                    fared.largest_short = (largest, input.len());
                }
            } else if ratio > fared.worst_ratio {
                fared.worst_ratio = ratio;
                fared.worst = (largest, input.len());
            }
        }
    }
    assert!(hostile > 40);
    println!(
        "{name}: largest allocation {:.1} x the input at most from 1 KiB up ({} bytes for {}); \
         under 1 KiB, {} bytes at most (for {})",
        fared.worst_ratio,
        fared.worst.0,
        fared.worst.1,
        fared.largest_short.0,
        fared.largest_short.1
    );
    fared
}

// ===== every collection serde supports =====

static VEC_U8: Variable<Vec<u8>> = Variable::new("vec_u8");
static VEC_U64: Variable<Vec<u64>> = Variable::new("vec_u64");
static VEC_STRING: Variable<Vec<String>> = Variable::new("vec_string");
static NESTED: Variable<Vec<Vec<String>>> = Variable::new("nested");
static HASH_MAP: Variable<HashMap<String, String>> = Variable::new("hash_map");
static HASH_MAP_U8: Variable<HashMap<u8, u8>> = Variable::new("hash_map_u8");
static MAP_OF_VECS: Variable<HashMap<u8, Vec<u64>>> = Variable::new("map_of_vecs");
static BTREE_MAP: Variable<BTreeMap<String, String>> = Variable::new("btree_map");
static HASH_SET: Variable<HashSet<String>> = Variable::new("hash_set");
static HASH_SET_U8: Variable<HashSet<u8>> = Variable::new("hash_set_u8");
static BTREE_SET: Variable<BTreeSet<u32>> = Variable::new("btree_set");
static VEC_DEQUE: Variable<VecDeque<String>> = Variable::new("vec_deque");
static VEC_DEQUE_U8: Variable<VecDeque<u8>> = Variable::new("vec_deque_u8");
static BINARY_HEAP: Variable<BinaryHeap<u16>> = Variable::new("binary_heap");
static LINKED_LIST: Variable<LinkedList<u8>> = Variable::new("linked_list");
static STRING: Variable<String> = Variable::new("string");
static BOXED_SLICE: Variable<Box<[String]>> = Variable::new("boxed_slice");
static BOXED_BYTES: Variable<Box<[u8]>> = Variable::new("boxed_bytes");

const STRING_SIZE: usize = std::mem::size_of::<String>();

#[test]
fn sequences_presize_no_more_than_their_input_holds() {
    check(&VEC_U8, &[7], 1);
    check(&VEC_U64, &[0xff, 0x01], 8);
    check(&VEC_STRING, &[1, b'a'], STRING_SIZE);
    check(&VEC_DEQUE, &[1, b'a'], STRING_SIZE);
    check(&VEC_DEQUE_U8, &[7], 1);
    check(&BINARY_HEAP, &[9], 2);
    check(&LINKED_LIST, &[9], 1);
    check(&BOXED_SLICE, &[1, b'a'], STRING_SIZE);
    check(&BOXED_BYTES, &[7], 1);
}

#[test]
fn nested_sequences_presize_no_more_than_their_input_holds() {
    // each element an inner sequence of one string
    check(&NESTED, &[1, 1, b'a'], std::mem::size_of::<Vec<String>>());
    // each element an inner sequence that itself lies about its length
    check(
        &NESTED,
        &[0xff, 0x7f, 1, b'a'],
        std::mem::size_of::<Vec<String>>(),
    );
}

#[test]
fn maps_presize_no_more_than_their_input_holds() {
    check(&HASH_MAP, &[1, b'k', 1, b'v'], 2 * STRING_SIZE);
    check(&HASH_MAP_U8, &[1, 2], 2);
    check(&BTREE_MAP, &[1, b'k', 1, b'v'], 2 * STRING_SIZE);
    check(&MAP_OF_VECS, &[1, 0xff, 0x7f, 5], 1 + 3 * 8);
}

#[test]
fn sets_presize_no_more_than_their_input_holds() {
    check(&HASH_SET, &[1, b'a'], STRING_SIZE);
    check(&HASH_SET_U8, &[3], 1);
    check(&BTREE_SET, &[3], 4);
}

#[test]
fn strings_allocate_no_more_than_their_input_holds() {
    // a string's bytes: postcard checks its length against what follows
    check(&STRING, b"a", 1);
}

/// The example of the report: 21 bytes declaring `u64::MAX` entries.
#[test]
fn a_map_declaring_u64_max_entries_allocates_no_more_than_a_few_hundred_bytes() {
    let codec = Codec::builder().var(&HASH_MAP).build().unwrap();
    let input = [
        0xc7, 0x01, 0x01, 0x08, b'h', b'a', b's', b'h', b'_', b'm', b'a', b'p', 0x00, 0x0a, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ];
    let (decoded, largest) = largest_of(|| codec.decode_onto(&Snapshot::empty(), &input).unwrap());
    assert!(decoded.snapshot().is_empty());
    assert!(matches!(
        decoded.skipped()[0].reason(),
        SkipReason::Corrupt(_)
    ));
    assert!(largest <= 512, "{largest} bytes");
}

// ===== elements that take no bytes =====

#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
struct Marker;

/// Takes no bytes on the wire but eight in memory.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
struct AllSkipped {
    #[serde(skip)]
    cached: u64,
}

static UNITS: Variable<Vec<()>> = Variable::new("units");
static MARKERS: Variable<VecDeque<Marker>> = Variable::new("markers");
static SKIPPED: Variable<Vec<AllSkipped>> = Variable::new("skipped");

/// A declared length is a loop count: elements that take no bytes would be
/// read `u64::MAX` times (for ever, or until memory runs out).
#[test]
fn elements_that_take_no_bytes_are_bounded_by_the_input_too() {
    let codec = Codec::builder()
        .var(&UNITS)
        .var(&MARKERS)
        .var(&SKIPPED)
        .build()
        .unwrap();
    for name in ["units", "markers", "skipped"] {
        for declared in [u64::MAX, u64::from(u32::MAX), 1 << 20, 100_000] {
            let input = input(name, &collection(declared, &[], 0));
            let (decoded, largest) =
                largest_of(|| codec.decode_onto(&Snapshot::empty(), &input).unwrap());
            assert!(decoded.snapshot().is_empty(), "{name}: declared {declared}");
            match decoded.skipped()[0].reason() {
                SkipReason::Corrupt(why) => assert!(why.contains("more elements"), "{why}"),
                other => panic!("{name}: {other:?}"),
            }
            assert!(
                largest <= 1024,
                "{name}: declared {declared}: {largest} bytes"
            );
        }
    }
}

/// Zero-sized elements are counted apart, up to 64 per byte of the value
/// and 64 more: a `Vec<()>` whose length takes one byte always comes back,
/// a much longer one is reported.
#[test]
fn short_collections_of_zero_sized_elements_round_trip() {
    let codec = Codec::builder().var(&UNITS).var(&MARKERS).build().unwrap();
    for len in [0, 1, 2, 50, 127, 128, 191] {
        let sent = Snapshot::empty()
            .with(&UNITS, vec![(); len])
            .with(&MARKERS, vec![Marker; len].into());
        let received = codec.decode(&codec.encode(&sent)).unwrap();
        assert_eq!(received.get(&UNITS).map(|v| v.len()), Some(len));
        assert_eq!(received.get(&MARKERS).map(|v| v.len()), Some(len));
    }
}

#[test]
fn long_collections_of_zero_sized_elements_are_reported() {
    let codec = Codec::builder().var(&UNITS).build().unwrap();
    let sent = Snapshot::empty().with(&UNITS, vec![(); 100_000]);
    let decoded = codec
        .decode_onto(&Snapshot::empty(), &codec.encode(&sent))
        .unwrap();
    assert!(decoded.snapshot().is_empty());
    assert!(matches!(
        decoded.skipped()[0].reason(),
        SkipReason::Corrupt(why) if why.contains("more elements")
    ));
}
