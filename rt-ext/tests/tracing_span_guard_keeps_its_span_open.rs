//! A span guard keeps its span open: with the span's handle dropped as soon
//! as the guard is taken, the guard still enters and exits a live span on
//! every resume and suspension, also when the guard is dropped on another
//! thread while its task is suspended (its hook is then resumed once more
//! before it goes), and the span closes with the guard.
#![cfg(feature = "tracing")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rt_ext as ctx;
use tokio::task::yield_now;
use tracing::span::Id;
use tracing::{info, info_span, Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// An event's message and the name of the span current at it.
type Seen = (String, Option<&'static str>);

/// Fails on an enter or exit of a closed span; counts closes; records the
/// current span's name of every event.
#[derive(Clone, Default)]
struct Strict {
    closed: Arc<AtomicUsize>,
    events: Arc<Mutex<Vec<Seen>>>,
}

impl<S> Layer<S> for Strict
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        assert!(ctx.span(id).is_some(), "entered the closed span {id:?}");
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        assert!(ctx.span(id).is_some(), "exited the closed span {id:?}");
    }

    fn on_close(&self, _id: Id, _ctx: Context<'_, S>) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut text = String::new();
        event.record(
            &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                if field.name() == "message" {
                    text = format!("{value:?}");
                }
            },
        );
        let current = ctx.lookup_current().map(|s| s.name());
        self.events.lock().unwrap().push((text, current));
    }
}

#[test]
fn a_guard_keeps_its_span_open_after_the_handle_is_dropped() {
    let strict = Strict::default();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(strict.clone()));
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            ctx::spawn(async {
                // The span's only handle is a temporary, dropped here.
                let guard = ctx::tracing::enter(&info_span!("kept"));
                yield_now().await;
                info!("after an await");
                // Dropped on another thread while the task is suspended (or
                // running here): its hook goes on the task's next resume.
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::spawn(move || {
                    drop(guard);
                    tx.send(()).unwrap();
                });
                rx.await.unwrap();
                yield_now().await;
                info!("after the guard");
            })
            .await
            .unwrap();
        });
    });
    let events = strict.events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            ("after an await".to_string(), Some("kept")),
            ("after the guard".to_string(), None),
        ]
    );
    assert_eq!(strict.closed.load(Ordering::SeqCst), 1);
}
