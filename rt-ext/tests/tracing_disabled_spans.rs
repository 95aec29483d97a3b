//! Guards of disabled spans (no subscriber wants them, or a level filter
//! drops them): refused exactly where guards of enabled spans are, so code
//! that takes one where it cannot fails the same with and without a
//! subscriber, and harmless where they are accepted.
#![cfg(feature = "tracing")]

use rt_ext as ctx;
use tracing::level_filters::LevelFilter;
use tracing::{debug_span, info_span, Span};
use tracing_subscriber::layer::SubscriberExt as _;

/// A subscriber that records spans at `INFO` and above only.
fn info_only() -> tracing::Dispatch {
    tracing::Dispatch::new(tracing_subscriber::registry().with(LevelFilter::INFO))
}

#[test]
fn a_disabled_span_is_refused_where_an_enabled_one_is() {
    let dispatch = info_only();
    // A plain tokio task, as under `#[tokio::main]`: unframed code of a
    // runtime thread refuses hooks.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let (enabled, disabled) = rt.block_on(async {
        tokio::spawn(async move {
            // The worker's default, for the task's one synchronous stretch.
            let _default = tracing::dispatcher::set_default(&dispatch);
            let enabled = info_span!("kept");
            let disabled = debug_span!("filtered");
            assert!(!enabled.is_disabled() && disabled.is_disabled());
            let enabled = ctx::tracing::try_enter(&enabled).map(drop);
            let disabled = ctx::tracing::try_enter(&disabled).map(drop);
            (enabled, disabled)
        })
        .await
        .unwrap()
    });
    let enabled = enabled.expect_err("an unframed task refuses an enabled span's guard");
    let disabled = disabled.expect_err("and a disabled span's guard alike");
    assert_eq!(enabled.to_string(), disabled.to_string());
}

#[test]
fn a_disabled_span_guard_is_harmless_across_awaits() {
    // The subscriber is this thread's default: the tasks run here too.
    let _default = tracing::dispatcher::set_default(&info_only());
    let rt = ctx::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let outer = info_span!("outer");
        let _outer = ctx::tracing::enter(&outer);
        let seen = ctx::spawn(async {
            let filtered = debug_span!("filtered");
            let _filtered = ctx::tracing::enter(&filtered);
            tokio::task::yield_now().await;
            // The disabled span enters nothing: the spawner's span is
            // current, as it would be with tracing's own guard.
            Span::current().metadata().map(|m| m.name())
        })
        .await
        .unwrap();
        assert_eq!(seen, Some("outer"));
        tokio::task::yield_now().await;
        assert_eq!(Span::current().id(), outer.id());
    });
}
