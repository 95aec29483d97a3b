//! `LogVariables` as a service installs it: tracing-subscriber's own `fmt`
//! layers, text and JSON, writing to buffers, and a request id bound once per
//! request that must be on every line the request logs, from every task,
//! blocking closure and thread it spawns, and on no other line.
#![cfg(feature = "tracing")]

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rt_ext::tracing::LogVariables;
use rt_ext::{self as ctx};
use serde_json::Value as Json;
use tracing::{info, info_span};
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;

static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");

/// What a `fmt` layer wrote, line by line.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn json(&self) -> Vec<Json> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// A writer for a `fmt` layer.
    fn writer(&self) -> impl Fn() -> Buffer + Send + Sync + 'static {
        let buffer = self.clone();
        move || buffer.clone()
    }
}

/// The process-wide subscriber of the concurrent test (runtime workers,
/// blocking threads and plain threads all log to it): a text layer and a JSON
/// layer, both with the request id installed, each into its buffer.
struct Outputs {
    text: Buffer,
    json: Buffer,
}

fn global_outputs() -> &'static Outputs {
    static OUTPUTS: OnceLock<Outputs> = OnceLock::new();
    OUTPUTS.get_or_init(|| {
        let outputs = Outputs {
            text: Buffer::default(),
            json: Buffer::default(),
        };
        let logged = LogVariables::new().with(&REQUEST_ID);
        tracing_subscriber::registry()
            .with(
                logged.text(
                    fmt::layer()
                        .with_ansi(false)
                        .with_writer(outputs.text.writer()),
                ),
            )
            .with(
                logged.json(
                    fmt::layer()
                        .json()
                        .with_thread_ids(true)
                        .with_writer(outputs.json.writer()),
                ),
            )
            .init();
        outputs
    })
}

const REQUESTS: u64 = 100;

/// The places a request logs from, each once per request.
const VIA: [&str; 12] = [
    "started",
    "after_barrier",
    "spawn",
    "grandchild",
    "spawn_blocking",
    "thread",
    "join_set",
    "join_set_blocking",
    "task_tracker",
    "handle_spawn",
    "spawn_local",
    "done",
];

struct Shared {
    barrier: tokio::sync::Barrier,
    live: AtomicUsize,
    max_live: AtomicUsize,
}

/// One request: binds its id once, logs from every spawn path (`spawn` and a
/// grandchild, `spawn_blocking`, `thread::spawn`, `JoinSet` `spawn` and
/// `spawn_blocking`, `TaskTracker`, `Handle::spawn`, `spawn_local` in a
/// `LocalSet`), and tags each event with the id it expects (`expect`), which
/// the assertions compare with the id the layer wrote.
async fn handle(id: u64, shared: Arc<Shared>) {
    let _id = REQUEST_ID.set(id);
    let now = shared.live.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_live.fetch_max(now, Ordering::SeqCst);
    // A span too: the id must be on the line once, not in the span's fields.
    let span = info_span!("request", n = id);
    let _entered = ctx::tracing::enter(&span);

    info!(expect = id, via = "started");
    shared.barrier.wait().await; // every request is live here at once
    tokio::task::yield_now().await;
    info!(expect = id, via = "after_barrier");

    ctx::spawn(async move {
        tokio::task::yield_now().await;
        info!(expect = id, via = "spawn");
        ctx::spawn(async move { info!(expect = id, via = "grandchild") })
            .await
            .unwrap();
    })
    .await
    .unwrap();

    ctx::spawn_blocking(move || info!(expect = id, via = "spawn_blocking"))
        .await
        .unwrap();

    let (logged, done) = tokio::sync::oneshot::channel();
    ctx::thread::spawn(move || {
        info!(expect = id, via = "thread");
        logged.send(()).unwrap();
    });
    done.await.unwrap();

    let mut set = ctx::JoinSet::new();
    set.spawn(async move {
        tokio::task::yield_now().await;
        info!(expect = id, via = "join_set");
    });
    set.spawn_blocking(move || info!(expect = id, via = "join_set_blocking"));
    while let Some(joined) = set.join_next().await {
        joined.unwrap();
    }

    let tracker = ctx::TaskTracker::new();
    tracker.spawn(async move { info!(expect = id, via = "task_tracker") });
    tracker.close();
    tracker.wait().await;

    ctx::Handle::current()
        .spawn(async move { info!(expect = id, via = "handle_spawn") })
        .await
        .unwrap();

    // a `LocalSet` on a blocking thread, run by the runtime's handle
    ctx::spawn_blocking(move || {
        let local = ctx::LocalSet::new();
        ctx::Handle::current().block_on(local.run_until(async move {
            ctx::spawn_local(async move { info!(expect = id, via = "spawn_local") })
                .await
                .unwrap()
        }))
    })
    .await
    .unwrap();

    tokio::task::yield_now().await;
    info!(expect = id, via = "done");
    shared.live.fetch_sub(1, Ordering::SeqCst);
}

/// The value of `key=` in a text line (the first one), as written.
fn text_field<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    let prefix = format!("{key}=");
    line.split(' ')
        .find_map(|token| token.strip_prefix(prefix.as_str()))
}

#[test]
fn every_line_of_100_concurrent_requests_carries_its_own_id_on_every_spawn_path() {
    let outputs = global_outputs();
    let shared = Arc::new(Shared {
        barrier: tokio::sync::Barrier::new(REQUESTS as usize),
        live: AtomicUsize::new(0),
        max_live: AtomicUsize::new(0),
    });

    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        info!(outside = "root", "before the requests");
        let requests: Vec<_> = (1..=REQUESTS)
            .map(|id| ctx::spawn(handle(id, shared.clone())))
            .collect();
        for request in requests {
            request.await.unwrap();
        }
        info!(outside = "root", "after the requests");
        ctx::spawn(async { info!(outside = "task", "a task of no request") })
            .await
            .unwrap();
        ctx::spawn_blocking(|| info!(outside = "blocking", "a closure of no request"))
            .await
            .unwrap();
    });
    ctx::thread::spawn(|| info!(outside = "thread", "a thread of no request"))
        .join()
        .unwrap();

    // The requests overlapped: all of them were live at the barrier.
    assert_eq!(shared.max_live.load(Ordering::SeqCst), REQUESTS as usize);

    // ----- text -----
    let lines = outputs.text.lines();
    let mut seen: BTreeMap<(u64, String), usize> = BTreeMap::new();
    let mut outside = 0;
    for line in &lines {
        let written = line.matches("request_id=").count();
        match text_field(line, "expect") {
            Some(expect) => {
                assert_eq!(written, 1, "the id once, not per span: {line}");
                assert_eq!(text_field(line, "request_id"), Some(expect), "{line}");
                // under its own request's span, whatever task logged it
                assert!(line.contains(&format!("request{{n={expect}}}:")), "{line}");
                let via = text_field(line, "via").unwrap().trim_matches('"');
                *seen
                    .entry((expect.parse().unwrap(), via.to_owned()))
                    .or_default() += 1;
            }
            None => {
                assert!(
                    text_field(line, "outside").is_some(),
                    "unexpected line: {line}"
                );
                assert_eq!(written, 0, "an id outside any request: {line}");
                outside += 1;
            }
        }
    }
    assert_eq!(outside, 5, "{lines:#?}");
    for id in 1..=REQUESTS {
        for via in VIA {
            assert_eq!(
                seen.get(&(id, via.to_owned())),
                Some(&1),
                "request {id}, {via}"
            );
        }
    }
    assert_eq!(seen.len(), REQUESTS as usize * VIA.len());

    // The lines of different requests interleave: every `started` line comes
    // before the first `after_barrier` line.
    let last_started = lines.iter().rposition(|l| l.contains("via=\"started\""));
    let first_after = lines
        .iter()
        .position(|l| l.contains("via=\"after_barrier\""));
    assert!(
        last_started < first_after,
        "{last_started:?} {first_after:?}"
    );

    // ----- JSON -----
    let events = outputs.json.json();
    assert_eq!(events.len(), lines.len());
    let mut threads = BTreeSet::new();
    let mut checked = 0;
    for event in &events {
        threads.insert(event["threadId"].as_str().unwrap().to_owned());
        match event["fields"].get("expect") {
            Some(expect) => {
                // a number at the top level, the request's own
                assert!(event["request_id"].is_u64(), "{event}");
                assert_eq!(&event["request_id"], expect, "{event}");
                // and not in the span list
                for span in event["spans"].as_array().unwrap() {
                    assert!(span.get("request_id").is_none(), "{event}");
                }
                checked += 1;
            }
            None => {
                assert!(event["fields"].get("outside").is_some(), "{event}");
                assert!(event.get("request_id").is_none(), "{event}");
            }
        }
    }
    assert_eq!(checked, REQUESTS as usize * VIA.len());
    // two workers, blocking threads, plain threads and the test's own thread
    assert!(threads.len() >= 4, "{threads:?}");
}

// ===== what is written, on one thread =====

static ROUTE: ctx::Variable<&'static str> = ctx::Variable::new("route");
static USER: ctx::Variable<String> = ctx::Variable::new("user");
static PEER: ctx::Variable<IpAddr> = ctx::Variable::new("peer");
static TIER: ctx::Variable<Tier> = ctx::Variable::new("tier");
static SAMPLED: ctx::Variable<bool> = ctx::Variable::new("sampled");
static RATIO: ctx::Variable<f64> = ctx::Variable::new("ratio");
static RETRY: ctx::Variable<Option<u32>> = ctx::Variable::new("retry");

#[derive(Debug)]
#[allow(dead_code)] // only `Paid` is logged
enum Tier {
    Free,
    Paid { seats: u32 },
}

fn every_kind() -> LogVariables {
    LogVariables::new()
        .with(&REQUEST_ID)
        .with(&ROUTE)
        .with(&USER)
        .display(&PEER)
        .debug(&TIER)
        .with(&SAMPLED)
        .with(&RATIO)
        .with(&RETRY)
}

/// Runs `f` with every variable of [`every_kind`] bound (`RETRY` to `None`).
fn with_every_kind_bound(f: impl FnOnce()) {
    let _bindings = (
        REQUEST_ID.set(7),
        ROUTE.set("/users"),
        USER.set("ada \"the\"\nfirst".to_owned()),
        PEER.set(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        TIER.set(Tier::Paid { seats: 3 }),
        SAMPLED.set(true),
        RATIO.set(0.25),
        RETRY.set(None),
    );
    f()
}

#[test]
fn json_members_are_typed_like_event_fields_and_the_line_stays_valid() {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::registry()
        .with(every_kind().json(fmt::layer().json().with_writer(buffer.writer())));
    tracing::subscriber::with_default(subscriber, || {
        with_every_kind_bound(|| info!(status = 200, "served"));
        info!("idle");
    });

    let events = buffer.json();
    let served = &events[0];
    assert_eq!(served["fields"]["message"], "served");
    assert_eq!(served["request_id"], 7);
    assert_eq!(served["route"], "/users");
    assert_eq!(served["user"], "ada \"the\"\nfirst");
    assert_eq!(served["peer"], "127.0.0.1");
    assert_eq!(served["tier"], "Paid { seats: 3 }");
    assert_eq!(served["sampled"], true);
    assert_eq!(served["ratio"], 0.25);
    assert!(
        served.get("retry").is_none(),
        "a `None` is not written: {served}"
    );

    let idle = &events[1];
    for key in every_kind().keys() {
        assert!(idle.get(key).is_none(), "{idle}");
    }
}

#[test]
fn text_values_go_through_the_layers_field_formatter() {
    // tracing-subscriber's default field formatter: `key=value`, strings
    // quoted, as for the event's own fields
    let default = Buffer::default();
    let subscriber = tracing_subscriber::registry().with(
        every_kind().text(
            fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_target(false)
                .with_writer(default.writer()),
        ),
    );
    tracing::subscriber::with_default(subscriber, || {
        with_every_kind_bound(|| info!(status = 200, "served"));
    });
    assert_eq!(
        default.lines(),
        [" INFO served status=200 request_id=7 route=\"/users\" user=\"ada \\\"the\\\"\\nfirst\" \
          peer=127.0.0.1 tier=Paid { seats: 3 } sampled=true ratio=0.25"]
    );

    // a field formatter of the service's own, in a compact line
    let custom = Buffer::default();
    let subscriber = tracing_subscriber::registry().with(
        LogVariables::new().with(&REQUEST_ID).text(
            fmt::layer()
                .compact()
                .with_ansi(false)
                .without_time()
                .with_target(false)
                .fmt_fields(fmt::format::debug_fn(|w, field, value| {
                    write!(w, "<{field}: {value:?}>")
                }))
                .with_writer(custom.writer()),
        ),
    );
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.sync_scope(7, || info!(status = 200, "served"));
    });
    assert_eq!(
        custom.lines(),
        [" INFO <message: served><status: 200> <request_id: 7>"]
    );
}

#[test]
fn an_events_own_field_of_the_same_name_wins() {
    let text = Buffer::default();
    let json = Buffer::default();
    let logged = LogVariables::new().with(&REQUEST_ID);
    let subscriber = tracing_subscriber::registry()
        .with(logged.text(fmt::layer().with_ansi(false).with_writer(text.writer())))
        .with(
            logged.json(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(json.writer()),
            ),
        );
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.sync_scope(7, || info!(request_id = 9, "forwarded"));
    });

    let line = &text.lines()[0];
    assert_eq!(line.matches("request_id=").count(), 1, "{line}");
    assert_eq!(text_field(line, "request_id"), Some("9"), "{line}");
    // flattened: a second `request_id` member would be a duplicate key
    let raw = &json.lines()[0];
    assert_eq!(raw.matches("\"request_id\"").count(), 1, "{raw}");
    assert_eq!(json.json()[0]["request_id"], 9);
}

#[test]
fn json_options_and_the_subscriber_builder() {
    let buffer = Buffer::default();
    let subscriber = LogVariables::new()
        .with(&REQUEST_ID)
        .json(
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .without_time()
                .with_level(false)
                .with_target(false)
                .with_writer(buffer.writer()),
        )
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.sync_scope(7, || {
            info!("with a message");
            info!(empty = tracing::field::Empty);
        });
    });
    assert_eq!(
        buffer.lines(),
        [
            r#"{"message":"with a message","request_id":7}"#,
            r#"{"request_id":7}"#
        ]
    );
}

#[test]
fn span_lifecycle_events_carry_the_variables_where_the_span_is_closed() {
    let buffer = Buffer::default();
    let subscriber = LogVariables::new()
        .with(&REQUEST_ID)
        .text(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .without_time()
                .with_target(false)
                .with_span_events(FmtSpan::CLOSE)
                .with_writer(buffer.writer()),
        )
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        REQUEST_ID.sync_scope(7, || {
            let span = info_span!("load", table = "users");
            span.in_scope(|| info!("querying"));
        });
    });
    let lines = buffer.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].ends_with("load{table=\"users\"}: querying request_id=7"),
        "{lines:#?}"
    );
    assert!(
        lines[1].contains("load{table=\"users\"}: close"),
        "{lines:#?}"
    );
    assert!(lines[1].ends_with(" request_id=7"), "{lines:#?}");
}

#[test]
fn a_warning_logged_while_the_task_suspends_carries_its_variables() {
    // rt-ext's own `no_suspend` warning is logged by a hook, as the task
    // suspends: it still carries the task's id.
    let buffer = Buffer::default();
    let subscriber = LogVariables::new()
        .with(&REQUEST_ID)
        .text(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .without_time()
                .with_writer(buffer.writer()),
        )
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let _id = REQUEST_ID.set(7);
            let held = ctx::no_suspend(());
            tokio::task::yield_now().await;
            drop(held);
        });
    });
    let lines = buffer.lines();
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with(" WARN rt_ext::no_suspend:"),
        "{lines:#?}"
    );
    assert!(lines[0].ends_with(" request_id=7"), "{lines:#?}");
}
