//! `icount OP N`: does one operation N times, for instruction counts under
//! callgrind. Everything but the N repetitions is the same for every N, so
//! the count of a run with 2N minus the count of a run with N, over N, is the
//! cost of one operation (see `icount.sh`). Runs on a current-thread runtime
//! (callgrind serialises threads anyway).
//!
//! Operations: see `OPS` below, or run it with no arguments.

use std::hint::black_box;

use benches::workload::{
    self, snapshot_with, yield_n, yield_now_n, CountingHook, OtelValue, TASK_LOCAL, VARS,
};
use opentelemetry::context::FutureExt as _;
use rt_ext::{self as ctx, FutureExt as _};
use std::future::Future as _;
use tracing::Instrument as _;

/// A waker that does nothing.
struct NoWake;
impl std::task::Wake for NoWake {
    fn wake(self: std::sync::Arc<Self>) {}
}

const OPS: &[(&str, &str)] = &[
    (
        "poll_tokio",
        "one poll of a `tokio::spawn`ed task that yields",
    ),
    (
        "poll_rtext",
        "one poll of a `ctx::spawn`ed task, no binding",
    ),
    (
        "poll_rtext_binding",
        "one poll of a `ctx::spawn`ed task with a binding",
    ),
    ("poll_rtext_hook", "one poll with a binding and a hook"),
    (
        "poll_tokio_body",
        "`poll_tokio` with the yields awaited in an async block of the task's own, as \
         the rows that bind or hold a hook do (the peer with the same body)",
    ),
    (
        "poll_tokio_body_yield_now",
        "`poll_tokio_body` with tokio's `yield_now` as the yield",
    ),
    (
        "poll_tokio_yield_now",
        "`poll_tokio` with tokio's `yield_now` as the yield",
    ),
    (
        "poll_rtext_yield_now",
        "`poll_rtext` with tokio's `yield_now` as the yield",
    ),
    (
        "poll_rtext_hook_yield_now",
        "`poll_rtext_hook` with tokio's `yield_now` as the yield",
    ),
    (
        "poll_task_local",
        "one poll of a task in a `task_local!` scope",
    ),
    (
        "poll_instrument_none",
        "one poll of a tracing-`Instrument`ed task, no subscriber",
    ),
    (
        "poll_otel",
        "one poll of an OpenTelemetry `with_context` task",
    ),
    ("poll_dcontext", "one poll of a dcontext `fork`ed task"),
    (
        "serve_bare",
        "one request through a tower `service_fn` answering at once",
    ),
    ("serve_frame", "the same request behind `FrameLayer`"),
    (
        "serve_frame_set",
        "behind `FrameLayer`, the handler binding with `set`",
    ),
    (
        "bind_rtext",
        "`Variable::set` + drop of the binding, in a `ctx::spawn`ed task's frame \
         (no other binding; the frame's bindings list exists from the 2nd on)",
    ),
    (
        "bind_rtext_again",
        "the same, in a frame that holds another binding throughout",
    ),
    (
        "bind_task_local",
        "`task_local!` `sync_scope` around a trivial closure, in a `tokio::spawn`ed task",
    ),
    ("get_task_local", "`task_local!` `with`, bound"),
    ("get_rtext", "`Variable::get`, 1 bound"),
    ("get_rtext16", "`Variable::get`, 16 bound"),
    ("get_otel", "OpenTelemetry `Context::current().get`"),
    ("get_dcontext", "dcontext `get_context_variable`"),
    ("capture_1", "`Snapshot::capture` (and drop), 1 bound"),
    ("capture_256", "`Snapshot::capture` (and drop), 256 bound"),
    ("capture_dcontext10", "dcontext `capture`, 10 keys"),
    (
        "frame_create",
        "`.frame()` of a ready future, created and dropped unpolled, 1 bound",
    ),
    (
        "frame_run",
        "`.frame()` of a ready future, created and polled to the end, 1 bound",
    ),
    (
        "poll_frame",
        "one poll of a `.frame()`d future that yields, in a task",
    ),
    ("spawn_tokio", "`tokio::spawn` of a trivial task, and join"),
    (
        "spawn_rtext",
        "`ctx::spawn` of a trivial task, 0 variables, and join",
    ),
    (
        "spawn_rtext1",
        "`ctx::spawn` of a trivial task, 1 variable, and join",
    ),
    (
        "spawn_rtext16",
        "`ctx::spawn` of a trivial task, 16 variables, and join",
    ),
    ("encode_rtext10", "`Codec::encode` of 10 `u64` variables"),
    ("decode_rtext10", "`Codec::decode` of 10 `u64` variables"),
    (
        "encode_dcontext10",
        "dcontext `capture().serialize()`, 10 keys",
    ),
    (
        "decode_dcontext10",
        "dcontext `ContextSnapshot::deserialize`, 10 keys",
    ),
    (
        "poll_noop_hooks",
        "one poll of a plain `tokio::spawn`ed task on a runtime with four no-op \
         task hooks: what tokio's hook calls cost alone (needs `--cfg tokio_unstable`)",
    ),
    (
        "poll_hook_mode",
        "one poll of a plain `tokio::spawn`ed task on a runtime-hook-mode runtime \
         (needs `--cfg tokio_unstable`)",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_guard_enter",
        "`ctx::tracing::enter` + drop of the guard, in a `ctx::spawn`ed task, Registry",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_enter",
        "tracing `Span::enter` + drop, in a `ctx::spawn`ed task, Registry",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_guard_poll_yield_now",
        "`span_guard_poll` with tokio's `yield_now` as the yield",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_instrument_poll_yield_now",
        "`span_instrument_poll` with tokio's `yield_now` as the yield",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_instrument_body_poll",
        "`span_instrument_poll` with the task's body in an async block, as the guard's is",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_instrument_body_poll_yield_now",
        "`span_instrument_body_poll` with tokio's `yield_now` as the yield",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_spawn",
        "`ctx::spawn` + join inside an entered span (the child follows it), Registry",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_spawn_none",
        "`ctx::spawn` + join with the `tracing` feature and no span, Registry",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_follow_poll",
        "one poll of a `ctx::spawn`ed task that follows its spawner's span, Registry",
    ),
    #[cfg(feature = "log-variables")]
    (
        "span_none_poll",
        "one poll of a `ctx::spawn`ed task with the `tracing` feature and no span",
    ),
    #[cfg(feature = "log-variables")]
    (
        "log_text_plain",
        "one `info!` through the fmt layer (text) into `io::sink`, no request id",
    ),
    #[cfg(feature = "log-variables")]
    (
        "log_text_span",
        "the same, in an entered span carrying `request_id`",
    ),
    #[cfg(feature = "log-variables")]
    (
        "log_text_variables",
        "the same, `REQUEST_ID` bound and written by `LogVariables`",
    ),
    #[cfg(feature = "log-variables")]
    (
        "log_json_plain",
        "one `info!` through the fmt layer (JSON) into `io::sink`, no request id",
    ),
    #[cfg(feature = "log-variables")]
    (
        "log_json_span",
        "the same, in an entered span carrying `request_id`",
    ),
    #[cfg(feature = "log-variables")]
    (
        "log_json_variables",
        "the same, `REQUEST_ID` bound and written by `LogVariables`",
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (op, n) = match args.as_slice() {
        [op, n] => (op.as_str(), n.parse::<usize>().expect("N is a number")),
        _ => {
            eprintln!("usage: icount OP N\noperations:");
            for (name, what) in OPS {
                eprintln!("  {name:20} {what}");
            }
            std::process::exit(2);
        }
    };
    if op == "poll_hook_mode" || op == "poll_noop_hooks" {
        poll_hook_mode(n, op == "poll_noop_hooks");
        return;
    }
    let rt = workload::current_thread();
    match op {
        "poll_tokio" => rt.block_on(async { tokio::spawn(yield_n(n)).await.unwrap() }),
        "poll_rtext" => rt.block_on(async { ctx::spawn(yield_n(n)).await.unwrap() }),
        "poll_rtext_binding" => rt.block_on(async {
            ctx::spawn(async move {
                let _bound = VARS[0].set(1);
                yield_n(n).await;
            })
            .await
            .unwrap()
        }),
        "poll_rtext_hook" => rt.block_on(async {
            ctx::spawn(async move {
                let _bound = VARS[0].set(1);
                let _hook = ctx::enter(CountingHook::default());
                yield_n(n).await;
            })
            .await
            .unwrap()
        }),
        "poll_tokio_yield_now" => {
            rt.block_on(async { tokio::spawn(yield_now_n(n)).await.unwrap() })
        }
        "poll_rtext_yield_now" => rt.block_on(async { ctx::spawn(yield_now_n(n)).await.unwrap() }),
        "poll_rtext_hook_yield_now" => rt.block_on(async {
            ctx::spawn(async move {
                let _bound = VARS[0].set(1);
                let _hook = ctx::enter(CountingHook::default());
                yield_now_n(n).await;
            })
            .await
            .unwrap()
        }),
        "poll_tokio_body" => rt.block_on(async {
            tokio::spawn(async move {
                yield_n(n).await;
            })
            .await
            .unwrap()
        }),
        "poll_tokio_body_yield_now" => rt.block_on(async {
            tokio::spawn(async move {
                yield_now_n(n).await;
            })
            .await
            .unwrap()
        }),
        "poll_task_local" => {
            rt.block_on(async { tokio::spawn(TASK_LOCAL.scope(1, yield_n(n))).await.unwrap() })
        }
        "poll_instrument_none" => rt.block_on(async {
            let span = tracing::info_span!("task");
            tokio::spawn(yield_n(n).instrument(span)).await.unwrap()
        }),
        "poll_otel" => rt.block_on(async {
            let cx = opentelemetry::Context::current_with_value(OtelValue(1));
            tokio::spawn(yield_n(n).with_context(cx)).await.unwrap()
        }),
        "poll_dcontext" => rt.block_on(async {
            let task = async move {
                dcontext::set_context_variable(workload::DCONTEXT_KEYS[0], 1u64);
                yield_n(n).await;
            };
            tokio::spawn(dcontext::ContextFutureExt::fork(task))
                .await
                .unwrap()
        }),
        "bind_rtext" | "bind_rtext_again" => {
            let again = op == "bind_rtext_again";
            rt.block_on(async {
                ctx::spawn(async move {
                    let _other = again.then(|| VARS[1].set(1));
                    for i in 0..n as u64 {
                        drop(black_box(&VARS[0]).set(black_box(i)));
                    }
                })
                .await
                .unwrap()
            })
        }
        "bind_task_local" => rt.block_on(async {
            tokio::spawn(async move {
                for i in 0..n as u64 {
                    TASK_LOCAL.sync_scope(black_box(i), || black_box(()));
                }
            })
            .await
            .unwrap()
        }),
        "get_task_local" => TASK_LOCAL.sync_scope(1, || {
            for _ in 0..n {
                black_box(TASK_LOCAL.with(|v| *black_box(v)));
            }
        }),
        "get_rtext" => snapshot_with(1).run(|| {
            for _ in 0..n {
                black_box(black_box(&VARS[0]).get());
            }
        }),
        "get_rtext16" => snapshot_with(16).run(|| {
            for _ in 0..n {
                black_box(black_box(&VARS[9]).get());
            }
        }),
        "get_otel" => {
            let _attached = opentelemetry::Context::current_with_value(OtelValue(1)).attach();
            for _ in 0..n {
                black_box(
                    opentelemetry::Context::current()
                        .get::<OtelValue>()
                        .copied(),
                );
            }
        }
        "get_dcontext" => {
            let _attached = workload::dcontext_with(1);
            for _ in 0..n {
                black_box(dcontext::get_context_variable::<u64>(black_box(
                    workload::DCONTEXT_KEYS[0],
                )));
            }
        }
        "capture_dcontext10" => {
            let _attached = workload::dcontext_with(10);
            for _ in 0..n {
                black_box(dcontext::capture());
            }
        }
        "capture_1" | "capture_256" => {
            let vars = if op == "capture_1" { 1 } else { 256 };
            snapshot_with(vars).run(|| {
                for _ in 0..n {
                    black_box(ctx::Snapshot::capture());
                }
            })
        }
        "frame_create" | "frame_run" => snapshot_with(1).run(|| {
            let waker = std::task::Waker::from(std::sync::Arc::new(NoWake));
            let mut cx = std::task::Context::from_waker(&waker);
            for _ in 0..n {
                let mut framed = std::pin::pin!(std::future::ready(1u8).frame());
                if op == "frame_run" {
                    assert!(black_box(framed.as_mut().poll(&mut cx)).is_ready());
                }
                black_box(&framed);
            }
        }),
        "poll_frame" => rt.block_on(async {
            ctx::spawn(async move { yield_n(n).frame().await })
                .await
                .unwrap()
        }),
        "spawn_tokio" => rt.block_on(async {
            for _ in 0..n / workload::TASKS {
                workload::spawn_join(|| tokio::spawn(async {})).await;
            }
        }),
        "spawn_rtext" | "spawn_rtext1" | "spawn_rtext16" => {
            let vars = match op {
                "spawn_rtext" => 0,
                "spawn_rtext1" => 1,
                _ => 16,
            };
            rt.block_on(snapshot_with(vars).scope(async {
                for _ in 0..n / workload::TASKS {
                    workload::spawn_join(|| ctx::spawn(async {})).await;
                }
            }))
        }
        "encode_rtext10" | "decode_rtext10" => {
            let (codec, snapshot) = workload::wire_codec();
            let bytes = codec.encode(&snapshot);
            for _ in 0..n {
                if op == "encode_rtext10" {
                    black_box(codec.encode(black_box(&snapshot)));
                } else {
                    black_box(codec.decode(black_box(&bytes)).expect("decodes"));
                }
            }
        }
        "encode_dcontext10" | "decode_dcontext10" => {
            let _attached = workload::dcontext_with(10);
            let bytes = dcontext::capture().serialize().expect("serializes");
            for _ in 0..n {
                if op == "encode_dcontext10" {
                    black_box(dcontext::capture().serialize().expect("serializes"));
                } else {
                    black_box(
                        dcontext::ContextSnapshot::deserialize(black_box(&bytes)).expect("decodes"),
                    );
                }
            }
        }
        #[cfg(feature = "log-variables")]
        op if op.starts_with("log_") => log_line(op, n),
        #[cfg(feature = "log-variables")]
        op if op.starts_with("span_") => span_ops(op, n),
        "serve_bare" => {
            let mut service = workload::ready_service();
            for _ in 0..n {
                black_box(workload::serve_now(&mut service, black_box(1)));
            }
        }
        "serve_frame" | "serve_frame_set" => {
            use tower::Layer as _;
            let layer = ctx::tower::FrameLayer::new();
            if op == "serve_frame" {
                let mut service = layer.layer(workload::ready_service());
                for _ in 0..n {
                    black_box(workload::serve_now(&mut service, black_box(1)));
                }
            } else {
                let mut service = layer.layer(tower::service_fn(workload::binding_handler));
                for _ in 0..n {
                    black_box(workload::serve_now(&mut service, black_box(1)));
                }
            }
        }
        other => {
            eprintln!("unknown operation {other}; run with no arguments for the list");
            std::process::exit(2);
        }
    }
}

/// Every task of a `ctx::Builder` runtime gets a frame through tokio's task
/// hooks: the per-poll cost of that registry, for a plain `tokio::spawn`.
#[cfg(tokio_unstable)]
fn poll_hook_mode(n: usize, noop: bool) {
    use workload::TaskHooks;
    let hooks = if noop {
        TaskHooks::Noop
    } else {
        TaskHooks::Frames
    };
    workload::current_thread_with(hooks)
        .inner()
        .block_on(async { tokio::spawn(yield_n(n)).await.unwrap() });
}

#[cfg(not(tokio_unstable))]
fn poll_hook_mode(_: usize, _: bool) {
    eprintln!("poll_hook_mode needs a build with RUSTFLAGS=\"--cfg tokio_unstable\"");
    std::process::exit(2);
}

/// `span_guard_enter`: `ctx::tracing::enter` and the guard's drop, N times
/// in one `ctx::spawn`ed task; `span_enter`: tracing's `Span::enter` and its
/// guard's drop in the same kind of task (the peer);
/// `span_guard_poll`: one poll of a `ctx::spawn`ed task that holds a
/// `ctx::tracing::enter` guard across every yield; `span_instrument_poll`:
/// the same with tracing's `Instrument` instead (the peer), around the
/// yielding future itself; `span_instrument_body_poll`: around an async
/// block that awaits it, the body the guard's task has (the peer with the
/// same body); the three with `_yield_now`: the same yielding with tokio's
/// `yield_now`;
/// `span_current_id`: the lookup a guard's nesting check makes on each
/// resume (the current span's id from the default dispatcher);
/// `span_rt_instrument_poll`: `rt_ext::tracing::Instrument` in place of
/// tracing's (a frame inside the span); `span_attr_poll` and
/// `span_tracing_attr_poll`: an async fn under `#[rt_ext::instrument]` and
/// under `#[tracing::instrument]`; `span_attr_guard_poll`: the first with a
/// `ctx::tracing::enter` guard held across every yield in its body. All
/// under tracing-subscriber's `Registry`.
#[cfg(feature = "log-variables")]
fn span_ops(op: &str, n: usize) {
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = workload::current_thread();
        match op {
            "span_guard_poll" => rt.block_on(async {
                ctx::spawn(async move {
                    let span = tracing::info_span!("guarded");
                    let _g = ctx::tracing::enter(&span);
                    yield_n(n).await;
                })
                .await
                .unwrap()
            }),
            "span_guard_enter" => rt.block_on(async {
                ctx::spawn(async move {
                    let span = tracing::info_span!("guarded");
                    for _ in 0..n {
                        drop(ctx::tracing::enter(black_box(&span)));
                    }
                })
                .await
                .unwrap()
            }),
            "span_enter" => rt.block_on(async {
                ctx::spawn(async move {
                    let span = tracing::info_span!("entered");
                    for _ in 0..n {
                        drop(black_box(&span).enter());
                    }
                })
                .await
                .unwrap()
            }),
            "span_instrument_poll" => rt.block_on(async {
                let span = tracing::info_span!("instrumented");
                tokio::spawn(yield_n(n).instrument(span)).await.unwrap()
            }),
            "span_guard_poll_yield_now" => rt.block_on(async {
                ctx::spawn(async move {
                    let span = tracing::info_span!("guarded");
                    let _g = ctx::tracing::enter(&span);
                    yield_now_n(n).await;
                })
                .await
                .unwrap()
            }),
            "span_instrument_poll_yield_now" => rt.block_on(async {
                let span = tracing::info_span!("instrumented");
                tokio::spawn(yield_now_n(n).instrument(span)).await.unwrap()
            }),
            "span_instrument_body_poll" => rt.block_on(async {
                let span = tracing::info_span!("instrumented");
                let body = async move {
                    yield_n(n).await;
                };
                tokio::spawn(body.instrument(span)).await.unwrap()
            }),
            "span_instrument_body_poll_yield_now" => rt.block_on(async {
                let span = tracing::info_span!("instrumented");
                let body = async move {
                    yield_now_n(n).await;
                };
                tokio::spawn(body.instrument(span)).await.unwrap()
            }),
            "span_rt_instrument_poll" => rt.block_on(async {
                let span = tracing::info_span!("instrumented");
                let fut = rt_ext::tracing::Instrument::instrument(yield_n(n), span);
                tokio::spawn(fut).await.unwrap()
            }),
            "span_attr_poll" => rt.block_on(async { tokio::spawn(attr_ours(n)).await.unwrap() }),
            "span_tracing_attr_poll" => {
                rt.block_on(async { tokio::spawn(attr_tracing(n)).await.unwrap() })
            }
            "span_attr_guard_poll" => {
                rt.block_on(async { tokio::spawn(attr_ours_guard(n)).await.unwrap() })
            }
            "span_spawn" => rt.block_on(async {
                let span = tracing::info_span!("parent");
                let _e = span.enter();
                for _ in 0..n / workload::TASKS {
                    workload::spawn_join(|| ctx::spawn(async {})).await;
                }
            }),
            "span_spawn_none" => rt.block_on(async {
                for _ in 0..n / workload::TASKS {
                    workload::spawn_join(|| ctx::spawn(async {})).await;
                }
            }),
            "span_follow_poll" => rt.block_on(async {
                let span = tracing::info_span!("parent");
                let _e = span.enter();
                ctx::spawn(yield_n(n)).await.unwrap()
            }),
            "span_none_poll" => rt.block_on(async { ctx::spawn(yield_n(n)).await.unwrap() }),
            "span_current_id" => {
                let span = tracing::info_span!("current");
                let _e = span.enter();
                for _ in 0..n {
                    black_box(tracing::dispatcher::get_default(|d| {
                        d.current_span().id().cloned()
                    }));
                }
            }
            other => {
                eprintln!("unknown operation {other}");
                std::process::exit(2);
            }
        }
    });
}

#[cfg(feature = "log-variables")]
#[rt_ext::instrument(skip_all)]
async fn attr_ours(n: usize) {
    yield_n(n).await;
}

#[cfg(feature = "log-variables")]
#[tracing::instrument(skip_all)]
async fn attr_tracing(n: usize) {
    yield_n(n).await;
}

#[cfg(feature = "log-variables")]
#[rt_ext::instrument(skip_all)]
async fn attr_ours_guard(n: usize) {
    let span = tracing::info_span!("guarded");
    let _g = ctx::tracing::enter(&span);
    yield_n(n).await;
}

/// The request id of the `log_*` operations.
#[cfg(feature = "log-variables")]
static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");

/// `log_{text,json}_{plain,span,variables}`: one `info!` with a field through
/// tracing-subscriber's fmt layer into `io::sink`, N times (see `log_line` in
/// the criterion suite).
#[cfg(feature = "log-variables")]
fn log_line(op: &str, n: usize) {
    use rt_ext::tracing::LogVariables;
    use tracing_subscriber::fmt;
    use tracing_subscriber::prelude::*;

    let logged = LogVariables::new().with(&REQUEST_ID);
    let json = op.starts_with("log_json");
    let variables = op.ends_with("_variables");
    let dispatch = match (json, variables) {
        (false, false) => tracing::Dispatch::new(
            tracing_subscriber::registry().with(fmt::layer().with_writer(std::io::sink)),
        ),
        (false, true) => tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(logged.text(fmt::layer().with_writer(std::io::sink))),
        ),
        (true, false) => tracing::Dispatch::new(
            tracing_subscriber::registry().with(fmt::layer().json().with_writer(std::io::sink)),
        ),
        (true, true) => tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(logged.json(fmt::layer().json().with_writer(std::io::sink))),
        ),
    };
    tracing::dispatcher::with_default(&dispatch, || {
        ctx::Snapshot::empty().run(|| {
            let _id = variables.then(|| REQUEST_ID.set(7));
            let span = tracing::info_span!("request", request_id = 7u64);
            let _entered = op.ends_with("_span").then(|| span.enter());
            for _ in 0..n {
                tracing::info!(status = black_box(200), "served");
            }
        })
    });
}
