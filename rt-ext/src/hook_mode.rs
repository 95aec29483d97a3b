//! Runtime-hook mode (`--cfg tokio_unstable`): every task of a runtime built
//! by [`Builder`](crate::Builder) gets a frame, even one spawned with plain
//! `tokio::spawn` by a library.
//!
//! tokio calls four task hooks; this module turns them into the poll
//! protocol of a [`TaskFrame`] per task:
//!
//! * spawn (on the spawning thread, before the task can run): capture the
//!   spawner's context into a new frame, keyed by the task id;
//! * before poll: find the task's frame and enter it (a thread-local pointer
//!   swap, plus `on_resume` of its hooks if it has any);
//! * after poll: leave it (its hooks yield, the pointer is swapped back);
//! * terminate: take it out and end it. On completion tokio calls this
//!   *between* the poll and the after-poll hook, so the frame is entered on
//!   this thread and ended there, and after-poll then finds nothing. An
//!   aborted or shut-down task may terminate without a poll around it (at
//!   shutdown its future is dropped with no poll hook at all): its frame is
//!   then resumed and torn down, so its hooks are still dropped entered.
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
//! The registry is a table indexed by task id (tokio hands ids out in
//! sequence): two slots per id are tried, each an atomic id and the task's
//! frame, so a poll finds its frame with one or two atomic loads and no lock.
//! A slot is claimed by a compare-and-swap at spawn and freed at termination;
//! between the two only the task's own hooks touch it, and tokio runs those
//! one at a time. A task whose two slots are both taken by live tasks (more
//! live tasks than the table comfortably holds) goes to an overflow map of
//! [`SHARDS`] locked shards, never one global lock; the poll path looks there
//! only while the overflow is not empty. Panics of hooks are caught (they run
//! inside tokio's worker loop, which must not unwind); the panic hook has
//! already reported them, and the hook that panicked is dropped.
//!
//! The poll hooks are written so that everything but the common case (the
//! frame in its first slot, no hooks of its own) is a call out of line: what
//! is left inline is a table load, a compare, and the pointer swap.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use spawn_hooks::{CaughtPanic, Snapshot, TaskFrame};
use tokio::task::Id;

/// Slots of the table: a power of two. Each is two words, so the table
/// takes 64 KiB per runtime.
const SLOTS: usize = 4096;

/// Shards of the overflow map: a power of two.
pub(crate) const SHARDS: usize = 16;

type Overflow = HashMap<Id, Box<TaskFrame>, BuildHasherDefault<IdHasher>>;

/// Task id → frame, for one runtime.
pub(crate) struct Registry {
    /// Slot `i`: free (0), or the id of the live task whose frame is in
    /// `frames[i]`. Two arrays in place (the registry itself is in an `Arc`)
    /// rather than one array of pairs behind a pointer: a hook reaches both
    /// with one indexed load each, and the ids, read by every poll but
    /// written only at spawn and termination, share no cache line with the
    /// frames.
    ids: [AtomicU64; SLOTS],
    /// Initialized exactly while `ids[i]` is not 0: written by the spawner
    /// that claimed the slot before its task can run, moved out by the
    /// task's terminate hook before the slot is freed. No hook then needs to
    /// check for an empty slot.
    frames: [UnsafeCell<MaybeUninit<TaskFrame>>; SLOTS],
    /// Frames of tasks whose two slots were both taken (or whose id could
    /// not be read as an integer). Boxed, so that a frame stays in place while
    /// the map grows.
    overflow: Box<[Shard]>,
    /// The number of frames in `overflow`.
    overflowed: AtomicUsize,
}

/// One slot: its id and its frame.
#[derive(Clone, Copy)]
struct Slot<'a> {
    id: &'a AtomicU64,
    frame: &'a UnsafeCell<MaybeUninit<TaskFrame>>,
}

// SAFETY: a slot's frame is only read or written by the hooks of the task
// whose id the slot holds (or by the spawner that is claiming it, before the
// task can run). A slot is claimed by a compare-and-swap of `id` from 0
// (Acquire: it sees the frame its previous task took out) and freed by storing
// 0 (Release) after the frame is taken out. tokio runs one task's hooks one at
// a time (spawn before the task is scheduled, then polls and termination under
// the task's running state), which orders them for the owner, and task ids are
// unique among live tasks (`raw` keeps them exact). `TaskFrame` is `Send`.
unsafe impl Sync for Registry {}

/// One shard of the overflow map, on its own cache lines.
#[repr(align(128))]
struct Shard(Mutex<Overflow>);

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            ids: std::array::from_fn(|_| AtomicU64::new(0)),
            frames: std::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
            overflow: (0..SHARDS).map(|_| Shard(Mutex::default())).collect(),
            overflowed: AtomicUsize::new(0),
        }
    }

    /// The first slot task `n` may have: sequential ids fill the table in
    /// turn.
    #[inline(always)]
    fn first(&self, n: u64) -> Slot<'_> {
        self.slot((n as usize) & (SLOTS - 1))
    }

    #[inline(always)]
    fn slot(&self, i: usize) -> Slot<'_> {
        Slot {
            id: &self.ids[i],
            frame: &self.frames[i],
        }
    }

    /// The second slot task `n` may have, scattered so that a long-lived
    /// task does not keep the same two slots taken for every id that comes
    /// round to its first one.
    fn second(&self, n: u64) -> Slot<'_> {
        let scattered = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros());
        self.slot((scattered as usize) & (SLOTS - 1))
    }

    fn shard(&self, id: Id) -> MutexGuard<'_, Overflow> {
        let mut h = IdHasher::default();
        id.hash(&mut h);
        let shard = &self.overflow[(h.finish() >> 32) as usize % SHARDS];
        // No code that can panic runs under this lock: poisoning is moot.
        shard.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The frame of task `id` if it is in its first slot (`None`: it may be
    /// elsewhere).
    ///
    /// # Safety
    ///
    /// Only from a hook of task `id` (before-poll, after-poll or terminate),
    /// and the frame is not used after that hook returns: only the task's own
    /// hooks touch its frame, and tokio runs them one at a time (see `impl
    /// Sync for Registry`).
    #[expect(
        clippy::mut_from_ref,
        reason = "the frame belongs to the calling hook's task alone (see Safety)"
    )]
    #[inline(always)]
    unsafe fn in_first(&self, id: Id) -> Option<&mut TaskFrame> {
        let n = raw(id)?;
        let slot = self.first(n);
        if slot.id.load(Ordering::Acquire) != n {
            return None;
        }
        // SAFETY: the slot holds `id`, so its frame is initialized; the
        // caller is a hook of `id`.
        Some(unsafe { (*slot.frame.get()).assume_init_mut() })
    }

    /// The frame of task `id`, wherever it is.
    ///
    /// # Safety
    ///
    /// As for `in_first`.
    #[expect(
        clippy::mut_from_ref,
        reason = "the frame belongs to the calling hook's task alone (see Safety)"
    )]
    unsafe fn find(&self, id: Id) -> Option<&mut TaskFrame> {
        // SAFETY: the caller's contract.
        if let Some(found) = unsafe { self.in_first(id) } {
            return Some(found);
        }
        if let Some(n) = raw(id) {
            let slot = self.second(n);
            if slot.id.load(Ordering::Acquire) == n {
                // SAFETY: as in `in_first`.
                return Some(unsafe { (*slot.frame.get()).assume_init_mut() });
            }
        }
        if self.overflowed.load(Ordering::Acquire) == 0 {
            return None;
        }
        let frame: *mut TaskFrame = &mut **self.shard(id).get_mut(&id)?;
        // SAFETY: boxed, the frame stays in place when the map changes, and
        // only task `id` removes it (in its terminate hook, which cannot run
        // during the caller's hook); the caller is a hook of `id`. The lock
        // is released before the frame is used (its hooks may run).
        Some(unsafe { &mut *frame })
    }

    /// The spawn hook: on the spawning thread, before the task can be polled.
    pub(crate) fn spawned(&self, id: Id) {
        let frame = TaskFrame::new(Snapshot::capture());
        if self.overflowed.load(Ordering::Acquire) != 0 {
            // A stale frame under a reused id (its task never terminated).
            drop(self.remove_overflow(id));
        }
        if let Some(n) = raw(id) {
            for slot in [self.first(n), self.second(n)] {
                let held_before =
                    match slot
                        .id
                        .compare_exchange(0, n, Ordering::Acquire, Ordering::Acquire)
                    {
                        Ok(free) => free,
                        Err(held) => held,
                    };
                // Free, or a stale frame under a reused id: replaced (and
                // ended).
                let claimed = held_before == 0 || held_before == n;
                if claimed {
                    let cell = slot.frame.get();
                    // SAFETY: the slot is claimed for `id`, whose task cannot
                    // run yet: nothing else touches the frame. A slot that
                    // already held `id` holds its (stale) frame: initialized.
                    let stale = unsafe {
                        let stale = (held_before == n).then(|| (*cell).assume_init_read());
                        (*cell).write(frame);
                        stale
                    };
                    drop(stale);
                    return;
                }
            }
        }
        let stale = self.shard(id).insert(id, Box::new(frame));
        if stale.is_none() {
            self.overflowed.fetch_add(1, Ordering::AcqRel);
        }
        drop(stale);
    }

    /// The before-poll hook.
    #[inline(always)]
    pub(crate) fn before_poll(&self, id: Id) {
        let enter = |frame: &mut TaskFrame| {
            // SAFETY: tokio calls the after-poll hook on this thread when the
            // poll returns, with no other poll of this task meanwhile; polls
            // of other tasks nested in this one (a runtime driven inside
            // `block_in_place`) run both their hooks within it. Or the task
            // terminates first, also on this thread, and `end` leaves the
            // frame.
            unsafe { frame.enter_paired() }
        };
        // SAFETY: this is task `id`'s before-poll hook.
        unsafe { self.on_frame(id, enter) }
    }

    /// The after-poll hook. When the task completed in this poll, its frame
    /// was ended and removed by the terminate hook: nothing is found.
    #[inline(always)]
    pub(crate) fn after_poll(&self, id: Id) {
        let leave = |frame: &mut TaskFrame| {
            // SAFETY: `before_poll` entered the frame with `enter_paired` on
            // this thread, and the poll left every frame it entered (frames
            // are scoped to the code that enters them, unwinding included).
            // Had the task terminated in the poll, `terminated` would have
            // ended its frame and taken it out of the table: not found here.
            unsafe { frame.leave_paired() }
        };
        // SAFETY: this is task `id`'s after-poll hook.
        unsafe { self.on_frame(id, leave) }
    }

    /// Calls `f` with task `id`'s frame, if it has one, and reports its
    /// panic. The frame in its first slot is found inline; anything else is
    /// out of line.
    ///
    /// # Safety
    ///
    /// As for `in_first`: from a hook of task `id`.
    #[inline(always)]
    unsafe fn on_frame(&self, id: Id, f: impl FnOnce(&mut TaskFrame) -> Result<(), CaughtPanic>) {
        // SAFETY: the caller's contract.
        match unsafe { self.in_first(id) } {
            Some(frame) => report(f(frame)),
            // SAFETY: the caller's contract.
            None => unsafe { self.on_frame_elsewhere(id, f) },
        }
    }

    /// `on_frame` for a frame not in its first slot.
    ///
    /// # Safety
    ///
    /// As for `in_first`.
    #[cold]
    #[inline(never)]
    unsafe fn on_frame_elsewhere(
        &self,
        id: Id,
        f: impl FnOnce(&mut TaskFrame) -> Result<(), CaughtPanic>,
    ) {
        // SAFETY: the caller's contract.
        if let Some(frame) = unsafe { self.find(id) } {
            report(f(frame));
        }
    }

    /// The terminate hook: inside the last poll on completion (the frame is
    /// then entered on this thread), or on its own for a task cancelled
    /// without a poll. Ids of tasks never spawned here (`spawn_blocking`) are
    /// not found and ignored.
    pub(crate) fn terminated(&self, id: Id) {
        let mut taken = None;
        if let Some(n) = raw(id) {
            for slot in [self.first(n), self.second(n)] {
                if slot.id.load(Ordering::Acquire) == n {
                    // SAFETY: the slot holds `id`, and this is task `id`'s
                    // terminate hook (see `impl Sync for Registry`).
                    // The frame is initialized (the slot holds `id`), and
                    // uninitialized from here on: the slot is freed next.
                    taken = Some(unsafe { (*slot.frame.get()).assume_init_read() });
                    slot.id.store(0, Ordering::Release);
                    break;
                }
            }
        }
        if taken.is_none() && self.overflowed.load(Ordering::Acquire) != 0 {
            taken = self.remove_overflow(id).map(|b| *b);
        }
        // Ended (torn down with its hooks entered) outside the table: the
        // frame's own storage is boxed, so moving the `TaskFrame` out is fine
        // even while it is current.
        if let Some(mut frame) = taken {
            report(frame.end());
        }
    }

    fn remove_overflow(&self, id: Id) -> Option<Box<TaskFrame>> {
        let removed = self.shard(id).remove(&id);
        if removed.is_some() {
            self.overflowed.fetch_sub(1, Ordering::AcqRel);
        }
        removed
    }

    /// The number of frames held: tasks spawned and not yet terminated.
    pub(crate) fn len(&self) -> usize {
        let in_slots = self
            .ids
            .iter()
            .filter(|id| id.load(Ordering::Acquire) != 0)
            .count();
        in_slots + self.overflowed.load(Ordering::Acquire)
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

impl Drop for Registry {
    /// Frames of tasks never terminated (a runtime leaked or torn down
    /// without running its tasks' terminate hooks) are dropped, which ends
    /// them. No hook runs any more: the registry is only dropped with them.
    fn drop(&mut self) {
        for (id, frame) in self.ids.iter_mut().zip(self.frames.iter_mut()) {
            if *id.get_mut() != 0 {
                *id.get_mut() = 0;
                // SAFETY: the slot holds an id, so its frame is initialized;
                // it is marked free first, so it is dropped once.
                unsafe { frame.get_mut().assume_init_drop() };
            }
        }
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("frames", &self.len())
            .finish()
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
