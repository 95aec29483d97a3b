//! The criterion suite: every group of [`crate::layout::GROUPS`], each
//! operation done by rt-ext and by its peers in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use opentelemetry::context::FutureExt as _;
use opentelemetry::Context as OtelContext;
use rt_ext as ctx;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::workload::{
    self, dcontext_with, snapshot_with, spawn_join, yield_n, CountingHook, OtelValue, SpanHook,
    TASK_LOCAL, VARS, YIELDS,
};

/// Registers the whole suite with `c`.
pub fn all(c: &mut Criterion) {
    workload::init_dcontext();
    poll(c, "poll_current_thread", &workload::current_thread());
    poll(c, "poll_two_workers", &workload::two_workers());
    #[cfg(tokio_unstable)]
    {
        poll_hook_mode(
            c,
            "poll_hook_mode_current_thread",
            &workload::current_thread(),
            workload::current_thread_with,
        );
        poll_hook_mode(
            c,
            "poll_hook_mode_two_workers",
            &workload::two_workers(),
            workload::two_workers_with,
        );
    }
    get(c);
    spawn(c);
    capture(c);
    propagate(c);
    decode_hostile(c);
    bind(c);
    bind_in_task(c);
    hook(c);
    #[cfg(feature = "log-variables")]
    span_enter(c);
    #[cfg(feature = "log-variables")]
    log_line(c);
    span_across_yields(c);
    #[cfg(feature = "log-variables")]
    span_guard_across_yields(c);
    frame_layer(c);
}

/// A task that yields `YIELDS` times, spawned with `tokio::spawn` on `rt` and
/// joined.
fn tokio_yields(rt: &Runtime) {
    rt.block_on(async { tokio::spawn(yield_n(YIELDS)).await.unwrap() })
}

/// The same task spawned with `ctx::spawn`.
fn rtext_yields(rt: &Runtime) {
    rt.block_on(async { ctx::spawn(yield_n(YIELDS)).await.unwrap() })
}

/// A task that yields `YIELDS` times inside a span, with tracing's
/// `Instrument`, spawned on `rt` and joined.
fn instrumented_yields(rt: &Runtime) {
    rt.block_on(async {
        let span = tracing::info_span!("task");
        tokio::spawn(yield_n(YIELDS).instrument(span))
            .await
            .unwrap()
    })
}

/// Runs the task that `spawn` spawns on `rt` and returns what it measured:
/// for operations timed inside one task, in that task's frame.
fn timed_in_task(rt: &Runtime, spawn: impl FnOnce() -> JoinHandle<Duration>) -> Duration {
    rt.block_on(async { spawn().await.expect("a timed task does not fail") })
}

/// Runs `f` with a tracing Registry as this thread's default subscriber.
fn with_registry<R>(f: impl FnOnce() -> R) -> R {
    tracing::dispatcher::with_default(&workload::registry(), f)
}

// ===== per poll =====

fn poll(c: &mut Criterion, name: &str, rt: &Runtime) {
    let mut g = c.benchmark_group(name);
    g.bench_function("tokio", |b| b.iter(|| tokio_yields(rt)));
    g.bench_function("rtext_none", |b| b.iter(|| rtext_yields(rt)));
    g.bench_function("rtext_binding", |b| {
        b.iter(|| {
            rt.block_on(async {
                ctx::spawn(async {
                    let _bound = VARS[0].set(1);
                    yield_n(YIELDS).await;
                })
                .await
                .unwrap()
            })
        });
    });
    g.bench_function("rtext_hook", |b| {
        b.iter(|| {
            rt.block_on(async {
                ctx::spawn(async {
                    let _bound = VARS[0].set(1);
                    let _hook = ctx::enter(CountingHook::default());
                    yield_n(YIELDS).await;
                })
                .await
                .unwrap()
            })
        });
    });
    g.bench_function("task_local", |b| {
        b.iter(|| {
            rt.block_on(async {
                tokio::spawn(TASK_LOCAL.scope(1, yield_n(YIELDS)))
                    .await
                    .unwrap()
            })
        });
    });
    g.bench_function("tracing_none", |b| {
        b.iter(|| instrumented_yields(rt));
    });
    g.bench_function("tracing_registry", |b| {
        with_registry(|| b.iter(|| instrumented_yields(rt)));
    });
    g.bench_function("otel", |b| {
        b.iter(|| {
            rt.block_on(async {
                let cx = OtelContext::current_with_value(OtelValue(1));
                tokio::spawn(yield_n(YIELDS).with_context(cx))
                    .await
                    .unwrap()
            })
        });
    });
    g.bench_function("dcontext", |b| {
        b.iter(|| {
            rt.block_on(async {
                let task = async {
                    dcontext::set_context_variable(workload::DCONTEXT_KEYS[0], 1u64);
                    yield_n(YIELDS).await;
                };
                tokio::spawn(dcontext::ContextFutureExt::fork(task))
                    .await
                    .unwrap()
            })
        });
    });
    g.finish();
}

/// Runtime-hook mode: plain `tokio::spawn` tasks on a runtime whose tokio task
/// hooks give every task a frame, next to the same task on a plain runtime
/// (`plain`), a `ctx::spawn` there, and four no-op hooks (`hooked(Noop)`):
/// the floor that tokio's hook calls set.
#[cfg(tokio_unstable)]
fn poll_hook_mode(
    c: &mut Criterion,
    name: &str,
    plain: &Runtime,
    hooked: fn(workload::TaskHooks) -> ctx::Runtime,
) {
    let mut g = c.benchmark_group(name);
    g.bench_function("tokio", |b| b.iter(|| tokio_yields(plain)));
    g.bench_function("rtext_none", |b| b.iter(|| rtext_yields(plain)));
    let hooks = [
        ("noop_hooks", workload::TaskHooks::Noop),
        ("hook_mode", workload::TaskHooks::Frames),
    ];
    for (id, hooks) in hooks {
        // `inner()`: tokio's `block_on`, so the root future is unframed as on
        // `plain`, and only the spawned task goes through the hooks.
        let rt = hooked(hooks);
        g.bench_function(id, |b| b.iter(|| tokio_yields(rt.inner())));
    }
    g.finish();
}

// ===== reading =====

fn get(c: &mut Criterion) {
    let mut g = c.benchmark_group("get");
    g.bench_function("task_local", |b| {
        TASK_LOCAL.sync_scope(1, || b.iter(|| TASK_LOCAL.with(|v| *black_box(v))));
    });
    let one = snapshot_with(1);
    g.bench_function("rtext_get", |b| {
        one.run(|| b.iter(|| black_box(&VARS[0]).get()));
    });
    g.bench_function("rtext_with", |b| {
        one.run(|| b.iter(|| black_box(&VARS[0]).with(|v| v.copied())));
    });
    let sixteen = snapshot_with(16);
    g.bench_function("rtext_get16", |b| {
        sixteen.run(|| b.iter(|| black_box(&VARS[9]).get()));
    });
    g.bench_function("otel_current", |b| {
        let _attached = OtelContext::current_with_value(OtelValue(1)).attach();
        b.iter(|| OtelContext::current().get::<OtelValue>().copied());
    });
    g.bench_function("otel_map_current", |b| {
        let _attached = OtelContext::current_with_value(OtelValue(1)).attach();
        b.iter(|| OtelContext::map_current(|cx| cx.get::<OtelValue>().copied()));
    });
    g.bench_function("dcontext", |b| {
        let _attached = dcontext_with(1);
        let key = black_box(workload::DCONTEXT_KEYS[0]);
        b.iter(|| dcontext::get_context_variable::<u64>(key));
    });
    g.finish();
}

// ===== spawning =====

fn spawn(c: &mut Criterion) {
    let rt = workload::current_thread();
    let mut g = c.benchmark_group("spawn_join");
    g.bench_function("tokio", |b| {
        b.iter(|| rt.block_on(spawn_join(|| tokio::spawn(async {}))));
    });
    for n in [0, 1, 16] {
        let snapshot = snapshot_with(n);
        g.bench_function(format!("rtext_{n}"), |b| {
            b.iter(|| rt.block_on(snapshot.scope(spawn_join(|| ctx::spawn(async {})))));
        });
    }
    g.bench_function("otel", |b| {
        let _attached = OtelContext::current_with_value(OtelValue(1)).attach();
        b.iter(|| {
            rt.block_on(spawn_join(|| {
                tokio::spawn(async {}.with_context(OtelContext::current()))
            }))
        });
    });
    for n in [0, 1, 16] {
        g.bench_function(format!("dcontext_{n}"), |b| {
            let _attached = dcontext_with(n);
            b.iter(|| {
                rt.block_on(spawn_join(|| {
                    tokio::spawn(dcontext::ContextFutureExt::fork(async {}))
                }))
            });
        });
    }
    g.finish();
}

// ===== capturing =====

fn capture(c: &mut Criterion) {
    let mut g = c.benchmark_group("capture");
    for n in [1, 16, 256] {
        let snapshot = snapshot_with(n);
        g.bench_function(format!("rtext_{n}"), |b| {
            snapshot.run(|| b.iter(ctx::Snapshot::capture));
        });
    }
    g.bench_function("otel", |b| {
        let _attached = OtelContext::current_with_value(OtelValue(1)).attach();
        b.iter(OtelContext::current);
    });
    for n in [1, 5, 10] {
        g.bench_function(format!("dcontext_{n}"), |b| {
            let _attached = dcontext_with(n);
            b.iter(dcontext::capture);
        });
    }
    g.finish();
}

// ===== crossing a process boundary =====

fn propagate(c: &mut Criterion) {
    let mut g = c.benchmark_group("propagate");
    let (codec, snapshot) = workload::wire_codec();
    let bytes = codec.encode(&snapshot);
    g.bench_function("rtext_encode", |b| {
        b.iter(|| codec.encode(black_box(&snapshot)))
    });
    g.bench_function("rtext_decode", |b| {
        b.iter(|| codec.decode(black_box(&bytes)).expect("decodes"))
    });
    let _attached = dcontext_with(10);
    let dbytes = dcontext::capture().serialize().expect("serializes");
    g.bench_function("dcontext_encode", |b| {
        b.iter(|| dcontext::capture().serialize().expect("serializes"))
    });
    g.bench_function("dcontext_decode", |b| {
        b.iter(|| dcontext::ContextSnapshot::deserialize(black_box(&dbytes)).expect("decodes"))
    });
    g.finish();
}

/// Decoding inputs of the size limit: a valid one, and hostile ones whose
/// entries declare `u64::MAX` elements (see [`workload::hostile_inputs`]).
fn decode_hostile(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_hostile");
    let inputs = workload::hostile_inputs();
    let codec = &inputs.codec;
    for (id, input) in [
        ("valid", &inputs.valid),
        ("map_strings", &inputs.map_strings),
        ("map_bytes", &inputs.map_bytes),
        ("seq", &inputs.seq),
        ("zero_sized", &inputs.zero_sized),
    ] {
        g.bench_function(id, |b| {
            b.iter(|| {
                codec
                    .decode_onto(&ctx::Snapshot::empty(), black_box(input))
                    .expect("within the limits")
            })
        });
    }
    g.finish();
}

// ===== binding and hooks =====

fn bind(c: &mut Criterion) {
    let mut g = c.benchmark_group("bind");
    g.bench_function("task_local", |b| {
        b.iter(|| TASK_LOCAL.sync_scope(black_box(2), || TASK_LOCAL.with(|v| *v)));
    });
    let var = &VARS[MAX_BOUND];
    g.bench_function("rtext_set", |b| {
        ctx::Snapshot::empty().run(|| b.iter(|| drop(black_box(var).set(2))));
    });
    let sixteen = snapshot_with(16);
    g.bench_function("rtext_set16", |b| {
        sixteen.run(|| b.iter(|| drop(black_box(var).set(2))));
    });
    g.bench_function("rtext_sync_scope", |b| {
        ctx::Snapshot::empty().run(|| b.iter(|| black_box(var).sync_scope(2, || ())));
    });
    g.bench_function("otel", |b| {
        b.iter(|| drop(OtelContext::current_with_value(OtelValue(2)).attach()));
    });
    g.bench_function("dcontext", |b| {
        let _attached = dcontext_with(0);
        let key = workload::DCONTEXT_KEYS[0];
        b.iter(|| {
            let scope = dcontext::push_scope("bench");
            dcontext::set_context_variable(key, 2u64);
            drop(scope);
        });
    });
    g.finish();
}

/// `set` + drop in a task's frame, `iters` times in one task (the frame has
/// had a binding from the second on), with and without another binding held
/// throughout, against `task_local!`'s `sync_scope` in a `tokio::spawn`ed
/// task.
fn bind_in_task(c: &mut Criterion) {
    let rt = workload::current_thread();
    let mut g = c.benchmark_group("bind_in_task");
    g.bench_function("task_local", |b| {
        b.iter_custom(|iters| {
            timed_in_task(&rt, || {
                tokio::spawn(async move {
                    let start = Instant::now();
                    for i in 0..iters {
                        TASK_LOCAL.sync_scope(black_box(i), || black_box(()));
                    }
                    start.elapsed()
                })
            })
        });
    });
    for (id, other) in [("rtext_set", false), ("rtext_set_again", true)] {
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                timed_in_task(&rt, || {
                    ctx::spawn(async move {
                        let _other = other.then(|| VARS[1].set(1));
                        let start = Instant::now();
                        for i in 0..iters {
                            drop(black_box(&VARS[0]).set(black_box(i)));
                        }
                        start.elapsed()
                    })
                })
            });
        });
    }
    g.finish();
}

/// A variable none of the snapshots binds.
const MAX_BOUND: usize = workload::MAX_VARS - 1;

fn hook(c: &mut Criterion) {
    let mut g = c.benchmark_group("hook");
    g.bench_function("tracing_enter", |b| {
        with_registry(|| {
            let span = tracing::info_span!("bench");
            b.iter(|| drop(black_box(&span).enter()));
        });
    });
    g.bench_function("rtext_enter", |b| {
        ctx::Snapshot::empty().run(|| b.iter(|| drop(ctx::enter(CountingHook::default()))));
    });
    g.finish();
}

/// A span entered and its guard dropped in a `ctx::spawn`ed task, Registry:
/// rt-ext's `ctx::tracing::enter` against tracing's `Span::enter`.
#[cfg(feature = "log-variables")]
fn span_enter(c: &mut Criterion) {
    let rt = workload::current_thread();
    let mut g = c.benchmark_group("span_enter");
    for (id, guard) in [("tracing_enter", false), ("rtext_guard", true)] {
        g.bench_function(id, |b| {
            with_registry(|| {
                b.iter_custom(|iters| {
                    timed_in_task(&rt, || {
                        ctx::spawn(async move {
                            let span = tracing::info_span!("bench");
                            let start = Instant::now();
                            for _ in 0..iters {
                                if guard {
                                    drop(ctx::tracing::enter(black_box(&span)));
                                } else {
                                    drop(black_box(&span).enter());
                                }
                            }
                            start.elapsed()
                        })
                    })
                })
            });
        });
    }
    g.finish();
}

/// The request id a `log_line` row writes.
#[cfg(feature = "log-variables")]
static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");

/// One `info!` with a field, formatted by tracing-subscriber's fmt layer
/// (text, then JSON) into `io::sink`: with no request id, inside an entered
/// span that carries it (the usual way to get it on every line), and with it
/// bound in the context and written by `LogVariables`.
#[cfg(feature = "log-variables")]
fn log_line(c: &mut Criterion) {
    use rt_ext::tracing::LogVariables;
    use tracing::{info, info_span};
    use tracing_subscriber::fmt;
    use tracing_subscriber::prelude::*;

    let logged = LogVariables::new().with(&REQUEST_ID);
    let mut g = c.benchmark_group("log_line");
    for format in ["text", "json"] {
        let plain = || match format {
            "text" => tracing::Dispatch::new(
                tracing_subscriber::registry().with(fmt::layer().with_writer(std::io::sink)),
            ),
            _ => tracing::Dispatch::new(
                tracing_subscriber::registry().with(fmt::layer().json().with_writer(std::io::sink)),
            ),
        };
        let with_variables = match format {
            "text" => tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(logged.text(fmt::layer().with_writer(std::io::sink))),
            ),
            _ => tracing::Dispatch::new(
                tracing_subscriber::registry()
                    .with(logged.json(fmt::layer().json().with_writer(std::io::sink))),
            ),
        };
        g.bench_function(format!("{format}_plain"), |b| {
            tracing::dispatcher::with_default(&plain(), || {
                b.iter(|| info!(status = black_box(200), "served"))
            })
        });
        g.bench_function(format!("{format}_span"), |b| {
            tracing::dispatcher::with_default(&plain(), || {
                let span = info_span!("request", request_id = 7u64);
                let _entered = span.enter();
                b.iter(|| info!(status = black_box(200), "served"))
            })
        });
        g.bench_function(format!("{format}_variables"), |b| {
            tracing::dispatcher::with_default(&with_variables, || {
                ctx::Snapshot::empty().run(|| {
                    let _id = REQUEST_ID.set(7);
                    b.iter(|| info!(status = black_box(200), "served"))
                })
            })
        });
    }
    g.finish();
}

fn span_across_yields(c: &mut Criterion) {
    let rt = workload::current_thread();
    let mut g = c.benchmark_group("span_across_yields");
    g.bench_function("tokio", |b| with_registry(|| b.iter(|| tokio_yields(&rt))));
    g.bench_function("rtext_hook", |b| {
        with_registry(|| {
            b.iter(|| {
                rt.block_on(async {
                    let span = tracing::info_span!("task");
                    ctx::spawn(async move {
                        let _hook = ctx::enter(SpanHook::new(span));
                        yield_n(YIELDS).await;
                    })
                    .await
                    .unwrap()
                })
            })
        });
    });
    g.bench_function("instrument", |b| {
        with_registry(|| b.iter(|| instrumented_yields(&rt)));
    });
    g.finish();
}

/// A span held across every yield of a task, Registry: rt-ext's span guard
/// taken in the task's body, against tracing's `Instrument` around the
/// yielding future and around the same body.
#[cfg(feature = "log-variables")]
fn span_guard_across_yields(c: &mut Criterion) {
    let rt = workload::current_thread();
    let mut g = c.benchmark_group("span_guard_across_yields");
    g.bench_function("instrument", |b| {
        with_registry(|| b.iter(|| instrumented_yields(&rt)));
    });
    g.bench_function("instrument_body", |b| {
        with_registry(|| {
            b.iter(|| {
                rt.block_on(async {
                    let span = tracing::info_span!("task");
                    let body = async move {
                        yield_n(YIELDS).await;
                    };
                    tokio::spawn(body.instrument(span)).await.unwrap()
                })
            })
        });
    });
    g.bench_function("rtext_guard", |b| {
        with_registry(|| {
            b.iter(|| {
                rt.block_on(async {
                    ctx::spawn(async move {
                        let span = tracing::info_span!("task");
                        let _guard = ctx::tracing::enter(&span);
                        yield_n(YIELDS).await;
                    })
                    .await
                    .unwrap()
                })
            })
        });
    });
    g.finish();
}

// ===== services =====

/// One request through a service that answers at once: bare, behind
/// `FrameLayer`, and behind it with a handler that binds (`set`).
fn frame_layer(c: &mut Criterion) {
    use tower::Layer as _;
    let mut g = c.benchmark_group("frame_layer");
    let mut bare = workload::ready_service();
    g.bench_function("bare", |b| {
        b.iter(|| workload::serve_now(&mut bare, black_box(1)))
    });
    let mut framed = ctx::tower::FrameLayer::new().layer(workload::ready_service());
    g.bench_function("rtext_frame", |b| {
        b.iter(|| workload::serve_now(&mut framed, black_box(1)))
    });
    let mut binding =
        ctx::tower::FrameLayer::new().layer(tower::service_fn(workload::binding_handler));
    g.bench_function("rtext_frame_set", |b| {
        b.iter(|| workload::serve_now(&mut binding, black_box(1)))
    });
    g.finish();
}
