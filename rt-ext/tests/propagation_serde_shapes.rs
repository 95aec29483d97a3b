//! Every serde shape that serializes to a string (newtypes, `Option`, unit
//! variants, transparent wrappers, `Cow<str>`, `Box<str>`, `Arc<str>`, and
//! their nestings) comes back unchanged from both forms, and the baggage form
//! reads the bare values that other baggage writers put on the wire.
#![cfg(feature = "propagation")]

use std::borrow::Cow;
use std::sync::Arc;

use rt_ext::propagation::Codec;
use rt_ext::{Snapshot, Variable};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct TenantId(String);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Nested(TenantId);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
struct Transparent {
    id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Plan {
    Free,
    Team,
    #[serde(rename = "enterprise plan")]
    Enterprise,
    Custom {
        seats: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Count(u32);

static TENANT: Variable<TenantId> = Variable::new("tenant");
static NESTED: Variable<Nested> = Variable::new("nested");
static TRANSPARENT: Variable<Transparent> = Variable::new("transparent");
static MAYBE: Variable<Option<String>> = Variable::new("maybe");
static MAYBE_TENANT: Variable<Option<TenantId>> = Variable::new("maybe_tenant");
static PLAN: Variable<Plan> = Variable::new("plan");
static MAYBE_PLAN: Variable<Option<Plan>> = Variable::new("maybe_plan");
static COW: Variable<Cow<'static, str>> = Variable::new("cow");
static BOXED: Variable<Box<str>> = Variable::new("boxed");
static SHARED: Variable<Arc<str>> = Variable::new("shared");
static LETTER: Variable<char> = Variable::new("letter");
static COUNT: Variable<Count> = Variable::new("count");
static MAYBE_COUNT: Variable<Option<u32>> = Variable::new("maybe_count");

fn codec() -> Codec {
    Codec::builder()
        .var(&TENANT)
        .var(&NESTED)
        .var(&TRANSPARENT)
        .var(&MAYBE)
        .var(&MAYBE_TENANT)
        .var(&PLAN)
        .var(&MAYBE_PLAN)
        .var(&COW)
        .var(&BOXED)
        .var(&SHARED)
        .var(&LETTER)
        .var(&COUNT)
        .var(&MAYBE_COUNT)
        .build()
        .unwrap()
}

/// Strings that read as other things (JSON, numbers, nothing at all) or that
/// need escaping.
const AWKWARD: &[&str] = &[
    "acme",
    "",
    "42",
    "null",
    "true",
    "\"quoted\"",
    "[1,2]",
    "{\"a\":1}",
    " padded ",
    "a=b,c;d",
    "100%",
    "Free",
    "ünïcödé ✓",
];

fn snapshot_of(text: &str) -> Snapshot {
    Snapshot::empty()
        .with(&TENANT, TenantId(text.into()))
        .with(&NESTED, Nested(TenantId(text.into())))
        .with(&TRANSPARENT, Transparent { id: text.into() })
        .with(&MAYBE, Some(text.into()))
        .with(&MAYBE_TENANT, Some(TenantId(text.into())))
        .with(&COW, Cow::Owned(text.into()))
        .with(&BOXED, text.into())
        .with(&SHARED, text.into())
}

/// Every variable of `sent` arrives unchanged through `received`, with
/// nothing skipped.
fn assert_same(form: &str, sent: &Snapshot, received: &rt_ext::propagation::Decoded) {
    assert!(
        received.skipped().is_empty(),
        "{form}: skipped {:?}",
        received.skipped()
    );
    let got = received.snapshot();
    assert_eq!(got.len(), sent.len(), "{form}");
    assert_eq!(got.get(&TENANT), sent.get(&TENANT), "{form}");
    assert_eq!(got.get(&NESTED), sent.get(&NESTED), "{form}");
    assert_eq!(got.get(&TRANSPARENT), sent.get(&TRANSPARENT), "{form}");
    assert_eq!(got.get(&MAYBE), sent.get(&MAYBE), "{form}");
    assert_eq!(got.get(&MAYBE_TENANT), sent.get(&MAYBE_TENANT), "{form}");
    assert_eq!(got.get(&PLAN), sent.get(&PLAN), "{form}");
    assert_eq!(got.get(&MAYBE_PLAN), sent.get(&MAYBE_PLAN), "{form}");
    assert_eq!(got.get(&COW), sent.get(&COW), "{form}");
    assert_eq!(got.get(&BOXED), sent.get(&BOXED), "{form}");
    assert_eq!(got.get(&SHARED), sent.get(&SHARED), "{form}");
    assert_eq!(got.get(&LETTER), sent.get(&LETTER), "{form}");
    assert_eq!(got.get(&COUNT), sent.get(&COUNT), "{form}");
    assert_eq!(got.get(&MAYBE_COUNT), sent.get(&MAYBE_COUNT), "{form}");
}

fn assert_round_trips(codec: &Codec, sent: &Snapshot) {
    let bytes = codec.encode(sent);
    let decoded = codec.decode_onto(&Snapshot::empty(), &bytes).unwrap();
    assert_same("compact", sent, &decoded);
    let header = codec.to_baggage(sent);
    let decoded = codec
        .from_baggage_onto(&Snapshot::empty(), &header)
        .unwrap();
    assert_same(&format!("baggage `{header}`"), sent, &decoded);
}

#[test]
fn string_like_shapes_round_trip_in_both_forms() {
    let codec = codec();
    for text in AWKWARD {
        assert_round_trips(&codec, &snapshot_of(text));
    }
}

#[test]
fn unit_variants_chars_and_numeric_newtypes_round_trip_in_both_forms() {
    let codec = codec();
    for plan in [
        Plan::Free,
        Plan::Team,
        Plan::Enterprise,
        Plan::Custom { seats: 9 },
    ] {
        let sent = Snapshot::empty()
            .with(&PLAN, plan.clone())
            .with(&MAYBE_PLAN, Some(plan));
        assert_round_trips(&codec, &sent);
    }
    for letter in ['a', '1', '"', ',', '%', 'ü', '✓'] {
        assert_round_trips(&codec, &Snapshot::empty().with(&LETTER, letter));
    }
    let sent = Snapshot::empty()
        .with(&COUNT, Count(7))
        .with(&MAYBE_COUNT, Some(0));
    assert_round_trips(&codec, &sent);
}

#[test]
fn none_round_trips_in_both_forms() {
    let codec = codec();
    let sent = Snapshot::empty()
        .with(&MAYBE, None)
        .with(&MAYBE_TENANT, None)
        .with(&MAYBE_PLAN, None)
        .with(&MAYBE_COUNT, None);
    assert_round_trips(&codec, &sent);
}

#[test]
fn newtypes_and_options_of_strings_are_written_bare() {
    let codec = codec();
    let sent = Snapshot::empty()
        .with(&TENANT, TenantId("acme".into()))
        .with(&MAYBE, Some("acme corp".into()))
        .with(&PLAN, Plan::Free)
        .with(&SHARED, "edge".into());
    assert_eq!(
        codec.to_baggage(&sent),
        "tenant=acme,maybe=acme%20corp,plan=Free,shared=edge"
    );
}

/// What another writer (OpenTelemetry's propagator, a proxy, a hand-written
/// header) sends: plain text, no JSON quoting.
#[test]
fn bare_values_from_other_writers_are_read() {
    let codec = codec();
    let header = "tenant=acme, nested=acme,transparent=acme%20corp,maybe=acme,\
                  maybe_tenant=123,plan=Team,maybe_plan=enterprise%20plan,cow=x,\
                  boxed=true,shared=edge,letter=q,count=3,maybe_count=4,other=1";
    let decoded = codec.from_baggage_onto(&Snapshot::empty(), header).unwrap();
    let got = decoded.snapshot();
    assert_eq!(got.get(&TENANT), Some(TenantId("acme".into())));
    assert_eq!(got.get(&NESTED), Some(Nested(TenantId("acme".into()))));
    assert_eq!(
        got.get(&TRANSPARENT),
        Some(Transparent {
            id: "acme corp".into()
        })
    );
    assert_eq!(got.get(&MAYBE), Some(Some("acme".into())));
    assert_eq!(got.get(&MAYBE_TENANT), Some(Some(TenantId("123".into()))));
    assert_eq!(got.get(&PLAN), Some(Plan::Team));
    assert_eq!(got.get(&MAYBE_PLAN), Some(Some(Plan::Enterprise)));
    assert_eq!(got.get(&COW).as_deref(), Some("x"));
    assert_eq!(got.get(&BOXED).as_deref(), Some("true"));
    assert_eq!(got.get(&SHARED).as_deref(), Some("edge"));
    assert_eq!(got.get(&LETTER), Some('q'));
    assert_eq!(got.get(&COUNT), Some(Count(3)));
    assert_eq!(got.get(&MAYBE_COUNT), Some(Some(4)));
    // only the entry of another owner is skipped
    let skipped: Vec<_> = decoded.skipped().iter().map(|s| s.name()).collect();
    assert_eq!(skipped, [Some("other")]);
}

/// Bare text is taken only where the type reads a string: a wrong value is
/// still reported, with the reason the JSON reader gave.
#[test]
fn bare_text_does_not_make_wrong_values_right() {
    let codec = codec();
    for member in [
        "plan=Gold",
        "plan=Custom",
        "letter=ab",
        "count=three",
        "maybe_count=x",
        "maybe_plan=free",
    ] {
        let decoded = codec.from_baggage_onto(&Snapshot::empty(), member).unwrap();
        assert!(decoded.snapshot().is_empty(), "{member}");
        assert_eq!(decoded.skipped().len(), 1, "{member}");
        assert!(
            matches!(
                decoded.skipped()[0].reason(),
                rt_ext::propagation::SkipReason::Corrupt(_)
            ),
            "{member}: {:?}",
            decoded.skipped()
        );
    }
}
