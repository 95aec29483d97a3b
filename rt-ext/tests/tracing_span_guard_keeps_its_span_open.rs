//! A span guard's hook only ever enters and exits a live span: an owned
//! guard keeps its span open until its hook is gone, also when the guard is
//! dropped on another thread while its task is suspended (its hook is then
//! resumed once more before it goes); a borrowing guard dropped away from
//! its frame hands the frame a clone of the span, which the frame releases
//! after the hook.
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

/// Runs `body` as a `ctx::spawn`ed task of a current-thread runtime, under a
/// registry with a `Strict` layer, whose count of closes `body` is given;
/// returns the layer.
fn in_a_task<Fut>(body: impl FnOnce(Arc<AtomicUsize>) -> Fut) -> Strict
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let strict = Strict::default();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(strict.clone()));
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        let task = body(strict.closed.clone());
        rt.block_on(async { ctx::spawn(task).await.unwrap() });
    });
    strict
}

#[test]
fn an_owned_guard_keeps_its_span_open_until_its_hook_is_gone() {
    let strict = in_a_task(|_| async {
        // The span's only handle is the guard's.
        let guard = ctx::tracing::entered(info_span!("kept"));
        yield_now().await;
        info!("after an await");
        // Dropped on another thread while the task is suspended (or running
        // here): its hook goes on the task's next resume.
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            drop(guard);
            tx.send(()).unwrap();
        });
        rx.await.unwrap();
        yield_now().await;
        info!("after the guard");
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

/// A borrowing guard dropped on another thread while its task runs here:
/// its hook stays until the task suspends and resumes, and the span's only
/// handle is dropped meanwhile. The guard hands the frame a clone, so the
/// hook exits a live span on the suspension, enters and exits it again when
/// it goes on the resume, and only then does the span close.
#[test]
fn a_borrowing_guard_dropped_elsewhere_hands_its_frame_the_span() {
    let strict = in_a_task(|closed| async move {
        let span = info_span!("kept");
        let guard = ctx::tracing::enter(&span);
        std::thread::scope(|s| {
            s.spawn(move || drop(guard));
        });
        info!("guard dropped elsewhere");
        drop(span);
        assert_eq!(
            closed.load(Ordering::SeqCst),
            0,
            "the frame's clone keeps it"
        );
        yield_now().await;
        info!("after the removal");
    });
    let events = strict.events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            // Still entered: the removal waits for the frame's next resume.
            ("guard dropped elsewhere".to_string(), Some("kept")),
            ("after the removal".to_string(), None),
        ]
    );
    assert_eq!(strict.closed.load(Ordering::SeqCst), 1);
}

/// A borrowing guard dropped in its frame, the common case, hands nothing
/// over: the span closes as soon as its handle drops.
#[test]
fn a_borrowing_guard_dropped_in_its_frame_keeps_nothing() {
    in_a_task(|closed| async move {
        let span = info_span!("kept");
        let guard = ctx::tracing::enter(&span);
        yield_now().await;
        drop(guard);
        drop(span);
        assert_eq!(closed.load(Ordering::SeqCst), 1);
    });
}
