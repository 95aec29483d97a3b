//! Span guards held across awaits, right: two requests run at once on a
//! two-worker runtime, each with a parent span, a nested child span and a
//! call to an instrumented async fn, every guard held across awaits, and
//! every event printed under exactly its own spans (see the thread ids move).
//!
//! Run it with `cargo run -p rt-ext --example tracing_guards --features tracing`.
//!
//! With plain `let _e = span.enter();` guards in place of
//! `ctx::tracing::enter(&span)`, the spans would stay entered on the worker
//! while it polls the other request, and events would nest under the wrong
//! request.
//!
//! Each request also binds `REQUEST_ID` once, and `LogVariables` writes it
//! on every line the request logs (`request_id=1`), including a background
//! task started outside the request's span.

use std::time::Duration;

use rt_ext::tracing::LogVariables;
use rt_ext::{self as ctx, FutureExt as _};
use tracing::{info, info_span, Instrument as _};

static REQUEST_ID: ctx::Variable<u32> = ctx::Variable::new("request_id");

async fn handle(request: u32) -> u32 {
    let _id = REQUEST_ID.set(request); // on every line from here, and in what it spawns
    let span = info_span!("request", request);
    let _request = ctx::tracing::enter(&span); // held across every await below
    info!("started");
    tokio::time::sleep(Duration::from_millis(5)).await;

    let rows = {
        let span = info_span!("load", table = "users");
        let _load = ctx::tracing::enter(&span); // nested in `request`
        info!("querying");
        tokio::time::sleep(Duration::from_millis(5)).await;
        tokio::task::yield_now().await;
        info!("loaded");
        3 * request
    };

    let page = render(rows).await;

    // A task spawned here starts inside `request`, no `.in_current_span()`.
    ctx::spawn(async move { info!(page, "audited in a child task") })
        .await
        .unwrap();
    // Outside the span, but still `request_id=..`: the variable is inherited.
    ctx::tracing::without_span(|| ctx::spawn(async { info!("background cleanup") }))
        .await
        .unwrap();
    info!(page, "done");
    page
}

/// An instrumented async fn that holds a guard of its own across an await.
/// Its body gets its own frame (`.frame()` inside `.instrument`), so its
/// guards re-enter inside `render` on every resume; with `#[instrument]`,
/// frame the body's awaits the same way.
async fn render(rows: u32) -> u32 {
    async move {
        for chunk in 0..2 {
            let span = info_span!("chunk", chunk);
            let _chunk = ctx::tracing::enter(&span);
            tokio::time::sleep(Duration::from_millis(2)).await;
            info!(rows, "rendered");
        }
        rows * 100
    }
    .frame()
    .instrument(info_span!("render"))
    .await
}

fn main() {
    let logged = LogVariables::new().with(&REQUEST_ID);
    logged
        .text(
            tracing_subscriber::fmt()
                .with_thread_ids(true)
                .with_target(false),
        )
        .init();

    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let first = ctx::spawn(handle(1));
        let second = ctx::spawn(handle(2));
        let pages = (first.await.unwrap(), second.await.unwrap());
        info!(?pages, "both requests done, outside any span");
    });
}
