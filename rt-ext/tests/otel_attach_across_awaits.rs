//! Two tasks, each holding an `rt_ext::otel::attach` guard across awaits,
//! interleaved: each sees its own context after every await and never the
//! other's, and a plain task polled between them sees none. The tasks meet
//! at a barrier every round, so both were suspended at once while holding
//! their guards (counted), and their polls alternated (counted), on one
//! thread and on two workers. The control: OpenTelemetry's own guard held
//! the same way leaks each task's context into the other.
#![cfg(feature = "opentelemetry")]

mod otel_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use otel_support::{current_marker, marked};
use rt_ext as ctx;
use tokio::sync::Barrier;
use tokio::task::yield_now;

const ROUNDS: usize = 20;

/// Each step of a task: the task, and the marker it saw.
type Steps = Arc<Mutex<Vec<(u64, Option<u64>)>>>;

/// What the two tasks share: the barrier, how many wait at it now and at
/// most, and the order of their steps (task, what it saw).
#[derive(Clone)]
struct Meeting {
    barrier: Arc<Barrier>,
    waiting: Arc<AtomicUsize>,
    most_waiting: Arc<AtomicUsize>,
    steps: Steps,
}

impl Meeting {
    fn new() -> Meeting {
        Meeting {
            barrier: Arc::new(Barrier::new(2)),
            waiting: Arc::default(),
            most_waiting: Arc::default(),
            steps: Arc::default(),
        }
    }

    fn step(&self, task: u64) {
        self.steps.lock().unwrap().push((task, current_marker()));
    }

    async fn meet(&self) {
        let now = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_waiting.fetch_max(now, Ordering::SeqCst);
        self.barrier.wait().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }

    /// Checks every step saw its own task's context, and that the
    /// interleaving happened: both tasks waited at once, and the steps
    /// switched between the tasks at least once a round.
    fn check(&self) {
        let steps = self.steps.lock().unwrap().clone();
        assert_eq!(steps.len(), 2 * (2 * ROUNDS + 1));
        for (task, seen) in &steps {
            assert_eq!(*seen, Some(*task), "{steps:?}");
        }
        assert_eq!(self.most_waiting.load(Ordering::SeqCst), 2);
        let switches = steps.windows(2).filter(|w| w[0].0 != w[1].0).count();
        assert!(switches >= ROUNDS, "{switches} switches: {steps:?}");
    }
}

/// Holds its own context across `ROUNDS` meetings and a yield each.
async fn holder(meeting: Meeting, task: u64) {
    let _cx = ctx::otel::attach(marked(task));
    meeting.step(task);
    for _ in 0..ROUNDS {
        meeting.meet().await;
        meeting.step(task);
        yield_now().await;
        meeting.step(task);
    }
}

/// A task spawned with plain tokio: it must never see a holder's context.
async fn bystander(seen: Arc<Mutex<Vec<Option<u64>>>>) {
    for _ in 0..4 * ROUNDS {
        seen.lock().unwrap().push(current_marker());
        yield_now().await;
    }
}

fn interleave(rt: &ctx::Runtime) {
    let meeting = Meeting::new();
    let bystander_saw = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        let a = ctx::spawn(holder(meeting.clone(), 1));
        let b = ctx::spawn(holder(meeting.clone(), 2));
        let c = tokio::spawn(bystander(bystander_saw.clone()));
        a.await.unwrap();
        b.await.unwrap();
        c.await.unwrap();
    });
    meeting.check();
    let saw = bystander_saw.lock().unwrap();
    assert!(saw.iter().all(Option::is_none), "{saw:?}");
}

#[test]
fn two_interleaved_tasks_on_one_thread_each_see_only_their_own_context() {
    let rt = ctx::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    interleave(&rt);
}

#[test]
fn two_interleaved_tasks_on_two_workers_each_see_only_their_own_context() {
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..10 {
        interleave(&rt);
    }
}

#[test]
fn control_opentelemetrys_own_guard_held_across_awaits_leaks_between_tasks() {
    let meeting = Meeting::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        // `!Send` guards: only local tasks can hold them across an await.
        let tasks: Vec<_> = [1, 2]
            .into_iter()
            .map(|task| {
                let meeting = meeting.clone();
                tokio::task::spawn_local(async move {
                    let _cx = marked(task).attach();
                    meeting.step(task);
                    for _ in 0..ROUNDS {
                        meeting.meet().await;
                        meeting.step(task);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let steps = meeting.steps.lock().unwrap().clone();
    assert_eq!(meeting.most_waiting.load(Ordering::SeqCst), 2);
    let leaked = steps
        .iter()
        .filter(|(task, seen)| *seen != Some(*task))
        .count();
    assert!(
        leaked > 0,
        "no step saw the other task's context: {steps:?}"
    );
}
