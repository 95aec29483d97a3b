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

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_client::{body_text, client, Client};
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
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
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
            let now = app.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            app.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let response = next.run(request).await;
            app.in_flight.fetch_sub(1, Ordering::SeqCst);
            response
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

/// hyper's client, the one reqwest is built on.
mod http_client {
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::{Bytes, Incoming};
    use hyper_util::client::legacy::{connect::HttpConnector, Client as Legacy};
    use hyper_util::rt::TokioExecutor;

    pub(crate) type Client = Legacy<HttpConnector, Empty<Bytes>>;

    pub(crate) fn client() -> Client {
        Legacy::builder(TokioExecutor::new()).build_http()
    }

    pub(crate) async fn body_text(response: hyper::Response<Incoming>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

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
    let mut request = hyper::Request::get(format!("http://{addr}/work"))
        .body(Default::default())
        .unwrap();
    propagator().inject_context(&Context::current(), &mut HeadersMut(request.headers_mut()));
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let trace = Context::current()
        .span()
        .span_context()
        .trace_id()
        .to_string();
    (body_text(response).await, trace)
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
        in_flight: Arc::default(),
        most_in_flight: Arc::default(),
    };
    let router = Router::new()
        .route("/work", get(handler))
        .layer(middleware::from_fn_with_state(app.clone(), traced))
        .with_state(app.clone());
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = ctx::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let client = client();
        let calls: Vec<_> = (0..REQUESTS)
            .map(|n| ctx::spawn(call(client.clone(), tracer.clone(), addr, n)))
            .collect();
        let answers = tokio::time::timeout(Duration::from_secs(60), async {
            let mut answers = Vec::new();
            for c in calls {
                answers.push(c.await.unwrap());
            }
            answers
        })
        .await
        .expect("the requests did not finish in 60 s");
        for (n, (body, trace)) in answers.iter().enumerate() {
            assert_eq!(*body, format!("tenant-{n} {trace}"));
        }
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server did not stop")
            .unwrap()
            .unwrap();
    });
    assert!(
        app.most_in_flight.load(Ordering::SeqCst) > 1,
        "the requests never overlapped"
    );

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
