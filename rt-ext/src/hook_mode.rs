//! Runtime-hook mode (`--cfg tokio_unstable`): every task of a runtime built
//! by [`Builder`](crate::Builder) gets a frame, even one spawned with plain
//! `tokio::spawn` by a library.
//!
//! tokio calls four task hooks; this module turns them into calls of the
//! core's [`TaskTable`], which keeps a frame per task id:
//!
//! * spawn (on the spawning thread, before the task can run): capture the
//!   spawner's context, with what the task inherits, into a new frame;
//! * before poll: enter the task's frame (a thread-local pointer swap, plus
//!   `on_resume` of its hooks if it has any);
//! * after poll: leave it (its hooks yield, the pointer is swapped back);
//! * terminate: take it out and end it. On completion tokio calls this
//!   *between* the poll and the after-poll hook, so the frame is entered on
//!   this thread and ended there, and after-poll then finds nothing. An
//!   aborted or shut-down task may terminate without a poll around it (at
//!   shutdown its future is dropped with no poll hook at all): its frame is
//!   then resumed and torn down, so its hooks are still dropped entered.
//!
//! tokio may run a task's after-poll hook while its next poll starts on
//! another worker (or while it is cancelled there); the table's slots are
//! owned by the thread that entered them until it has left, and the other
//! thread waits. A user's after-poll hook, composed before ours, so still
//! finds the task's frame current, and nothing else touches it.
//!
//! What tokio's source shows and this module relies on or works around:
//! the poll hooks do not say whether the poll returned `Pending` (terminate
//! tells completion apart); `spawn_blocking` tasks get a terminate hook but no
//! spawn or poll hooks (unknown ids are ignored; `crate::spawn_blocking`
//! frames its closures itself); `LocalSet` tasks get no hooks; `block_on`'s
//! future is not a task (`Runtime::block_on` frames it); `task::try_id()`
//! inside a poll hook is not the polled task, so only `TaskMeta::id()` is
//! used; an id may be seen again after its task ended, so a spawn replaces
//! (and ends) a stale frame under the same id. Panics of hooks are caught
//! (they run inside tokio's worker loop, which must not unwind); the panic
//! hook has already reported them, and the hook that panicked is dropped.

use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use spawn_hooks::{CaughtPanic, TaskTable};
use tokio::task::Id;

/// Task id → frame, for one runtime: the core's table, fed by tokio's hooks.
pub(crate) struct Registry(TaskTable);

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry(TaskTable::new())
    }

    /// The spawn hook: on the spawning thread, before the task can be polled.
    pub(crate) fn spawned(&self, id: Id) {
        if take_already_framed() {
            // Spawned through rt-ext: the task's future is framed already.
            return;
        }
        // The task's frame, from the spawner's context, with what it
        // inherits registered in it, suspended until the first poll.
        self.0
            .insert(key(id), crate::inherit::capture().task_frame());
    }

    /// The before-poll hook.
    #[inline(always)]
    pub(crate) fn before_poll(&self, id: Id) {
        report(self.0.enter(key(id)));
    }

    /// The after-poll hook. When the task completed in this poll, its frame
    /// was ended by the terminate hook: nothing is left.
    #[inline(always)]
    pub(crate) fn after_poll(&self, id: Id) {
        report(self.0.leave(key(id)));
    }

    /// The terminate hook: inside the last poll on completion, or on its
    /// own for a task cancelled without a poll. Ids of tasks never spawned
    /// here (`spawn_blocking`) are not found and ignored.
    pub(crate) fn terminated(&self, id: Id) {
        report(self.0.remove(key(id)));
    }

    /// The number of frames held: tasks spawned and not yet terminated.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("frames", &self.len())
            .finish()
    }
}

// ===== tasks framed by rt-ext, runtimes in hook mode =====

thread_local! {
    /// Set while rt-ext spawns a future it has framed itself: the spawn
    /// hook that tokio runs inside that spawn, on this thread, gives the
    /// task no second frame.
    static ALREADY_FRAMED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Sets or clears the flag (see `inherit::FramedSpawn`).
#[inline]
pub(crate) fn set_already_framed(on: bool) {
    let _ = ALREADY_FRAMED.try_with(|f| f.set(on));
}

#[inline]
fn take_already_framed() -> bool {
    ALREADY_FRAMED
        .try_with(|f| f.replace(false))
        .unwrap_or(false)
}

/// The registries of the live runtimes in hook mode, by runtime id, for
/// [`crate::Handle::frames_every_task`].
static RUNTIMES: Mutex<Vec<(tokio::runtime::Id, Weak<Registry>)>> = Mutex::new(Vec::new());

/// Records that runtime `id` frames every task, in `frames`.
pub(crate) fn register_runtime(id: tokio::runtime::Id, frames: &Arc<Registry>) {
    let mut runtimes = RUNTIMES.lock().unwrap_or_else(PoisonError::into_inner);
    // The registry lives as long as the runtime's hooks: a dead entry is a
    // runtime gone.
    runtimes.retain(|(_, r)| r.strong_count() > 0);
    runtimes.push((id, Arc::downgrade(frames)));
}

/// Whether runtime `id` frames every task.
pub(crate) fn frames_every_task(id: tokio::runtime::Id) -> bool {
    let runtimes = RUNTIMES.lock().unwrap_or_else(PoisonError::into_inner);
    runtimes
        .iter()
        .any(|(r, frames)| *r == id && frames.strong_count() > 0)
}

/// Task `id`'s key in the table: its integer, or (if tokio ever hashed ids
/// differently) its hash, never 0.
#[inline(always)]
fn key(id: Id) -> NonZeroU64 {
    match raw(id).and_then(NonZeroU64::new) {
        Some(n) => n,
        None => NonZeroU64::new(hash(id) | 1).unwrap_or(NonZeroU64::MIN),
    }
}

/// Drops the panic of a hook, caught by the protocol: the hooks run inside
/// tokio's worker loop, which must not unwind, and the panic hook has already
/// reported it.
#[inline(always)]
fn report(result: Result<(), CaughtPanic>) {
    if let Err(panic) = result {
        discard(panic);
    }
}

#[cold]
#[inline(never)]
fn discard(panic: CaughtPanic) {
    // The payload's own destructor may panic too.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(panic)));
}

/// A task id as the integer tokio made it from, read through its `Hash`
/// (tokio does not expose it otherwise): the derived `Hash` of the id's
/// `NonZeroU64` writes exactly that integer, once. Anything else (a future
/// tokio hashing ids differently) gives `None`, and the task's frame goes to
/// the overflow map, keyed by the id itself. Inlined, the checks fold away.
#[inline(always)]
fn raw(id: Id) -> Option<u64> {
    let mut h = RawId::default();
    id.hash(&mut h);
    match h {
        RawId {
            value,
            writes: 1,
            other: false,
        } if value != 0 => Some(value),
        _ => None,
    }
}

/// Records what `Id::hash` writes (see [`raw`]).
#[derive(Default)]
struct RawId {
    value: u64,
    writes: u32,
    other: bool,
}

impl Hasher for RawId {
    fn finish(&self) -> u64 {
        self.value
    }
    fn write(&mut self, _: &[u8]) {
        self.other = true;
    }
    fn write_u64(&mut self, n: u64) {
        self.value = n;
        self.writes += 1;
    }
}

/// Task `id` hashed as the overflow map hashes it.
fn hash(id: Id) -> u64 {
    let mut h = IdHasher::default();
    id.hash(&mut h);
    h.finish()
}

/// The overflow map's hasher: task ids are integers handed out in sequence,
/// one multiplication spreads them (Fibonacci hashing).
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

#[cfg(test)]
mod tests {
    use super::raw;

    /// The table relies on reading a task id's integer through its `Hash`:
    /// checked against the integer tokio prints, for the tokio in use.
    #[test]
    fn raw_ids_are_the_integers_tokio_prints() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ids = rt.block_on(async {
            let a = tokio::spawn(async { tokio::task::id() }).await.unwrap();
            let b = tokio::spawn(async { tokio::task::id() }).await.unwrap();
            [a, b]
        });
        for id in ids {
            assert_eq!(raw(id).map(|n| n.to_string()), Some(id.to_string()));
        }
        assert_ne!(raw(ids[0]), raw(ids[1]));
    }
}
