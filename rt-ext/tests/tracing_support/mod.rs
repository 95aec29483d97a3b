//! A recording `tracing` layer for the tracing tests: every event with the
//! spans it is under, as the registry sees them, and the thread it ran on.
#![allow(dead_code, unreachable_pub)]

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as Record_};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The event's message.
    pub message: String,
    /// The event's fields, `message` first: `"step task=3"`.
    pub fields: String,
    /// Labels of the spans it is under, innermost first: `["task{id=3}"]`.
    pub spans: Vec<String>,
    pub thread: ThreadId,
    /// The event's level and target.
    pub level: tracing::Level,
    pub target: String,
    /// The level and target of each span in `spans`: `"INFO my_crate::db"`.
    pub span_meta: Vec<String>,
}

impl Record {
    /// The value of field `name`, as recorded.
    pub fn field(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.fields
            .split(' ')
            .find_map(|f| f.strip_prefix(prefix.as_str()))
    }
}

/// Events recorded by a [`dispatch`].
#[derive(Clone, Default)]
pub struct Records(Arc<Mutex<Vec<Record>>>);

impl Records {
    pub fn all(&self) -> Vec<Record> {
        self.0.lock().unwrap().clone()
    }

    /// The recorded events whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<Record> {
        self.all()
            .into_iter()
            .filter(|r| r.message == message)
            .collect()
    }
}

/// A registry with the recording layer, and what it records.
pub fn dispatch() -> (Dispatch, Records) {
    let records = Records::default();
    let subscriber = tracing_subscriber::registry().with(Recorder(records.clone()));
    (Dispatch::new(subscriber), records)
}

/// A span's label: its name and fields, `task{id=3}`.
struct Label(String);

struct Recorder(Records);

impl<S> Layer<S> for Recorder
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let fields = fields.render();
        let mut label = attrs.metadata().name().to_string();
        if !fields.is_empty() {
            write!(label, "{{{fields}}}").unwrap();
        }
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Label(label));
        }
    }

    /// Fields recorded after the span's creation (`Span::record`) join its
    /// label: `task{id=3 late=1}`.
    fn on_record(&self, id: &Id, values: &Record_<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        let fields = fields.render();
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(Label(label)) = ext.get_mut::<Label>() {
            match label.strip_suffix('}') {
                Some(open) => *label = format!("{open} {fields}}}"),
                None => write!(label, "{{{fields}}}").unwrap(),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.message.clone().unwrap_or_default();
        let (spans, span_meta) = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .map(|span| {
                        let ext = span.extensions();
                        let label = ext.get::<Label>().map_or_else(String::new, |l| l.0.clone());
                        let meta = span.metadata();
                        (label, format!("{} {}", meta.level(), meta.target()))
                    })
                    .unzip()
            })
            .unwrap_or_default();
        self.0 .0.lock().unwrap().push(Record {
            message,
            fields: fields.render(),
            spans,
            thread: thread::current().id(),
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            span_meta,
        });
    }
}

/// Fields as `message k=v k=v`.
#[derive(Default)]
struct Fields {
    message: Option<String>,
    others: Vec<String>,
}

impl Fields {
    fn render(self) -> String {
        self.message
            .into_iter()
            .chain(self.others)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.others.push(format!("{}={:?}", field.name(), value));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.others.push(format!("{}={}", field.name(), value));
        }
    }
}

// ===== tasks on two workers, and the nesting warning =====

/// Runs `tasks` tasks, made by `spawn(i)`, on a 2-worker rt-ext runtime whose
/// threads all record into the returned records, and waits for them.
pub fn record_tasks_on_two_workers<F>(tasks: u64, spawn: F) -> Records
where
    F: Fn(u64) -> tokio::task::JoinHandle<()>,
{
    let (dispatch, records) = dispatch();
    let for_workers = dispatch.clone();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = rt_ext::Builder::new_multi_thread()
            .worker_threads(2)
            // Each worker thread records for this run, for its whole life.
            .on_thread_start(move || {
                std::mem::forget(tracing::dispatcher::set_default(&for_workers));
            })
            .build()
            .unwrap();
        rt.block_on(async {
            let handles: Vec<_> = (0..tasks).map(&spawn).collect();
            for h in handles {
                h.await.unwrap();
            }
        });
    });
    records
}

/// Whether some task (told apart by its `task` field) logged from more than
/// one thread.
pub fn some_task_migrated(records: &[Record]) -> bool {
    let mut threads: std::collections::HashMap<String, std::collections::HashSet<ThreadId>> =
        std::collections::HashMap::new();
    for r in records {
        threads
            .entry(r.field("task").unwrap().to_string())
            .or_default()
            .insert(r.thread);
    }
    threads.values().any(|t| t.len() > 1)
}

/// The warnings rt-ext gives when a span guard resumes outside its parent.
pub fn nesting_warnings(records: &Records) -> Vec<Record> {
    records
        .all()
        .into_iter()
        .filter(|r| r.message.contains("resumed outside the span"))
        .collect()
}

/// The line (1-based) of the first line containing `needle` in the body of
/// `async fn name(` in `source`.
pub fn line_in_fn(source: &str, name: &str, needle: &str) -> usize {
    let start = source
        .lines()
        .position(|l| l.starts_with(&format!("async fn {name}(")))
        .unwrap();
    start
        + 1
        + source
            .lines()
            .skip(start)
            .position(|l| l.contains(needle))
            .unwrap()
}

/// Runs `attempt` (one run of tasks on two workers, which checks its own
/// records and returns them) until some task migrated between the workers,
/// the interleaving the caller's test is about; fails after 20 runs
/// without one.
pub fn retry_until_a_task_migrates(mut attempt: impl FnMut() -> Vec<Record>) {
    for _ in 0..20 {
        if some_task_migrated(&attempt()) {
            return;
        }
    }
    panic!("no task ever moved between the two workers");
}

/// The checks of a run whose guards must nest right: `steps` events named
/// "step", each innermost under `inner`, in its task's `outer`, and no
/// nesting warning. Returns the steps.
pub fn assert_nested_right(records: &Records, steps: u64) -> Vec<Record> {
    let found = records.with_message("step");
    assert_eq!(found.len() as u64, steps);
    for r in &found {
        assert_eq!(
            r.spans[..2],
            [
                "inner".to_string(),
                format!("outer{{task={}}}", r.field("task").unwrap())
            ],
            "{r:?}"
        );
    }
    let warned = nesting_warnings(records);
    assert!(warned.is_empty(), "{warned:?}");
    found
}
