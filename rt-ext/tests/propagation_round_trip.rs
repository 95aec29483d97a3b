//! Every form carries strings, numbers, structs, the scope chain and
//! versioned values across the boundary unchanged (or migrated).
#![cfg(feature = "propagation")]

use std::collections::BTreeMap;

use rt_ext::propagation::{BuildError, Codec, MigrateError, SkipReason};
use rt_ext::{self as ctx, Snapshot, Variable};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Caller {
    service: String,
    zone: u8,
    weights: Vec<f64>,
    labels: BTreeMap<String, String>,
    parent: Option<Box<Caller>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Mode {
    Fast,
    Careful { retries: u32 },
}

static TEXT: Variable<String> = Variable::new("text");
static NUMBER: Variable<u64> = Variable::new("number");
static SIGNED: Variable<i32> = Variable::new("signed");
static FLOAT: Variable<f64> = Variable::new("float");
static FLAG: Variable<bool> = Variable::new("flag");
static CALLER: Variable<Caller> = Variable::new("caller");
static MODE: Variable<Mode> = Variable::new("mode");
static LOCAL: Variable<String> = Variable::new("local");

fn codec() -> Codec {
    Codec::builder()
        .var(&TEXT)
        .var(&NUMBER)
        .var(&SIGNED)
        .var(&FLOAT)
        .var(&FLAG)
        .var(&CALLER)
        .var(&MODE)
        .scope_chain()
        .build()
        .unwrap()
}

fn caller() -> Caller {
    Caller {
        service: "billing, eu; \"west\"=1 % ü".into(),
        zone: 3,
        weights: vec![0.5, -1.25],
        labels: [("k=v".to_string(), "a,b;c".to_string())].into(),
        parent: Some(Box::new(Caller {
            service: "edge".into(),
            zone: 0,
            weights: vec![],
            labels: BTreeMap::new(),
            parent: None,
        })),
    }
}

/// Strings that look like other things must come back as the same strings.
const AWKWARD_STRINGS: &[&str] = &[
    "",
    "acme",
    "42",
    "true",
    "null",
    "\"quoted\"",
    "[1,2]",
    "{\"a\":1}",
    " padded ",
    "a=b,c;d",
    "100%",
    "%41",
    "tab\tnew\nline",
    "ünïcödé ✓",
    "\\backslash",
];

fn assert_round_trips(codec: &Codec, sent: &Snapshot) {
    for received in [
        codec.decode(&codec.encode(sent)).unwrap(),
        codec.from_baggage(&codec.to_baggage(sent)).unwrap(),
        {
            let mut headers = http::HeaderMap::new();
            codec.inject(sent, &mut headers);
            codec.extract(&headers).unwrap()
        },
    ] {
        assert_eq!(received.get(&TEXT), sent.get(&TEXT));
        assert_eq!(received.get(&NUMBER), sent.get(&NUMBER));
        assert_eq!(received.get(&SIGNED), sent.get(&SIGNED));
        assert_eq!(received.get(&FLOAT), sent.get(&FLOAT));
        assert_eq!(received.get(&FLAG), sent.get(&FLAG));
        assert_eq!(received.get(&CALLER), sent.get(&CALLER));
        assert_eq!(received.get(&MODE), sent.get(&MODE));
        assert_eq!(received.get(&LOCAL), None, "unlisted variables stay local");
    }
}

#[test]
fn strings_numbers_and_structs_round_trip_in_every_form() {
    let codec = codec();
    for text in AWKWARD_STRINGS {
        let sent = Snapshot::empty()
            .with(&TEXT, text.to_string())
            .with(&NUMBER, u64::MAX)
            .with(&SIGNED, -7)
            .with(&FLOAT, 1.5e-300)
            .with(&FLAG, false)
            .with(&CALLER, caller())
            .with(&MODE, Mode::Careful { retries: 2 })
            .with(&LOCAL, "never sent".into());
        assert_round_trips(&codec, &sent);
    }
    assert_round_trips(&codec, &Snapshot::empty().with(&MODE, Mode::Fast));
    assert_round_trips(&codec, &Snapshot::empty());
}

#[test]
fn baggage_is_readable_text() {
    let codec = codec();
    let sent = Snapshot::empty()
        .with(&TEXT, "acme corp".into())
        .with(&NUMBER, 42)
        .with(&FLAG, true);
    assert_eq!(
        codec.to_baggage(&sent),
        "text=acme%20corp,number=42,flag=true"
    );
    // a string that would read as JSON is written as JSON
    let sent = Snapshot::empty().with(&TEXT, "42".into());
    assert_eq!(codec.to_baggage(&sent), "text=%2242%22");
}

#[test]
fn unset_snapshot_encodes_to_nothing_to_send() {
    let codec = codec();
    assert_eq!(codec.to_baggage(&Snapshot::empty()), "");
    let mut headers = http::HeaderMap::new();
    codec.inject(&Snapshot::empty(), &mut headers);
    assert!(headers.is_empty());
    assert!(codec
        .decode(&codec.encode(&Snapshot::empty()))
        .unwrap()
        .is_empty());
    assert!(codec.decode(&[]).unwrap().is_empty());
}

#[test]
fn scope_chain_crosses_the_boundary_in_every_form() {
    let codec = codec();
    let rt = ctx::Runtime::new().unwrap();
    let sent = rt.block_on(ctx::named("client", async {
        ctx::named("call \"b\", now", async { Snapshot::capture() }).await
    }));
    let forms = [
        codec.decode(&codec.encode(&sent)).unwrap(),
        codec.from_baggage(&codec.to_baggage(&sent)).unwrap(),
    ];
    for received in forms {
        // `named` takes the chain where it is made: inside the received
        // context.
        let chain = rt.block_on(received.scope(async {
            ctx::named("server", async {
                ctx::spawn(async { ctx::scope_chain() }).await.unwrap()
            })
            .await
        }));
        assert_eq!(
            chain.iter().collect::<Vec<_>>(),
            ["client", "call \"b\", now", "server"]
        );
    }
}

#[test]
fn scope_chain_keeps_the_newest_names() {
    let codec = codec();
    let mut chain = ctx::ScopeChain::default();
    for i in 0..100 {
        chain = chain.push(format!("s{i}"));
    }
    assert_eq!(chain.len(), ctx::MAX_SCOPE_CHAIN);
    assert_eq!(chain.iter().next(), Some("s68"));
    assert_eq!(chain.last(), Some("s99"));

    // a longer chain written by someone else is cut to the newest names
    let names: Vec<String> = (0..200).map(|i| format!("n{i}")).collect();
    let header = format!("scope_chain={}", serde_json::to_string(&names).unwrap());
    let header = header.replace('"', "%22").replace(',', "%2C");
    let received = codec.from_baggage(&header).unwrap();
    let chain = received.run(ctx::scope_chain);
    assert_eq!(chain.len(), ctx::MAX_SCOPE_CHAIN);
    assert_eq!(chain.iter().next(), Some("n168"));
    assert_eq!(chain.last(), Some("n199"));
}

// ===== versions =====

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct UserV1 {
    name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct UserV2 {
    name: String,
    roles: Vec<String>,
}

static USER_V0: Variable<String> = Variable::new("user");
static USER_V1: Variable<UserV1> = Variable::new("user");
static USER_V2: Variable<UserV2> = Variable::new("user");
static ORDER: Variable<u64> = Variable::new("order");

fn v0() -> Codec {
    Codec::builder().var(&USER_V0).var(&ORDER).build().unwrap()
}

fn v1() -> Codec {
    Codec::builder()
        .var_versioned(&USER_V1, 1, |old| match old.version() {
            0 => Ok(UserV1 {
                name: old.decode::<String>()?,
            }),
            _ => Err(MigrateError::unsupported(&old)),
        })
        .var(&ORDER)
        .build()
        .unwrap()
}

fn v2() -> Codec {
    Codec::builder()
        .var_versioned(&USER_V2, 2, |old| match old.version() {
            0 => Ok(UserV2 {
                name: old.decode::<String>()?,
                roles: vec![],
            }),
            1 => {
                let v1: UserV1 = old.decode()?;
                Ok(UserV2 {
                    name: v1.name,
                    roles: vec!["migrated".into()],
                })
            }
            _ => Err(MigrateError::unsupported(&old)),
        })
        .var(&ORDER)
        .build()
        .unwrap()
}

#[test]
fn old_senders_are_migrated_by_new_receivers_in_both_forms() {
    let from_v0 = Snapshot::empty()
        .with(&USER_V0, "ada".into())
        .with(&ORDER, 9);
    let from_v1 = Snapshot::empty()
        .with(&USER_V1, UserV1 { name: "bob".into() })
        .with(&ORDER, 9);
    let v1_bytes = v1().encode(&from_v1);
    let v1_baggage = v1().to_baggage(&from_v1);
    assert!(v1_baggage.contains(";v=1"), "{v1_baggage}");

    let cases = [
        (v2().decode(&v0().encode(&from_v0)).unwrap(), "ada", vec![]),
        (
            v2().from_baggage(&v0().to_baggage(&from_v0)).unwrap(),
            "ada",
            vec![],
        ),
        (
            v2().decode(&v1_bytes).unwrap(),
            "bob",
            vec!["migrated".to_string()],
        ),
        (
            v2().from_baggage(&v1_baggage).unwrap(),
            "bob",
            vec!["migrated".to_string()],
        ),
    ];
    for (received, name, roles) in cases {
        assert_eq!(
            received.get(&USER_V2),
            Some(UserV2 {
                name: name.into(),
                roles
            })
        );
        assert_eq!(received.get(&ORDER), Some(9));
    }
    // and one step
    let received = v1().decode(&v0().encode(&from_v0)).unwrap();
    assert_eq!(received.get(&USER_V1), Some(UserV1 { name: "ada".into() }));
}

#[test]
fn new_senders_are_reported_by_old_receivers_not_misread() {
    let from_v2 = Snapshot::empty()
        .with(
            &USER_V2,
            UserV2 {
                name: "eve".into(),
                roles: vec!["admin".into()],
            },
        )
        .with(&ORDER, 5);
    for old in [v0(), v1()] {
        let by_bytes = old
            .decode_onto(&Snapshot::empty(), &v2().encode(&from_v2))
            .unwrap();
        let by_baggage = old
            .from_baggage_onto(&Snapshot::empty(), &v2().to_baggage(&from_v2))
            .unwrap();
        for decoded in [by_bytes, by_baggage] {
            // the entry the old receiver can read is still decoded
            assert_eq!(decoded.snapshot().get(&ORDER), Some(5));
            assert_eq!(decoded.snapshot().get(&USER_V0), None);
            assert_eq!(decoded.snapshot().get(&USER_V1), None);
            assert_eq!(decoded.skipped().len(), 1);
            assert_eq!(decoded.skipped()[0].name(), Some("user"));
            assert!(matches!(
                decoded.skipped()[0].reason(),
                SkipReason::Version { found: 2, .. }
            ));
        }
    }
}

#[test]
fn a_refused_migration_is_reported() {
    let strict = Codec::builder()
        .var_versioned(&USER_V2, 2, |old| {
            Err(MigrateError::new(format!("v{} is retired", old.version())))
        })
        .build()
        .unwrap();
    let decoded = strict
        .decode_onto(
            &Snapshot::empty(),
            &v0().encode(&Snapshot::empty().with(&USER_V0, "x".into())),
        )
        .unwrap();
    assert_eq!(
        decoded.skipped()[0].reason(),
        &SkipReason::Migration("v0 is retired".into())
    );
}

// ===== building =====

static DUP_A: Variable<u8> = Variable::new("dup");
static DUP_B: Variable<String> = Variable::new("dup");
static EMPTY_NAME: Variable<u8> = Variable::new("");
static COMMA: Variable<u8> = Variable::new("a,b");

#[test]
fn bad_codecs_are_errors_at_build_time() {
    let err = Codec::builder()
        .var(&DUP_A)
        .var(&DUP_B)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::DuplicateName("dup"));
    assert!(err.to_string().contains("`dup`"));
    assert_eq!(
        Codec::builder().var(&EMPTY_NAME).build().unwrap_err(),
        BuildError::InvalidName("")
    );
    assert_eq!(
        Codec::builder().var(&COMMA).build().unwrap_err(),
        BuildError::InvalidName("a,b")
    );
    assert_eq!(
        Codec::builder()
            .scope_chain()
            .scope_chain()
            .build()
            .unwrap_err(),
        BuildError::DuplicateName("scope_chain")
    );
}

#[test]
fn encoders_leave_out_what_would_go_over_the_limits() {
    let small = Codec::builder()
        .var(&TEXT)
        .var(&NUMBER)
        .max_bytes(64)
        .build()
        .unwrap();
    let sent = Snapshot::empty()
        .with(&TEXT, "x".repeat(100))
        .with(&NUMBER, 7);
    let bytes = small.encode(&sent);
    assert!(bytes.len() <= 64);
    let received = small.decode(&bytes).unwrap();
    assert_eq!(
        (received.get(&TEXT), received.get(&NUMBER)),
        (None, Some(7))
    );
    let header = small.to_baggage(&sent);
    assert_eq!(header, "number=7");

    let few = Codec::builder()
        .var(&TEXT)
        .var(&NUMBER)
        .max_entries(1)
        .build()
        .unwrap();
    let sent = Snapshot::empty().with(&TEXT, "t".into()).with(&NUMBER, 7);
    assert_eq!(few.decode(&few.encode(&sent)).unwrap().len(), 1);
    assert_eq!(few.to_baggage(&sent), "text=t");
}

#[test]
fn inject_keeps_foreign_baggage_and_replaces_ours() {
    let codec = codec();
    let mut headers = http::HeaderMap::new();
    headers.append("baggage", "userId=alice, number=1".parse().unwrap());
    headers.append("baggage", "isProduction=false;p".parse().unwrap());
    codec.inject(&Snapshot::empty().with(&NUMBER, 2), &mut headers);
    assert_eq!(headers.get_all("baggage").iter().count(), 1);
    assert_eq!(
        headers["baggage"],
        "userId=alice,isProduction=false;p,number=2"
    );
    assert_eq!(codec.extract(&headers).unwrap().get(&NUMBER), Some(2));
}

#[test]
fn a_failed_entry_does_not_hide_a_later_good_one_of_the_same_name() {
    let codec = codec();
    let decoded = codec
        .from_baggage_onto(&Snapshot::empty(), "number=oops,number=5,number=6")
        .unwrap();
    assert_eq!(decoded.snapshot().get(&NUMBER), Some(5));
    let reasons: Vec<_> = decoded
        .skipped()
        .iter()
        .map(|s| s.reason().clone())
        .collect();
    assert!(matches!(
        reasons[..],
        [SkipReason::Corrupt(_), SkipReason::Duplicate]
    ));
}
