//! The `baggage` header written by the codec is read by OpenTelemetry's
//! `BaggagePropagator`, and the other way round.
#![cfg(feature = "propagation")]

mod support;

use opentelemetry::baggage::{BaggageExt as _, BaggageMetadata, KeyValueMetadata};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::BaggagePropagator;
use rt_ext::propagation::{Codec, MigrateError};
use rt_ext::{Snapshot, Variable};
use support::propagation::{
    baggage, codec_builder, written_by, Carrier, Route, REQUEST_ID, ROUTE, TENANT,
};

static USER: Variable<String> = Variable::new("user");

fn codec() -> Codec {
    codec_builder()
        .var_versioned(&USER, 3, |old| Err(MigrateError::unsupported(&old)))
        .scope_chain()
        .build()
        .unwrap()
}

fn sent() -> Snapshot {
    Snapshot::empty()
        .with(&TENANT, "acme corp, \"eu\"; ü=1 100%".into())
        .with(&REQUEST_ID, 42)
        .with(
            &ROUTE,
            Route {
                region: "eu-west".into(),
                shard: 7,
            },
        )
        .with(&USER, "ada".into())
}

#[test]
fn opentelemetry_reads_what_the_codec_writes() {
    let carrier = written_by(&codec(), &sent());

    let cx = BaggagePropagator::new().extract(&carrier);
    let baggage = cx.baggage();
    assert_eq!(
        baggage
            .get("tenant")
            .map(|v| v.as_str().to_string())
            .as_deref(),
        Some("acme corp, \"eu\"; ü=1 100%")
    );
    assert_eq!(
        baggage
            .get("request_id")
            .map(|v| v.as_str().to_string())
            .as_deref(),
        Some("42")
    );
    let route = baggage.get("route").unwrap().as_str().to_string();
    assert_eq!(
        serde_json::from_str::<Route>(&route).unwrap(),
        Route {
            region: "eu-west".into(),
            shard: 7
        }
    );
    let (user, metadata) = baggage.get_with_metadata("user").unwrap();
    assert_eq!((user.as_str(), metadata.as_str()), ("ada", "v=3"));
}

#[test]
fn the_codec_reads_what_opentelemetry_writes() {
    let cx = Context::new().with_baggage([
        KeyValueMetadata::new(
            "tenant",
            "acme corp, \"eu\"; ü=1 100%",
            BaggageMetadata::default(),
        ),
        KeyValueMetadata::new("request_id", "42", BaggageMetadata::default()),
        KeyValueMetadata::new(
            "route",
            r#"{"region":"eu-west","shard":7}"#,
            BaggageMetadata::default(),
        ),
        KeyValueMetadata::new("user", "ada", BaggageMetadata::from("v=3")),
        KeyValueMetadata::new(
            "scope_chain",
            r#"["gateway","checkout"]"#,
            BaggageMetadata::default(),
        ),
        KeyValueMetadata::new("isProduction", "false", BaggageMetadata::default()),
    ]);
    let mut carrier = Carrier::new();
    BaggagePropagator::new().inject_context(&cx, &mut carrier);
    let header = &carrier["baggage"];

    let decoded = codec()
        .from_baggage_onto(&Snapshot::empty(), header)
        .unwrap();
    let received = decoded.snapshot();
    assert_eq!(received.get(&TENANT), sent().get(&TENANT));
    assert_eq!(received.get(&REQUEST_ID), Some(42));
    assert_eq!(received.get(&ROUTE), sent().get(&ROUTE));
    assert_eq!(received.get(&USER).as_deref(), Some("ada"));
    assert_eq!(
        received.run(rt_ext::scope_chain).to_string(),
        "gateway > checkout"
    );
    // the foreign entry is skipped and reported, nothing else
    assert_eq!(decoded.skipped().len(), 1, "{:?}", decoded.skipped());
    assert_eq!(decoded.skipped()[0].name(), Some("isProduction"));
}

#[test]
fn a_round_trip_through_opentelemetry_keeps_everything() {
    let codec = codec();
    let rt = rt_ext::Runtime::new().unwrap();
    let sent = rt.block_on(rt_ext::named("edge", async {
        let _t = TENANT.set("acme".into());
        let _r = REQUEST_ID.set(7);
        let _u = USER.set("bob".into());
        Snapshot::capture()
    }));
    let carrier = baggage(codec.to_baggage(&sent));
    let propagator = BaggagePropagator::new();
    let cx = propagator.extract(&carrier);
    let mut forwarded = Carrier::new();
    propagator.inject_context(&cx, &mut forwarded);

    let received = codec.from_baggage(&forwarded["baggage"]).unwrap();
    assert_eq!(received.get(&TENANT).as_deref(), Some("acme"));
    assert_eq!(received.get(&REQUEST_ID), Some(7));
    assert_eq!(received.get(&USER).as_deref(), Some("bob"));
    assert_eq!(received.run(rt_ext::scope_chain).to_string(), "edge");
}
