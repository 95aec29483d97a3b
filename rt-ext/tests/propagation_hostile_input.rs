//! Hostile input to every decoder: random and mutated inputs (truncated,
//! oversized, wrong types, huge declared lengths, deep nesting), to a codec
//! of scalar, struct, sequence-, set- and map-typed variables. No panic,
//! memory bounded whatever the input, and the good entries of a damaged
//! input still decoded.
//!
//! The run feeds `PROPAGATION_FUZZ_CASES` inputs from a seed
//! (`PROPAGATION_FUZZ_SEED`, printed, so a failure can be replayed). The
//! default is 1,000,000 in release builds, which `.ci/steps/propagation.sh`
//! runs, and 100,000 in debug builds.
#![cfg(feature = "propagation")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use rt_ext::propagation::{Codec, DecodeError, MigrateError, SkipReason};
use rt_ext::{Snapshot, Variable};
use serde::{Deserialize, Serialize};

// ===== allocation accounting, per thread =====

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + size;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn note_free(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are this allocator's; the bookkeeping
// touches only thread-locals with const initializers, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: forwarded as received (see the impl).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns the most memory it held at once, in bytes, beyond
/// what was live before.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(before));
    let result = f();
    (result, PEAK.with(Cell::get) - before)
}

/// The most a single decode may hold at once. The input is at most 8 KiB,
/// and a value of `n` bytes presizes its collections for at most `n`
/// elements in all: 8192 string pairs of 48 bytes in a hash table of twice
/// as many buckets (each with a control byte) take 800 KiB, the rest is
/// the decoded values (no more elements than bytes either).
const MEMORY_BOUND: usize = 1 << 20;

// ===== the codec under test =====

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    id: u64,
    name: String,
    tags: Vec<String>,
    limits: BTreeMap<String, i64>,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Free,
    Paid { seats: u32 },
    Legacy(String, Option<u8>),
}

static TEXT: Variable<String> = Variable::new("text");
static NUMBER: Variable<u64> = Variable::new("number");
static SIGNED: Variable<i16> = Variable::new("signed");
static ACCOUNT: Variable<Account> = Variable::new("account");
static GRID: Variable<Vec<Vec<Vec<u8>>>> = Variable::new("grid");
static ANY_JSON: Variable<serde_json::Value> = Variable::new("any_json");
static VERSIONED: Variable<String> = Variable::new("versioned");
static ATTRS: Variable<HashMap<String, String>> = Variable::new("attrs");
static BYTE_MAP: Variable<HashMap<u8, u8>> = Variable::new("byte_map");
static INDEX: Variable<BTreeMap<u32, Vec<String>>> = Variable::new("index");
static TAGS: Variable<HashSet<String>> = Variable::new("tags");
static QUEUE: Variable<VecDeque<u64>> = Variable::new("queue");
static BOXED: Variable<Box<[u16]>> = Variable::new("boxed");
static UNITS: Variable<Vec<()>> = Variable::new("units");

fn codec() -> Codec {
    Codec::builder()
        .var(&TEXT)
        .var(&NUMBER)
        .var(&SIGNED)
        .var(&ACCOUNT)
        .var(&GRID)
        .var(&ANY_JSON)
        .var_versioned(&VERSIONED, 3, |old| match old.version() {
            1 => Ok(old.decode::<u64>()?.to_string()),
            2 => old.decode::<Vec<String>>().map(|v| v.join("/")),
            _ => Err(MigrateError::unsupported(&old)),
        })
        .scope_chain()
        .var(&ATTRS)
        .var(&BYTE_MAP)
        .var(&INDEX)
        .var(&TAGS)
        .var(&QUEUE)
        .var(&BOXED)
        .var(&UNITS)
        .build()
        .unwrap()
}

fn account() -> Account {
    Account {
        id: 9,
        name: "acme, \"eu\"".into(),
        tags: vec!["a".into(), "b=c".into()],
        limits: [("rps".to_string(), -5)].into(),
        kind: Kind::Legacy("x;y".into(), Some(3)),
    }
}

fn full_snapshot() -> Snapshot {
    Snapshot::empty()
        .with(&TEXT, "hello world".into())
        .with(&NUMBER, 1 << 40)
        .with(&SIGNED, -300)
        .with(&ACCOUNT, account())
        .with(&GRID, vec![vec![vec![1, 2], vec![]], vec![vec![3]]])
        .with(&ANY_JSON, serde_json::json!({"a": [1, {"b": null}]}))
        .with(&VERSIONED, "v3".into())
        .with(
            &ATTRS,
            [("region".to_string(), "eu, west".to_string())].into(),
        )
        .with(&BYTE_MAP, [(1, 2), (3, 4)].into())
        .with(&INDEX, [(7, vec!["a".into(), "b".into()])].into())
        .with(&TAGS, ["x".to_string(), "y=z".to_string()].into())
        .with(&QUEUE, [1, u64::MAX].into())
        .with(&BOXED, [5, 6, 7].into())
        .with(&UNITS, vec![(); 3])
}

// ===== randomness =====

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    /// Up to `max - 1` random bytes.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn seed() -> u64 {
    std::env::var("PROPAGATION_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAFE_F00D_0001)
}

/// A million in release builds (the CI step runs this file in release);
/// a tenth of that in debug builds, to stay quick in `cargo test`.
fn cases() -> usize {
    let default = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    std::env::var("PROPAGATION_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One compact entry, framed by hand so that its parts can lie.
fn entry(out: &mut Vec<u8>, name: &[u8], version: u64, value: &[u8]) {
    varint(out, name.len() as u64);
    out.extend_from_slice(name);
    varint(out, version);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

const NAMES: &[&str] = &[
    "text",
    "number",
    "signed",
    "account",
    "grid",
    "any_json",
    "versioned",
    "scope_chain",
    "attrs",
    "byte_map",
    "index",
    "tags",
    "queue",
    "boxed",
    "units",
    "unknown",
];

/// A payload that is wrong for most variables, or lies about lengths.
fn hostile_value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(9) {
        0 => rng.bytes(40),
        // a string or sequence declaring a huge length
        1 => {
            let mut v = Vec::new();
            varint(&mut v, u64::MAX >> rng.below(40));
            v.extend(rng.bytes(8));
            v
        }
        2 => postcard::to_allocvec(&"a string where a number may be expected").unwrap(),
        3 => postcard::to_allocvec(&u64::MAX).unwrap(),
        4 => postcard::to_allocvec(&account()).unwrap(),
        // nested sequences, each declaring more than follows
        5 => {
            let mut v = Vec::new();
            for _ in 0..rng.below(64) {
                varint(&mut v, 1 + rng.below(1 << 20) as u64);
            }
            v
        }
        // a collection declaring more than follows, then elements (map
        // entries, strings or numbers) that are fine until the end
        7 => {
            let mut v = Vec::new();
            let declared = match rng.below(3) {
                0 => u64::MAX >> rng.below(64),
                1 => rng.below(1 << 16) as u64,
                _ => u64::from(u32::MAX),
            };
            varint(&mut v, declared);
            let element: &[u8] = match rng.below(4) {
                0 => &[1, b'k', 1, b'v'],
                1 => &[1, 2],
                2 => &[7, 1, 1, b'a'],
                _ => &[1, b'a'],
            };
            for _ in 0..rng.below(400) {
                v.extend_from_slice(element);
            }
            v
        }
        // collections nested in collections, each declaring a huge length
        8 => {
            let mut v = Vec::new();
            for _ in 0..1 + rng.below(8) {
                varint(&mut v, u64::MAX >> rng.below(8));
                v.extend(rng.bytes(4));
            }
            v
        }
        _ => vec![0xff; rng.below(20)],
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(8) {
            0 if len > 0 => input.truncate(rng.below(len)),
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.next() as u8;
            }
            3 => {
                let i = rng.below(len + 1);
                let extra = rng.bytes(16);
                input.splice(i..i, extra);
            }
            4 if len > 0 => {
                // a huge varint where a length may be
                let i = rng.below(len);
                input.splice(i..(i + 1).min(len), [0xff; 9].into_iter().chain([0x01]));
            }
            5 if len > 1 => {
                // a region repeated
                let a = rng.below(len);
                let b = (a + rng.below(64)).min(len);
                let copy = input[a..b].to_vec();
                input.splice(b..b, copy);
            }
            6 => input.extend(rng.bytes(9000)),
            _ if len > 2 => {
                let i = 2 + rng.below(len - 2);
                input.remove(i);
            }
            _ => {}
        }
    }
}

fn compact_input(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    match rng.below(5) {
        0 => {
            let max = if rng.chance(50) { 20_000 } else { 64 };
            rng.bytes(max)
        }
        1 | 2 => {
            let mut input = valid.to_vec();
            mutate(rng, &mut input);
            input
        }
        _ => {
            let mut input = vec![0xC7, 1];
            let n = rng.below(12);
            varint(&mut input, if rng.chance(20) { u64::MAX } else { n as u64 });
            for _ in 0..n {
                let name = NAMES[rng.below(NAMES.len())].as_bytes();
                let version = if rng.chance(4) {
                    rng.next()
                } else {
                    rng.below(4) as u64
                };
                let value = hostile_value(rng);
                entry(&mut input, name, version, &value);
            }
            if rng.chance(3) {
                mutate(rng, &mut input);
            }
            input
        }
    }
}

const BAGGAGE_ALPHABET: &[u8] = b"abcnt=,;%\"[]{}:0123456789 \t-_.\\xe%2C%3D";

fn deep_json(rng: &mut Rng, max_depth: usize) -> String {
    let depth = rng.below(max_depth);
    let (open, close) = if rng.chance(2) {
        ("[", "]")
    } else {
        ("{\"a\":", "}")
    };
    format!(
        "{}1{}",
        open.repeat(depth),
        close.repeat(if rng.chance(2) { depth } else { depth / 2 })
    )
}

fn baggage_input(rng: &mut Rng, valid: &str) -> String {
    match rng.below(6) {
        0 => {
            let max = if rng.chance(50) { 10_000 } else { 80 };
            let len = rng.below(max);
            let bytes: Vec<u8> = (0..len)
                .map(|_| BAGGAGE_ALPHABET[rng.below(BAGGAGE_ALPHABET.len())])
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        1 | 2 => {
            let mut bytes = valid.as_bytes().to_vec();
            mutate(rng, &mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        }
        3 => {
            let name = NAMES[rng.below(NAMES.len())];
            let value = deep_json(rng, 5000).replace(',', "%2C");
            format!("{name}={value}")
        }
        4 => ",".repeat(rng.below(400)) + &"k=v,".repeat(rng.below(300)),
        _ => {
            // members with wrong types, bad escapes, odd versions
            let mut members = Vec::new();
            for _ in 0..rng.below(10) {
                let name = NAMES[rng.below(NAMES.len())];
                let value = match rng.below(6) {
                    0 => "%FF%FE".to_string(),
                    1 => "%".to_string(),
                    2 => "-1".to_string(),
                    3 => "%7B%22id%22:1%7D".to_string(),
                    4 => "18446744073709551616".to_string(),
                    _ => "[%22a%22".to_string(),
                };
                let version = match rng.below(4) {
                    0 => String::new(),
                    1 => format!(";v={}", rng.below(5)),
                    2 => ";v=99999999999".to_string(),
                    _ => ";v".to_string(),
                };
                members.push(format!("{name}={value}{version}"));
            }
            members.join(",")
        }
    }
}

// ===== the properties =====

#[test]
fn no_decoder_panics_or_holds_unbounded_memory_on_a_million_hostile_inputs() {
    let codec = codec();
    let seed = seed();
    let total = cases();
    println!("seed {seed}, {total} inputs");
    let mut rng = Rng(seed | 1);
    let valid_bytes = codec.encode(&full_snapshot());
    let valid_text = codec.to_baggage(&full_snapshot());
    let started = Instant::now();
    let (mut compact, mut baggage, mut headers) = (0, 0, 0);
    let mut worst = 0;
    // How the inputs fared, to show that every path was taken.
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut tally = |result: &Result<rt_ext::propagation::Decoded, DecodeError>| {
        let key = match result {
            Ok(d) if d.snapshot().is_empty() => "decoded nothing".to_string(),
            Ok(_) => "decoded some entries".to_string(),
            Err(e) => {
                let debug = format!("{e:?}");
                let kind = debug.split([' ', '{', '(']).next().unwrap_or_default();
                format!("refused: {kind}")
            }
        };
        *outcomes.entry(key).or_default() += 1;
        if let Ok(d) = result {
            for skipped in d.skipped() {
                let reason = format!("{:?}", skipped.reason());
                let kind: String = reason.split(['(', ' ']).next().unwrap_or_default().into();
                *outcomes.entry(format!("skipped: {kind}")).or_default() += 1;
            }
        }
    };
    for i in 0..total {
        let peak = match i % 5 {
            0 | 1 => {
                compact += 1;
                let input = compact_input(&mut rng, &valid_bytes);
                let (result, peak) = peak_of(|| codec.decode_onto(&Snapshot::empty(), &input));
                tally(&result);
                if let Ok(decoded) = result {
                    assert!(decoded.skipped().len() <= codec.max_entries() + 1);
                } else if input.len() > codec.max_bytes() {
                    assert!(matches!(result, Err(DecodeError::TooLarge { .. })));
                }
                peak
            }
            2 | 3 => {
                baggage += 1;
                let input = baggage_input(&mut rng, &valid_text);
                let (result, peak) =
                    peak_of(|| codec.from_baggage_onto(&Snapshot::empty(), &input));
                tally(&result);
                if let Ok(decoded) = result {
                    assert!(decoded.skipped().len() <= codec.max_entries());
                }
                peak
            }
            _ => {
                headers += 1;
                let mut map = http::HeaderMap::new();
                for _ in 0..1 + rng.below(3) {
                    let text = baggage_input(&mut rng, &valid_text);
                    let mut bytes = text.into_bytes();
                    if rng.chance(8) {
                        bytes.push(0x80 | rng.next() as u8); // obs-text: not a str
                    }
                    if let Ok(value) = http::HeaderValue::from_bytes(&bytes) {
                        map.append("baggage", value);
                    }
                }
                let (result, peak) = peak_of(|| codec.extract_onto(&Snapshot::empty(), &map));
                tally(&result);
                peak
            }
        };
        worst = worst.max(peak);
        assert!(
            peak <= MEMORY_BOUND,
            "input {i} (seed {seed}) held {peak} bytes at once"
        );
    }
    println!(
        "{compact} compact, {baggage} baggage, {headers} header-map inputs in {:?}; the most held at once by one decode: {worst} bytes",
        started.elapsed()
    );
    println!("{outcomes:#?}");
    for path in [
        "decoded some entries",
        "decoded nothing",
        "skipped: Corrupt",
        "skipped: Malformed",
    ] {
        assert!(
            outcomes.contains_key(path),
            "no input took the path `{path}`"
        );
    }
}

/// Every way of spoiling one entry: the others are still decoded, and the
/// spoiled one is reported (or, unknown, skipped).
#[test]
fn a_spoiled_entry_never_fails_the_good_ones() {
    let codec = codec();
    let mut rng = Rng(seed() ^ 0xABCD);
    let good = Snapshot::empty()
        .with(&TEXT, "kept".into())
        .with(&NUMBER, 77)
        .with(&ACCOUNT, account());
    let good_bytes = codec.encode(&good);
    // the good entries, each framed, without the header and count
    let body = &good_bytes[3..];
    for _ in 0..20_000 {
        // compact: one spoiled entry at the front, the middle or the end
        let mut spoiled = Vec::new();
        let name = ["signed", "grid", "versioned", "elsewhere", "number"][rng.below(5)];
        let version = if name == "versioned" {
            rng.below(6) as u64
        } else {
            rng.below(2) as u64
        };
        entry(
            &mut spoiled,
            name.as_bytes(),
            version,
            &hostile_value(&mut rng),
        );
        let (first, second) = body.split_at(first_entry_len(body));
        let mut input = vec![0xC7, 1, 4];
        match rng.below(3) {
            0 => input.extend([&spoiled[..], body].concat()),
            1 => input.extend([first, &spoiled, second].concat()),
            _ => input.extend([body, &spoiled[..]].concat()),
        }
        let decoded = codec.decode_onto(&Snapshot::empty(), &input).unwrap();
        let got = decoded.snapshot();
        assert_eq!(got.get(&TEXT).as_deref(), Some("kept"));
        assert_eq!(got.get(&ACCOUNT), Some(account()));
        if name == "number" {
            // the first entry of the name that decodes wins: the spoiled one
            // if it happens to be a valid number, else the good one
            let duplicate = decoded
                .skipped()
                .iter()
                .any(|s| s.reason() == &SkipReason::Duplicate);
            match got.get(&NUMBER) {
                Some(77) => {}
                Some(_) => assert!(duplicate, "the good entry was not reported"),
                None => panic!("a spoiled entry hid the good one: {:?}", decoded.skipped()),
            }
        } else {
            assert_eq!(got.get(&NUMBER), Some(77));
        }
        assert!(decoded.skipped().len() <= 2);

        // baggage: one spoiled member anywhere in the list
        let deep = deep_json(&mut rng, 1000);
        let member = match rng.below(5) {
            0 => "signed=99999".to_string(),
            1 => "grid=%5B%5B%5B%5B%5B".to_string(),
            2 => format!("any_json={}", deep.replace(',', "%2C")),
            3 => "versioned=1;v=7".to_string(),
            _ => "just garbage; ;=".to_string(),
        };
        let any_json = member.starts_with("any_json");
        let mut members: Vec<String> = codec
            .to_baggage(&good)
            .split(',')
            .map(String::from)
            .collect();
        let at = rng.below(members.len() + 1);
        members.insert(at, member);
        let decoded = codec
            .from_baggage_onto(&Snapshot::empty(), &members.join(","))
            .unwrap();
        let got = decoded.snapshot();
        assert_eq!(got.get(&TEXT).as_deref(), Some("kept"));
        assert_eq!(got.get(&NUMBER), Some(77));
        assert_eq!(got.get(&ACCOUNT), Some(account()));
        if any_json {
            // JSON too deep (or unbalanced) for the parser is not JSON: a
            // `Value` takes it as a bare string, like any baggage text
            let value = got.get(&ANY_JSON).unwrap();
            assert!(value.is_string() || serde_json::to_string(&value).unwrap() == deep);
        } else {
            assert_eq!(decoded.skipped().len(), 1, "{:?}", decoded.skipped());
        }
    }
}

/// The length of the first framed entry of `body`.
fn first_entry_len(body: &[u8]) -> usize {
    fn read(body: &[u8], at: &mut usize) -> usize {
        let mut v = 0usize;
        let mut shift = 0;
        loop {
            let b = body[*at];
            *at += 1;
            v |= usize::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                return v;
            }
        }
    }
    let mut at = 0;
    let name = read(body, &mut at);
    at += name;
    read(body, &mut at);
    let value = read(body, &mut at);
    at + value
}

#[test]
fn a_cut_input_keeps_the_entries_before_the_cut() {
    let codec = codec();
    let full = full_snapshot();
    let bytes = codec.encode(&full);
    let mut decoded_counts = Vec::new();
    for cut in 0..=bytes.len() {
        match codec.decode_onto(&Snapshot::empty(), &bytes[..cut]) {
            Ok(decoded) => {
                let n = decoded.snapshot().len();
                // entries are kept in order, so what was decoded never shrinks
                if let Some(&last) = decoded_counts.last() {
                    assert!(n >= last, "cut at {cut}");
                }
                decoded_counts.push(n);
                if cut < bytes.len() && cut > 3 {
                    assert!(matches!(
                        decoded.skipped().last().map(|s| s.reason()),
                        Some(SkipReason::Malformed(_))
                    ));
                }
            }
            Err(e) => assert_eq!(e, DecodeError::BadHeader, "cut at {cut}"),
        }
    }
    // `any_json` is a `serde_json::Value`, which the compact form cannot
    // carry (postcard is not self-describing): reported, the others kept
    assert_eq!(decoded_counts.last(), Some(&13));
    let decoded = codec.decode_onto(&Snapshot::empty(), &bytes).unwrap();
    assert_eq!(decoded.skipped()[0].name(), Some("any_json"));
    assert!(matches!(
        decoded.skipped()[0].reason(),
        SkipReason::Corrupt(_)
    ));
}

#[test]
fn limits_are_errors_checked_before_reading() {
    let codec = codec();
    // size: refused whatever the content, before it is read
    let oversized = vec![0xC7; 8193];
    let (result, peak) = peak_of(|| codec.decode(&oversized));
    assert_eq!(
        result.unwrap_err(),
        DecodeError::TooLarge {
            len: 8193,
            max: 8192
        }
    );
    assert!(peak < 1024, "{peak}");
    let header = "text=a,".repeat(2000);
    assert!(matches!(
        codec.from_baggage(&header),
        Err(DecodeError::TooLarge { .. })
    ));
    let mut map = http::HeaderMap::new();
    for _ in 0..10_000 {
        map.append("baggage", http::HeaderValue::from_static("a=1,b=2"));
    }
    let (result, peak) = peak_of(|| codec.extract(&map));
    assert!(matches!(result, Err(DecodeError::TooLarge { .. })));
    assert!(peak < 64 * 1024, "{peak}");

    // entries: a count over the limit, declared or present
    assert_eq!(
        codec.decode(&[0xC7, 1, 0xB5, 0x01]).unwrap_err(),
        DecodeError::TooManyEntries { max: 180 }
    );
    assert_eq!(
        codec.from_baggage(&"a=1,".repeat(181)).unwrap_err(),
        DecodeError::TooManyEntries { max: 180 }
    );
    assert!(codec.from_baggage(&"a=1,".repeat(180)).is_ok());

    // the chain: a long one is cut to the newest names, never refused
    let names: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let sent = postcard::to_allocvec(&names).unwrap();
    let mut input = vec![0xC7, 1, 1];
    entry(&mut input, b"scope_chain", 0, &sent);
    let received = codec.decode(&input).unwrap();
    let chain = received.run(rt_ext::scope_chain);
    assert_eq!(chain.len(), rt_ext::MAX_SCOPE_CHAIN);
    assert_eq!(chain.last(), Some("999"));
}
