//! Span guards held across awaits, right: two requests run at once on a
//! two-worker runtime, each with a parent span, a nested child span, a call
//! to an `#[rt_ext::instrument]` async fn (and its callee) and a child task
//! instrumented with `rt_ext::tracing::Instrument`, every guard held across
//! awaits, and every event printed under exactly its own spans (see the
//! thread ids move).
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

use rt_ext as ctx;
use rt_ext::tracing::{Instrument as _, LogVariables};
use tracing::{info, info_span};

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
    ctx::spawn(audit(page)).await.unwrap();
    // Outside the span, but still `request_id=..`: the variable is inherited.
    ctx::tracing::without_span(|| ctx::spawn(async { info!("background cleanup") }))
        .await
        .unwrap();
    info!(page, "done");
    page
}

/// An instrumented async fn that holds a guard of its own across awaits.
/// `#[rt_ext::instrument]` (tracing's arguments, passed to tracing's
/// attribute) gives the body a frame of its own inside the `render` span,
/// so the `chunk` guards re-enter inside `render` on every resume. Under
/// `#[tracing::instrument]` they would nest the other way round after the
/// first await, and rt-ext would warn once, naming the `enter` line.
#[rt_ext::instrument(ret)]
async fn render(rows: u32) -> u32 {
    for chunk in 0..2 {
        let span = info_span!("chunk", chunk);
        let _chunk = ctx::tracing::enter(&span);
        tokio::time::sleep(Duration::from_millis(2)).await;
        info!("rendered");
        stamp(chunk).await;
    }
    rows * 100
}

/// Called from an instrumented fn: its guard nests inside `render` too.
/// This guard owns its span (`entered`), as tracing's `span.entered()`
/// does; `enter(&span)` borrows it, as `span.enter()` does.
async fn stamp(chunk: u32) {
    let _stamp = ctx::tracing::entered(info_span!("stamp"));
    tokio::task::yield_now().await;
    info!(chunk, "stamped");
}

/// The same for a future: `rt_ext::tracing::Instrument` in place of
/// tracing's `Instrument`, an import change.
async fn audit(page: u32) {
    async move {
        let span = info_span!("write");
        let _write = ctx::tracing::enter(&span);
        tokio::time::sleep(Duration::from_millis(1)).await;
        info!(page, "audited");
    }
    .instrument(info_span!("audit"))
    .await;
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
