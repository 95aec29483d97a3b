//! One trace across spawns, as OpenTelemetry's in-memory exporter receives
//! it: a request span made current with `rt_ext::otel::attach` is the
//! parent of the spans that a child task, a grandchild (under the child's
//! own span), a `spawn_blocking` closure, a `thread::spawn` thread and a
//! `JoinSet` task start with the tracer's default parent, after awaits;
//! eight requests at once on two workers, each its own trace.
#![cfg(feature = "opentelemetry")]

use std::collections::HashMap;

use opentelemetry::trace::{
    SpanId, TraceContextExt as _, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider, SpanData};
use rt_ext as ctx;
use tokio::task::yield_now;

const REQUESTS: u64 = 8;

/// One request: its span, and work on every kind of spawn under it.
async fn request(tracer: SdkTracer, n: u64) -> TraceId {
    let span = tracer.start(format!("request {n}"));
    let _request = ctx::otel::attach(Context::current_with_span(span));
    yield_now().await;
    let trace = Context::current().span().span_context().trace_id();

    let t = tracer.clone();
    let child = ctx::spawn(async move {
        yield_now().await;
        let span = t.start(format!("child {n}"));
        let _child = ctx::otel::attach(Context::current_with_span(span));
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let t = t.clone();
        ctx::spawn(async move {
            yield_now().await;
            t.in_span(format!("grandchild {n}"), |_| ());
        })
        .await
        .unwrap();
    });
    let t = tracer.clone();
    let blocking = ctx::spawn_blocking(move || t.in_span(format!("blocking {n}"), |_| ()));
    let t = tracer.clone();
    let thread = ctx::thread::spawn(move || t.in_span(format!("thread {n}"), |_| ()));
    let mut set = ctx::JoinSet::new();
    let t = tracer.clone();
    set.spawn(async move {
        yield_now().await;
        t.in_span(format!("join_set {n}"), |_| ());
    });

    child.await.unwrap();
    blocking.await.unwrap();
    thread.join().unwrap();
    set.join_next().await.unwrap().unwrap();
    trace
}

#[test]
fn spans_started_in_spawned_work_have_the_spawners_span_as_parent() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("otel_trace_across_spawns");
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let traces = rt.block_on(async {
        let requests: Vec<_> = (0..REQUESTS)
            .map(|n| ctx::spawn(request(tracer.clone(), n)))
            .collect();
        let mut traces = Vec::new();
        for r in requests {
            traces.push(r.await.unwrap());
        }
        traces
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let by_name: HashMap<String, &SpanData> =
        spans.iter().map(|s| (s.name.to_string(), s)).collect();
    assert_eq!(by_name.len(), spans.len(), "span names are unique");
    assert_eq!(spans.len() as u64, REQUESTS * 6);

    let id = |name: String| by_name[&name].span_context.span_id();
    for (n, trace) in (0..REQUESTS).zip(traces) {
        let root = by_name[&format!("request {n}")];
        assert_eq!(root.parent_span_id, SpanId::INVALID);
        assert_eq!(root.span_context.trace_id(), trace);
        for (name, parent) in [
            (format!("child {n}"), format!("request {n}")),
            (format!("grandchild {n}"), format!("child {n}")),
            (format!("blocking {n}"), format!("request {n}")),
            (format!("thread {n}"), format!("request {n}")),
            (format!("join_set {n}"), format!("request {n}")),
        ] {
            let span = by_name[&name];
            assert_eq!(span.span_context.trace_id(), trace, "{name}");
            assert_eq!(
                span.parent_span_id,
                id(parent.clone()),
                "{name} under {parent}"
            );
        }
    }
    let distinct: std::collections::HashSet<_> =
        spans.iter().map(|s| s.span_context.trace_id()).collect();
    assert_eq!(distinct.len() as u64, REQUESTS);
}
