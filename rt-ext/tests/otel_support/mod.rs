//! Helpers shared by the OpenTelemetry tests: a marker value carried in the
//! current `Context`, a log of what each piece of work saw and on which
//! thread, and the retry loop that waits for a task to move between workers.
#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

use opentelemetry::Context;

/// A value put in an OpenTelemetry `Context`, to tell contexts apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker(pub u64);

/// The marker of the current OpenTelemetry context.
pub fn current_marker() -> Option<u64> {
    Context::current().get::<Marker>().map(|m| m.0)
}

/// A context with `marker` on top of the current one.
pub fn marked(marker: u64) -> Context {
    Context::current().with_value(Marker(marker))
}

/// One observation: what `label` saw, expected, and where.
#[derive(Clone, Debug)]
pub struct Seen {
    pub label: String,
    pub expected: u64,
    pub seen: Option<u64>,
    pub thread: ThreadId,
}

/// A shared log of observations.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    /// Records what the current context holds, here and now.
    pub fn record(&self, label: impl Into<String>, expected: u64) {
        let seen = Seen {
            label: label.into(),
            expected,
            seen: current_marker(),
            thread: thread::current().id(),
        };
        self.0.lock().unwrap().push(seen);
    }

    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }
}

/// Whether some label was recorded on more than one thread.
pub fn some_label_migrated(log: &[Seen]) -> bool {
    let mut threads: HashMap<&str, HashSet<ThreadId>> = HashMap::new();
    for s in log {
        threads.entry(&s.label).or_default().insert(s.thread);
    }
    threads.values().any(|t| t.len() > 1)
}

/// Runs `attempt` (one run on two workers, which checks its own log and
/// returns it) until some task moved between the workers, the interleaving
/// the caller's test is about; fails after 20 runs without one.
pub fn retry_until_a_task_migrates(mut attempt: impl FnMut() -> Vec<Seen>) {
    for _ in 0..20 {
        if some_label_migrated(&attempt()) {
            return;
        }
    }
    panic!("no task ever moved between the two workers");
}
