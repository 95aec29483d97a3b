//! An `rt_ext::otel::attach` guard taken inside a future wrapped with
//! OpenTelemetry's `with_context(cx)`: with the body framed inside the
//! wrapper (`body.frame().with_context(cx)`), the guard's context is
//! current after every await, on two workers; without the frame, the
//! wrapper attaches its context on top of the guard's on every poll after
//! the first, as the module docs say.
#![cfg(feature = "opentelemetry")]

mod otel_support;

use opentelemetry::context::FutureExt as _;
use otel_support::{current_marker, marked};
use rt_ext::{self as ctx, FutureExt as _};
use tokio::task::yield_now;

/// What the body sees before and after each of three awaits.
async fn body() -> Vec<Option<u64>> {
    let _inner = ctx::otel::attach(marked(2));
    let mut seen = vec![current_marker()];
    for _ in 0..3 {
        yield_now().await;
        seen.push(current_marker());
    }
    seen
}

fn runtime() -> ctx::Runtime {
    ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap()
}

#[test]
fn a_body_framed_inside_with_context_keeps_its_guards_context() {
    let seen = runtime().block_on(async {
        ctx::spawn(body().frame().with_context(marked(1)))
            .await
            .unwrap()
    });
    assert_eq!(seen, [Some(2); 4]);
}

#[test]
fn control_an_unframed_body_loses_it_after_the_first_await() {
    let seen =
        runtime().block_on(async { ctx::spawn(body().with_context(marked(1))).await.unwrap() });
    assert_eq!(seen, [Some(2), Some(1), Some(1), Some(1)]);
}
