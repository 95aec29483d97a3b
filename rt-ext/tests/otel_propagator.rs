//! `rt_ext::otel::Propagator` in OpenTelemetry composite propagators:
//! `traceparent` and rt-ext variables both survive a round trip; a context
//! extracted and injected again forwards what was received; beside
//! OpenTelemetry's `BaggagePropagator` both kinds of baggage survive; the
//! header is the one rt-ext's own http layer reads and writes; and hostile
//! headers never panic, give no value, and leave the trace context alone.
#![cfg(all(feature = "opentelemetry", feature = "propagation"))]

mod support;

use opentelemetry::baggage::{BaggageExt as _, KeyValueMetadata};
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
use opentelemetry::{Context, SpanId, TraceId};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use rt_ext::propagation::{Codec, DecodeError, SkipReason};
use rt_ext::{self as ctx, otel::Propagator, Snapshot, Variable};
use support::propagation::{
    baggage, codec_builder, written_by, Carrier, Route, REQUEST_ID, ROUTE, TENANT,
};
use support::Rng;

/// Not in the codec: stays local.
static LOCAL: Variable<u8> = Variable::new("local");

fn codec() -> Codec {
    codec_builder().scope_chain().build().unwrap()
}

fn propagators(list: Vec<Box<dyn TextMapPropagator + Send + Sync>>) -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(list)
}

/// `traceparent` and rt-ext variables.
fn trace_and_ours() -> TextMapCompositePropagator {
    propagators(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(Propagator::new(codec())),
    ])
}

/// What `OTEL_PROPAGATORS=tracecontext,baggage` sets, and rt-ext's after.
fn trace_baggage_and_ours() -> TextMapCompositePropagator {
    propagators(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
        Box::new(Propagator::new(codec())),
    ])
}

fn remote_parent() -> SpanContext {
    SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

fn route() -> Route {
    Route {
        region: "eu-west, \"1\"; ü".into(),
        shard: 7,
    }
}

/// Injects `Context::current()` from a task that has bound the variables,
/// named its scope and attached a context with the remote parent.
fn sent(propagator: fn() -> TextMapCompositePropagator, otel: Context) -> Carrier {
    ctx::Runtime::new()
        .unwrap()
        .block_on(ctx::named("storefront", async {
            let _tenant = TENANT.set("acme corp".into());
            let _id = REQUEST_ID.set(42);
            let _route = ROUTE.set(route());
            let _local = LOCAL.set(1);
            let _cx = ctx::otel::attach(otel.with_remote_span_context(remote_parent()));
            tokio::task::yield_now().await;
            // Injected from a spawned task: what it inherited is what is sent.
            ctx::spawn(async move {
                let mut carrier = Carrier::new();
                propagator().inject_context(&Context::current(), &mut carrier);
                carrier
            })
            .await
            .unwrap()
        }))
}

fn check_received(cx: &Context) {
    let span = cx.span().span_context().clone();
    assert_eq!(span.trace_id(), remote_parent().trace_id());
    assert_eq!(span.span_id(), remote_parent().span_id());
    assert!(span.is_sampled() && span.is_remote());
    let snapshot = ctx::otel::snapshot(cx).expect("a snapshot");
    assert_eq!(snapshot.get(&TENANT).as_deref(), Some("acme corp"));
    assert_eq!(snapshot.get(&REQUEST_ID), Some(42));
    assert_eq!(snapshot.get(&ROUTE), Some(route()));
    assert_eq!(snapshot.get(&LOCAL), None);
    assert_eq!(
        snapshot.run(|| ctx::scope_chain().to_string()),
        "storefront"
    );
    // Only other owners' members (OpenTelemetry baggage) are skipped.
    let skipped = ctx::otel::received(cx).unwrap().skipped();
    assert!(
        skipped.iter().all(|s| s.reason() == &SkipReason::Unknown),
        "{skipped:?}"
    );
}

#[test]
fn traceparent_and_variables_survive_a_round_trip_through_a_composite() {
    let propagator = trace_and_ours();
    let carrier = sent(trace_and_ours, Context::new());
    assert!(carrier["traceparent"].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    assert!(carrier["baggage"].contains("tenant=acme%20corp"));
    assert!(!carrier["baggage"].contains("local"));

    let cx = propagator.extract(&carrier);
    check_received(&cx);

    // The handler runs in what was received, and so does what it spawns.
    let received = ctx::otel::snapshot(&cx).unwrap().clone();
    let seen = ctx::Runtime::new().unwrap().block_on(received.scope(async {
        let _cx = ctx::otel::attach(cx.clone());
        ctx::spawn(async {
            let trace = Context::current().span().span_context().trace_id();
            (TENANT.get(), trace)
        })
        .await
        .unwrap()
    }));
    assert_eq!(
        seen,
        (Some("acme corp".to_string()), remote_parent().trace_id())
    );
}

#[test]
fn an_extracted_context_injected_again_forwards_what_was_received() {
    let propagator = trace_and_ours();
    let carrier = sent(trace_and_ours, Context::new());
    let cx = propagator.extract(&carrier);
    // Injected where other values are bound: the extracted ones are sent.
    let mut forwarded = Carrier::new();
    TENANT.sync_scope("elsewhere".into(), || {
        propagator.inject_context(&cx, &mut forwarded)
    });
    assert_eq!(forwarded, carrier);
    // A context without a snapshot: the current rt-ext context is sent.
    let mut own = Carrier::new();
    TENANT.sync_scope("elsewhere".into(), || {
        propagator.inject_context(&Context::new(), &mut own)
    });
    assert_eq!(own["baggage"], "tenant=elsewhere");
}

#[test]
fn beside_the_baggage_propagator_both_kinds_of_baggage_survive() {
    let otel_baggage = Context::new().with_baggage([
        KeyValueMetadata::new("userId", "alice", ""),
        KeyValueMetadata::new("cart", "3 items, €12", "p=1"),
    ]);
    let composites: [fn() -> TextMapCompositePropagator; 2] =
        [trace_baggage_and_ours, trace_and_ours];
    for propagator in composites {
        let carrier = sent(propagator, otel_baggage.clone());
        let header = &carrier["baggage"];
        assert!(header.contains("userId=alice"), "{header}");
        assert!(header.contains("tenant=acme%20corp"), "{header}");

        let received = trace_baggage_and_ours().extract(&carrier);
        check_received(&received);
        let baggage = received.baggage();
        assert_eq!(baggage.get("userId").unwrap().as_str(), "alice");
        let (cart, metadata) = baggage.get_with_metadata("cart").unwrap();
        assert_eq!((cart.as_str(), metadata.as_str()), ("3 items, €12", "p=1"));
        // OpenTelemetry's propagator reads the codec's members as baggage.
        assert_eq!(baggage.get("request_id").unwrap().as_str(), "42");
    }
}

#[test]
fn listed_before_the_baggage_propagator_its_variables_are_overwritten() {
    // The documented limit: an injector can only replace a field.
    let propagator = propagators(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(Propagator::new(codec())),
        Box::new(BaggagePropagator::new()),
    ]);
    let cx = Context::new().with_baggage([KeyValueMetadata::new("userId", "alice", "")]);
    let mut carrier = Carrier::new();
    TENANT.sync_scope("acme".into(), || {
        propagator.inject_context(&cx, &mut carrier)
    });
    assert_eq!(carrier["baggage"], "userId=alice");
}

#[test]
fn a_codec_variable_in_the_opentelemetry_baggage_is_written_once_from_rt_ext() {
    let cx = Context::new().with_baggage([
        KeyValueMetadata::new("tenant", "stale", ""),
        KeyValueMetadata::new("userId", "alice", ""),
    ]);
    let mut carrier = Carrier::new();
    TENANT.sync_scope("fresh".into(), || {
        Propagator::new(codec()).inject_context(&cx, &mut carrier)
    });
    assert_eq!(carrier["baggage"], "userId=alice,tenant=fresh");
}

#[test]
fn the_header_is_the_one_of_rt_exts_http_layer_both_ways() {
    let codec = codec();
    let propagator = Propagator::new(codec.clone());
    let snapshot = Snapshot::empty()
        .with(&TENANT, "acme".into())
        .with(&ROUTE, route());

    // What the client layer writes, the propagator reads.
    let carrier = written_by(&codec, &snapshot);
    let cx = propagator.extract(&carrier);
    let got = ctx::otel::snapshot(&cx).unwrap();
    assert_eq!(got.get(&TENANT).as_deref(), Some("acme"));
    assert_eq!(got.get(&ROUTE), Some(route()));

    // What the propagator writes, the server layer's decoder reads.
    let mut carrier = Carrier::new();
    snapshot.run(|| propagator.inject_context(&Context::new(), &mut carrier));
    let mut headers = http::HeaderMap::new();
    headers.insert("baggage", carrier["baggage"].parse().unwrap());
    let got = codec.extract(&headers).unwrap();
    assert_eq!(got.get(&TENANT).as_deref(), Some("acme"));
    assert_eq!(got.get(&ROUTE), Some(route()));
}

#[test]
fn fields_name_the_baggage_header_and_nothing_bound_writes_nothing() {
    let propagator = Propagator::new(codec());
    assert_eq!(propagator.fields().collect::<Vec<_>>(), ["baggage"]);
    let composite = trace_and_ours();
    let fields: Vec<_> = composite.fields().collect();
    assert!(["traceparent", "tracestate", "baggage"]
        .iter()
        .all(|f| fields.contains(f)));

    let mut carrier = Carrier::new();
    propagator.inject_context(&Context::new(), &mut carrier);
    assert!(carrier.is_empty());
    // Nothing received: the context comes back as it was.
    let cx = propagator.extract(&Carrier::new());
    assert!(ctx::otel::received(&cx).is_none());
}

#[test]
fn extract_decodes_onto_the_current_rt_ext_context() {
    let carrier = baggage("tenant=acme");
    let cx = LOCAL.sync_scope(5, || Propagator::new(codec()).extract(&carrier));
    let snapshot = ctx::otel::snapshot(&cx).unwrap();
    assert_eq!(snapshot.get(&LOCAL), Some(5));
    assert_eq!(snapshot.get(&TENANT).as_deref(), Some("acme"));
}

#[test]
fn the_opentelemetry_baggage_added_stays_within_the_codecs_limits() {
    let codec = Codec::builder()
        .var(&TENANT)
        .max_bytes(1024)
        .max_entries(10)
        .build()
        .unwrap();
    let members = (0..50).map(|i| KeyValueMetadata::new(format!("k{i}"), "v".repeat(40), ""));
    let cx = Context::new().with_baggage(members);
    let mut carrier = Carrier::new();
    TENANT.sync_scope("acme".into(), || {
        Propagator::new(codec.clone()).inject_context(&cx, &mut carrier)
    });
    let header = &carrier["baggage"];
    assert!(header.len() <= 1024, "{}", header.len());
    assert!(header.split(',').count() <= 10, "{header}");
    assert!(header.ends_with("tenant=acme"), "{header}");
    // And it decodes.
    let got = Propagator::new(codec).extract(&carrier);
    assert_eq!(
        ctx::otel::snapshot(&got).unwrap().get(&TENANT).as_deref(),
        Some("acme")
    );
}

/// Headers that carry no readable value of the codec's variables, and what
/// the report says about each.
fn hostile() -> Vec<(String, &'static str)> {
    vec![
        ("request_id=abc".into(), "corrupt"),
        ("request_id=-1".into(), "corrupt"),
        ("request_id=18446744073709551616".into(), "corrupt"),
        (r#"route={"region":1,"shard":7}"#.into(), "corrupt"),
        (r#"route=[[[[[[[[[[[[[[[["#.into(), "corrupt"),
        ("route=%7B".into(), "corrupt"),
        ("tenant=%FF%FE".into(), "corrupt"),
        ("tenant".into(), "malformed"),
        ("tenant;v=1".into(), "malformed"),
        ("tenant=acme;v=x".into(), "malformed"),
        ("tenant=acme;v=99".into(), "version"),
        ("=acme".into(), "unknown"),
        ("ten%00ant=acme".into(), "unknown"),
        (format!("tenant={}", "a".repeat(9000)), "too large"),
        ("x=1,".repeat(200), "too many"),
        (",".repeat(9000) + "tenant=acme", "too large"),
    ]
}

#[test]
fn hostile_headers_never_panic_give_no_value_and_leave_the_trace_alone() {
    let propagator = trace_and_ours();
    let mut good = Carrier::new();
    propagator.inject_context(
        &Context::new().with_remote_span_context(remote_parent()),
        &mut good,
    );
    for (header, why) in hostile() {
        let mut carrier = good.clone();
        carrier.insert("baggage".into(), header.clone());
        let cx = propagator.extract(&carrier);
        let shown = &header[..header.len().min(60)];
        assert_eq!(
            cx.span().span_context().trace_id(),
            remote_parent().trace_id(),
            "{shown}"
        );
        let received = ctx::otel::received(&cx).expect("a report");
        if let Some(snapshot) = received.snapshot() {
            assert_eq!(snapshot.get(&TENANT), None, "{shown}");
            assert_eq!(snapshot.get(&REQUEST_ID), None, "{shown}");
            assert_eq!(snapshot.get(&ROUTE), None, "{shown}");
        }
        let reported = match (received.error(), received.skipped()) {
            (Some(DecodeError::TooLarge { .. }), _) => "too large",
            (Some(DecodeError::TooManyEntries { .. }), _) => "too many",
            (Some(e), _) => panic!("{shown}: {e}"),
            (None, [skipped, ..]) => match skipped.reason() {
                SkipReason::Corrupt(_) => "corrupt",
                SkipReason::Malformed(_) => "malformed",
                SkipReason::Unknown => "unknown",
                SkipReason::Version { .. } | SkipReason::Migration(_) => "version",
                other => panic!("{shown}: {other:?}"),
            },
            (None, []) => panic!("{shown}: nothing reported"),
        };
        assert_eq!(reported, why, "{shown}");
        assert!(ctx::otel::snapshot(&cx).is_none() || why != "too large");
    }
}

#[test]
fn a_refused_header_keeps_what_an_earlier_extraction_stored() {
    let propagator = Propagator::new(codec());
    let first = baggage("tenant=acme");
    let cx = propagator.extract(&first);
    let too_large = baggage("x".repeat(10_000));
    let cx = propagator.extract_with_context(&cx, &too_large);
    let received = ctx::otel::received(&cx).unwrap();
    assert!(received.error().is_some());
    assert_eq!(
        received.snapshot().unwrap().get(&TENANT).as_deref(),
        Some("acme")
    );
}

#[test]
fn random_headers_never_panic() {
    let propagator = trace_baggage_and_ours();
    let alphabet: Vec<char> = "tenant=request_id,route;v=1%FF{}[]\"\\ \t:ü\u{0}-00abcdef"
        .chars()
        .collect();
    let mut rng = Rng::new(7);
    for _ in 0..20_000 {
        let len = rng.below(120) as usize;
        let header: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        let carrier: Carrier = [
            ("baggage".to_string(), header.clone()),
            ("traceparent".to_string(), header),
        ]
        .into();
        let cx = propagator.extract(&carrier);
        // Whatever was decoded is written back without panicking either.
        let mut out = Carrier::new();
        propagator.inject_context(&cx, &mut out);
    }
}
