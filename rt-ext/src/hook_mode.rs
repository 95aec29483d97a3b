//! Runtime-hook mode (`--cfg tokio_unstable`): every task of a runtime built
//! by [`Builder`](crate::Builder) gets a frame, even one spawned with plain
//! `tokio::spawn` by a library.
//!
//! tokio calls four task hooks; this module turns them into the poll
//! protocol of a [`TaskFrame`] per task:
//!
//! * spawn (on the spawning thread, before the task can run): capture the
//!   spawner's context into a new frame, keyed by the task id;
//! * before poll: take the task's frame out of the registry and enter it;
//! * after poll: leave it (its hooks yield) and put it back;
//! * terminate: end it. On completion tokio calls this *between* the poll and
//!   the after-poll hook, so the frame is found entered on this thread and
//!   after-poll then finds nothing to do. An aborted or shut-down task may
//!   terminate without a poll around it (at shutdown its future is dropped
//!   with no poll hook at all): its frame is then taken from the registry,
//!   resumed and torn down, so its hooks are still dropped entered.
//!
//! What tokio's source shows and this module relies on or works around:
//! the poll hooks do not say whether the poll returned `Pending` (terminate
//! tells completion apart); `spawn_blocking` tasks get a terminate hook but no
//! spawn or poll hooks (unknown ids are ignored; `crate::spawn_blocking`
//! frames its closures itself); `LocalSet` tasks get no hooks; `block_on`'s
//! future is not a task (`Runtime::block_on` frames it); `task::try_id()`
//! inside a poll hook is not the polled task, so only `TaskMeta::id()` is
//! used; an id may be seen again after its task ended, so a spawn replaces
//! (and ends) a stale frame under the same id.
//!
//! The registry is sharded by task id: each poll locks one shard out of
//! [`SHARDS`] twice (take the frame out of its entry, put it back: two
//! lookups), never a global lock, and tasks on different workers almost
//! never share a shard. Panics of hooks are caught
//! (they run inside tokio's worker loop, which must not unwind); the panic
//! hook has already reported them, and the hook that panicked is dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use spawn_hooks::{Snapshot, TaskFrame};
use tokio::task::Id;

/// Shards of the registry: a power of two, a few per core of a big machine.
pub(crate) const SHARDS: usize = 64;

/// A task's entry stays in place from spawn to termination; while the task
/// is being polled its frame is out (`None`), entered on the polling thread.
/// Taking it out and putting it back are lookups, not removals and inserts.
type Frames = HashMap<Id, Option<TaskFrame>, BuildHasherDefault<IdHasher>>;

/// Task id → frame, for one runtime.
pub(crate) struct Registry {
    shards: Box<[Shard]>,
}

/// One shard, on its own cache lines so that workers do not false-share.
#[repr(align(128))]
struct Shard(Mutex<Frames>);

thread_local! {
    /// Frames entered on this thread, taken out of their registry for the
    /// poll. One at a time in practice (task polls do not nest on a worker);
    /// a vector keeps it right if they ever do.
    static POLLING: RefCell<Vec<(Id, TaskFrame)>> = const { RefCell::new(Vec::new()) };
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Shard(Mutex::default())).collect(),
        }
    }

    fn shard(&self, id: Id) -> MutexGuard<'_, Frames> {
        let mut h = IdHasher::default();
        id.hash(&mut h);
        // Bits 32.. pick the shard: independent of the low bits and the top
        // seven that the map inside uses for buckets and tags.
        let shard = &self.shards[(h.finish() >> 32) as usize % SHARDS];
        // No code that can panic runs under this lock: poisoning is moot.
        shard.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The spawn hook: on the spawning thread, before the task can be polled.
    pub(crate) fn spawned(&self, id: Id) {
        let frame = TaskFrame::new(Snapshot::capture());
        let stale = self.shard(id).insert(id, Some(frame));
        // Ended (by its `Drop`) outside the lock.
        drop(stale);
    }

    /// The before-poll hook.
    pub(crate) fn before_poll(&self, id: Id) {
        let Some(mut frame) = self.shard(id).get_mut(&id).and_then(Option::take) else {
            return;
        };
        let _ = frame.enter();
        let _ = POLLING.try_with(|p| p.borrow_mut().push((id, frame)));
    }

    /// The after-poll hook.
    pub(crate) fn after_poll(&self, id: Id) {
        let Some(mut frame) = take_polling(id) else {
            // Terminated during this poll: already ended.
            return;
        };
        let _ = frame.leave();
        if let Some(slot) = self.shard(id).get_mut(&id) {
            *slot = Some(frame);
            return;
        }
        // The entry went away meanwhile (cannot happen: only terminate
        // removes it, and it finds the frame entered here first): end it.
        let _ = frame.end();
    }

    /// The terminate hook: inside the last poll on completion, or on its own
    /// for a task cancelled without a poll.
    pub(crate) fn terminated(&self, id: Id) {
        let parked = self.shard(id).remove(&id).flatten();
        if let Some(mut frame) = take_polling(id).or(parked) {
            let _ = frame.end();
        }
    }

    /// The number of frames held: tasks spawned and not yet terminated.
    pub(crate) fn len(&self) -> usize {
        let parked: usize = self
            .shards
            .iter()
            .map(|s| s.0.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum();
        // Entries of frames being polled stay in place: counted above.
        parked
    }
}

/// Takes the frame of task `id` if it is the one entered on this thread.
fn take_polling(id: Id) -> Option<TaskFrame> {
    POLLING
        .try_with(|p| {
            let mut p = p.borrow_mut();
            match p.last() {
                Some((top, _)) if *top == id => p.pop().map(|(_, f)| f),
                _ => None,
            }
        })
        .ok()
        .flatten()
}

/// Task ids are integers handed out in sequence: one multiplication spreads
/// them (Fibonacci hashing).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("frames", &self.len())
            .finish()
    }
}
