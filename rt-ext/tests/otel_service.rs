//! An axum service on loopback, written as a service author would: a
//! middleware extracts the caller's trace and rt-ext variables with a
//! composite propagator (`traceparent` and `rt_ext::otel::Propagator`),
//! starts the server span under the caller's, and serves the request in
//! the received context with the span attached; the handler spawns work
//! that records a span. A client injects its span and variables into each
//! of 20 concurrent requests. Each request's spans form one trace (client,
//! then server, then work), and its work sees its own tenant, with the
//! requests overlapping in the server.
#![cfg(all(feature = "opentelemetry", feature = "propagation"))]

mod support;

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{
    Extractor, Injector, TextMapCompositePropagator, TextMapPropagator,
};
use opentelemetry::trace::{
    SpanId, SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracer, SdkTracerProvider};
use rt_ext::{self as ctx, propagation::Codec};
use support::http::{client, http_get, runtime, send_concurrently, Client, InFlight, Server};

const REQUESTS: u64 = 20;

static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");

fn propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(ctx::otel::Propagator::new(
            Codec::builder().var(&TENANT).build().unwrap(),
        )),
    ])
}

// ===== http headers as OpenTelemetry carriers =====

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<_> = self
            .0
            .get_all(key)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!all.is_empty()).then_some(all)
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

// ===== the service =====

#[derive(Clone)]
struct App {
    tracer: SdkTracer,
    in_flight: InFlight,
}

/// The tracing middleware: the server span under the caller's, and the
/// request served in the caller's rt-ext context with that span attached.
async fn traced(State(app): State<App>, request: Request, next: Next) -> Response {
    let parent = propagator().extract(&Headers(request.headers()));
    let received = ctx::otel::snapshot(&parent)
        .cloned()
        .unwrap_or_else(ctx::Snapshot::capture);
    let span = app
        .tracer
        .span_builder("server")
        .with_kind(SpanKind::Server)
        .start_with_context(&app.tracer, &parent);
    let cx = parent.with_span(span);
    received
        .scope(async move {
            let _cx = ctx::otel::attach(cx);
            app.in_flight.count(next.run(request)).await
        })
        .await
}

/// Spawns work that records a span under the request's, and answers with
/// what the work saw: `tenant trace-id`.
async fn handler(State(app): State<App>) -> String {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let tracer = app.tracer.clone();
    ctx::spawn(async move {
        tokio::task::yield_now().await;
        tracer.in_span("work", |cx| {
            format!(
                "{} {}",
                TENANT.get().unwrap_or_default(),
                cx.span().span_context().trace_id()
            )
        })
    })
    .await
    .unwrap()
}

// ===== the client =====

/// One call: the client span and the tenant, injected into the request.
async fn call(
    client: Client,
    tracer: SdkTracer,
    addr: std::net::SocketAddr,
    n: u64,
) -> (String, String) {
    let _tenant = TENANT.set(format!("tenant-{n}"));
    let span = tracer
        .span_builder(format!("client {n}"))
        .with_kind(SpanKind::Client)
        .start(&tracer);
    let _cx = ctx::otel::attach(Context::current_with_span(span));
    let mut headers = HeaderMap::new();
    propagator().inject_context(&Context::current(), &mut HeadersMut(&mut headers));
    let (status, body) = http_get(&client, addr, "/work", headers).await;
    assert_eq!(status, 200);
    let trace = Context::current()
        .span()
        .span_context()
        .trace_id()
        .to_string();
    (body, trace)
}

#[test]
fn a_request_and_the_work_it_spawns_are_one_trace_with_the_callers_variables() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("otel_service");
    let app = App {
        tracer: tracer.clone(),
        in_flight: InFlight::default(),
    };
    let router = Router::new()
        .route("/work", get(handler))
        .layer(middleware::from_fn_with_state(app.clone(), traced))
        .with_state(app.clone());
    runtime().block_on(async {
        let server = Server::start(router).await;
        let (client, addr) = (client(), server.addr);
        let answers =
            send_concurrently(REQUESTS, |n| call(client.clone(), tracer.clone(), addr, n)).await;
        for (n, (body, trace)) in answers.iter().enumerate() {
            assert_eq!(*body, format!("tenant-{n} {trace}"));
        }
        server.stop().await;
    });
    assert!(app.in_flight.most() > 1, "the requests never overlapped");

    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len() as u64, 3 * REQUESTS);
    let mut traces: HashMap<_, Vec<_>> = HashMap::new();
    for s in &spans {
        traces.entry(s.span_context.trace_id()).or_default().push(s);
    }
    assert_eq!(traces.len() as u64, REQUESTS);
    for spans in traces.values() {
        let named = |name: &str| {
            let found: Vec<_> = spans.iter().filter(|s| s.name.starts_with(name)).collect();
            assert_eq!(found.len(), 1, "{name}: {spans:?}");
            found[0]
        };
        let (client, server, work) = (named("client"), named("server"), named("work"));
        assert_eq!(client.parent_span_id, SpanId::INVALID);
        assert_eq!(server.parent_span_id, client.span_context.span_id());
        assert!(server.parent_span_is_remote);
        assert_eq!(work.parent_span_id, server.span_context.span_id());
        assert!(!work.parent_span_is_remote);
    }
}
