//! One OpenTelemetry trace across rt-ext spawns: a `request` span made
//! current with `rt_ext::otel::attach` (a guard held across awaits), work
//! spawned with `ctx::spawn`, `ctx::spawn_blocking` and `ctx::thread::spawn`
//! that starts its spans with the tracer's default parent, and a `query`
//! span under the task's own. The in-memory exporter receives the spans,
//! printed as a tree with their parents.
//!
//! ```sh
//! cargo run -p rt-ext --example otel --features opentelemetry
//! ```

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use rt_ext as ctx;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let tracer = provider.tracer("rt-ext-example");

    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let request = tracer.start("request");
        // Current until the guard drops, across awaits, on whatever worker.
        let _request = ctx::otel::attach(Context::current_with_span(request));
        tokio::time::sleep(Duration::from_millis(2)).await;

        let t = tracer.clone();
        let task = ctx::spawn(async move {
            // No `.with_current_context()`: the task starts under `request`.
            let span = t.start("task");
            let _task = ctx::otel::attach(Context::current_with_span(span));
            tokio::time::sleep(Duration::from_millis(2)).await;
            t.in_span("query", |_| ());
        });
        let t = tracer.clone();
        let blocking = ctx::spawn_blocking(move || t.in_span("blocking", |_| ()));
        let t = tracer.clone();
        let thread = ctx::thread::spawn(move || t.in_span("thread", |_| ()));

        task.await.expect("the task");
        blocking.await.expect("the blocking closure");
        thread.join().expect("the thread");
    }); // `request` ends when its guard drops.

    provider.force_flush()?;
    let spans = exporter.get_finished_spans()?;
    print_tree(&spans);
    Ok(())
}

/// Prints each span under its parent, with its trace and span ids.
fn print_tree(spans: &[SpanData]) {
    let mut children: HashMap<SpanId, Vec<&SpanData>> = HashMap::new();
    for span in spans {
        children.entry(span.parent_span_id).or_default().push(span);
    }
    fn print(span: &SpanData, children: &HashMap<SpanId, Vec<&SpanData>>, depth: usize) {
        println!(
            "{:indent$}{} (trace {}, span {})",
            "",
            span.name,
            span.span_context.trace_id(),
            span.span_context.span_id(),
            indent = depth * 2
        );
        let mut under = children
            .get(&span.span_context.span_id())
            .cloned()
            .unwrap_or_default();
        under.sort_by_key(|s| s.start_time);
        for child in under {
            print(child, children, depth + 1);
        }
    }
    for root in children.get(&SpanId::INVALID).into_iter().flatten() {
        print(root, &children, 0);
    }
}
