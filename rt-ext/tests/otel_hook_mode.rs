//! Runtime-hook mode (`--cfg tokio_unstable`): a task spawned with plain
//! `tokio::spawn`, as a library would, runs with its spawner's
//! OpenTelemetry context after every await, on each runtime flavor, and so
//! do the plain tasks it spawns; a runtime built with
//! `frame_every_task(false)` does not (the control).
#![cfg(all(tokio_unstable, feature = "opentelemetry"))]

mod otel_support;

use std::time::Duration;

use otel_support::{current_marker, marked};
use rt_ext as ctx;
use tokio::task::yield_now;

/// Stands in for a library that spawns its own tasks with plain tokio.
fn library_spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(f)
}

/// What a plain task sees after a yield and a sleep, and what the plain
/// task it spawns sees, under the spawner's context `marker`.
async fn plain_spawns(marker: u64) -> (Option<u64>, Option<u64>) {
    let _cx = ctx::otel::attach(marked(marker));
    yield_now().await;
    library_spawn(async {
        yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let seen = current_marker();
        let grandchild = library_spawn(async {
            yield_now().await;
            current_marker()
        })
        .await
        .unwrap();
        (seen, grandchild)
    })
    .await
    .unwrap()
}

fn runtimes(frame_every_task: bool) -> Vec<ctx::Runtime> {
    let mut multi = ctx::Builder::new_multi_thread();
    multi.worker_threads(2);
    [multi, ctx::Builder::new_current_thread()]
        .into_iter()
        .map(|mut b| {
            b.enable_all()
                .frame_every_task(frame_every_task)
                .build()
                .unwrap()
        })
        .collect()
}

#[test]
fn a_plain_tokio_spawn_runs_with_the_spawners_context() {
    for rt in runtimes(true) {
        assert!(rt.frames_every_task());
        let seen = rt.block_on(async {
            let tasks: Vec<_> = (1..=8).map(|m| ctx::spawn(plain_spawns(m))).collect();
            let mut seen = Vec::new();
            for t in tasks {
                seen.push(t.await.unwrap());
            }
            seen
        });
        let expected: Vec<_> = (1..=8).map(|m| (Some(m), Some(m))).collect();
        assert_eq!(seen, expected);
    }
}

#[test]
fn control_without_frames_for_every_task_a_plain_spawn_sees_no_context() {
    for rt in runtimes(false) {
        assert!(!rt.frames_every_task());
        let seen = rt.block_on(async { ctx::spawn(plain_spawns(1)).await.unwrap() });
        assert_eq!(seen, (None, None));
    }
}
