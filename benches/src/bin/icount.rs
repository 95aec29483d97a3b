//! `icount OP N`: does one operation N times, for instruction counts under
//! callgrind. Everything but the N repetitions is the same for every N, so
//! the count of a run with 2N minus the count of a run with N, over N, is the
//! cost of one operation (see `icount.sh`). Runs on a current-thread runtime
//! (callgrind serialises threads anyway).
//!
//! Operations: see `OPS` below, or run it with no arguments.

use std::hint::black_box;

use benches::workload::{self, snapshot_with, yield_n, CountingHook, TASK_LOCAL, VARS};
use rt_ext as ctx;

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
    ("get_task_local", "`task_local!` `with`, bound"),
    ("get_rtext", "`Variable::get`, 1 bound"),
    ("get_rtext16", "`Variable::get`, 16 bound"),
    ("capture_1", "`Snapshot::capture` (and drop), 1 bound"),
    ("capture_256", "`Snapshot::capture` (and drop), 256 bound"),
    ("spawn_tokio", "`tokio::spawn` of a trivial task, and join"),
    (
        "spawn_rtext",
        "`ctx::spawn` of a trivial task, 0 variables, and join",
    ),
    (
        "spawn_rtext16",
        "`ctx::spawn` of a trivial task, 16 variables, and join",
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
        "capture_1" | "capture_256" => {
            let vars = if op == "capture_1" { 1 } else { 256 };
            snapshot_with(vars).run(|| {
                for _ in 0..n {
                    black_box(ctx::Snapshot::capture());
                }
            })
        }
        "spawn_tokio" => rt.block_on(async {
            for _ in 0..n / workload::TASKS {
                workload::spawn_join(|| tokio::spawn(async {})).await;
            }
        }),
        "spawn_rtext" | "spawn_rtext16" => {
            let vars = if op == "spawn_rtext" { 0 } else { 16 };
            rt.block_on(snapshot_with(vars).scope(async {
                for _ in 0..n / workload::TASKS {
                    workload::spawn_join(|| ctx::spawn(async {})).await;
                }
            }))
        }
        other => {
            eprintln!("unknown operation {other}; run with no arguments for the list");
            std::process::exit(2);
        }
    }
}
