//! A tower `TraceLayer`-style middleware (a span per request, entered
//! around each poll of the response future) with `FrameLayer`: outside the
//! trace layer only, a handler's span guard is re-entered before the
//! request's span, nests the wrong way after an await and is reported; with
//! a `FrameLayer` inside the trace layer, the handler's guards nest inside
//! the request's span after every await.
#![cfg(all(feature = "tracing", feature = "tower"))]

mod tracing_support;

use std::convert::Infallible;
use std::task::{Context, Poll};

use rt_ext as ctx;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt as _};
use tracing::instrument::Instrumented;
use tracing::{info, info_span, Instrument as _};
use tracing_support::{dispatch, Records};

/// What tower-http's `TraceLayer` does, reduced: a span per request, entered
/// around every poll of the response future.
#[derive(Clone)]
struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;
    fn layer(&self, inner: S) -> Trace<S> {
        Trace(inner)
    }
}

#[derive(Clone)]
struct Trace<S>(S);

impl<S: Service<u64>> Service<u64> for Trace<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: u64) -> Self::Future {
        let span = info_span!("request", id = request);
        let future = span.in_scope(|| self.0.call(request));
        future.instrument(span)
    }
}

async fn handler(id: u64) -> Result<(), Infallible> {
    let inner = info_span!("handler");
    let _g = ctx::tracing::enter(&inner);
    for step in 0..4u64 {
        tokio::task::yield_now().await;
        info!(id, step, "step");
    }
    Ok(())
}

/// Serves `requests` requests at once, each in a plain `tokio::spawn` task
/// as a server would, through `service`.
fn serve<S>(service: S, requests: u64) -> Records
where
    S: Service<u64, Response = (), Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let tasks: Vec<_> = (0..requests)
                .map(|id| tokio::spawn(service.clone().oneshot(id)))
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
    });
    records
}

fn nested_right(records: &Records) -> bool {
    let steps = records.with_message("step");
    assert_eq!(steps.len(), 3 * 4);
    steps.iter().all(|r| {
        r.spans
            == [
                "handler".to_string(),
                format!("request{{id={}}}", r.field("id").unwrap()),
            ]
    })
}

fn warnings(records: &Records) -> usize {
    records
        .all()
        .iter()
        .filter(|r| r.message.contains("resumed outside the span"))
        .count()
}

#[test]
fn a_frame_layer_inside_the_trace_layer_keeps_guards_inside_the_request_span() {
    let service = ServiceBuilder::new()
        .layer(TraceLayer)
        .layer(ctx::tower::FrameLayer::new())
        .service(service_fn(handler));
    let records = serve(service, 3);
    assert!(nested_right(&records), "{:#?}", records.all());
    assert_eq!(warnings(&records), 0);
}

#[test]
fn a_frame_layer_outside_it_only_nests_wrong_and_warns() {
    let service = ServiceBuilder::new()
        .layer(ctx::tower::FrameLayer::new())
        .layer(TraceLayer)
        .service(service_fn(handler));
    let records = serve(service, 3);
    assert!(!nested_right(&records), "{:#?}", records.all());
    // Once for the call site in `handler` (this test alone takes guards there
    // from outside the trace layer).
    assert_eq!(warnings(&records), 1);
}
