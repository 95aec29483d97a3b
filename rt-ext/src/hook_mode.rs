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
//! between the two only the task's own hooks touch it. tokio may still run a
//! task's after-poll hook while its next poll starts on another worker (or
//! while it is cancelled there), so each slot also has an owner word that
//! makes those hooks take turns (see [`Owner`]). A task whose two slots are
//! both taken by live tasks (more live tasks than the table comfortably
//! holds) goes to an overflow map of [`SHARDS`] locked shards, never one
//! global lock; the poll path looks there
//! only while the overflow is not empty. Panics of hooks are caught (they run
//! inside tokio's worker loop, which must not unwind); the panic hook has
//! already reported them, and the hook that panicked is dropped.
//!
//! The poll hooks are written so that everything but the common case (the
//! frame in its first slot, no hooks of its own) is a call out of line: what
//! is left inline is a table load, a compare, the owner word and the pointer
//! swap.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use spawn_hooks::{CaughtPanic, Snapshot, TaskFrame};
use tokio::task::Id;

/// Slots of the table: a power of two. Each is three words (id, owner,
/// frame), so the table takes 96 KiB per runtime.
const SLOTS: usize = 4096;

/// Shards of the overflow map: a power of two.
pub(crate) const SHARDS: usize = 16;

type Overflow = HashMap<Id, Box<Parked>, BuildHasherDefault<IdHasher>>;

/// Task id → frame, for one runtime.
pub(crate) struct Registry {
    /// Slot `i`: free (0), or the id of the live task whose frame is in
    /// `frames[i]`. Arrays in place (the registry itself is in an `Arc`)
    /// rather than one array of triples behind a pointer: a hook reaches each
    /// with one indexed load.
    ids: [AtomicU64; SLOTS],
    /// Slot `i`: who is using the frame (see [`Owner`]).
    owners: [Owner; SLOTS],
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

/// Whether a thread uses a task's frame (1) or not (0): from its before-poll
/// hook to the end of its after-poll hook.
///
/// tokio calls the after-poll hook after the task's poll has returned and
/// the task has been made idle, so a task woken during its poll can be
/// polled again on another worker (its before-poll hook running) while the
/// first worker is still in the after-poll hook, or be cancelled there (its
/// terminate hook running). The frame is not `Sync`, and those hooks must not
/// overlap: the before-poll hook waits until the word is 0 and claims it,
/// the after-poll hook releases it as the last thing it does, and the
/// terminate hook waits for it unless it runs inside the task's own poll on
/// this thread (the frame is then current here).
type Owner = AtomicUsize;

/// A task's frame where the overflow map keeps it.
struct Parked {
    owner: Owner,
    frame: TaskFrame,
}

/// Where a task's frame is: its owner word and the frame. Only pointers:
/// no reference to the frame is made before the hook owns it.
#[derive(Clone, Copy)]
struct Found<'a> {
    owner: &'a Owner,
    frame: *mut TaskFrame,
}

// SAFETY: a slot's frame is only used by the hooks of the task whose id the
// slot holds (or by the spawner that is claiming it, before the task can run),
// and by one hook at a time: the spawn hook runs before the task is scheduled;
// the before-poll and terminate hooks wait for the slot's `Owner` to be
// released (Acquire) by the after-poll hook of the previous poll (Release);
// the after-poll hook of a poll runs after that poll's before-poll hook, on
// the same thread. A slot is claimed by a compare-and-swap of `id` from 0
// (Acquire: it sees the frame its previous task took out) and freed by storing
// 0 (Release) after the frame is taken out. Task ids are unique among live
// tasks (`raw` keeps them exact). `TaskFrame` is `Send`.
unsafe impl Sync for Registry {}

/// One shard of the overflow map, on its own cache lines.
#[repr(align(128))]
struct Shard(Mutex<Overflow>);

/// Waits until `owner` is released, spinning briefly first: the holder is
/// finishing an after-poll hook (and may have been preempted).
#[cold]
#[inline(never)]
fn wait_released(owner: &Owner) {
    let mut spins = 0u32;
    while owner.load(Ordering::Acquire) != 0 {
        if spins < 100 {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl Registry {
    pub(crate) fn new() -> Registry {
        Registry {
            ids: std::array::from_fn(|_| AtomicU64::new(0)),
            owners: std::array::from_fn(|_| AtomicUsize::new(0)),
            frames: std::array::from_fn(|_| UnsafeCell::new(MaybeUninit::uninit())),
            overflow: (0..SHARDS).map(|_| Shard(Mutex::default())).collect(),
            overflowed: AtomicUsize::new(0),
        }
    }

    /// The index of the first slot task `n` may have: sequential ids fill
    /// the table in turn.
    #[inline(always)]
    fn first(n: u64) -> usize {
        (n as usize) & (SLOTS - 1)
    }

    /// The index of the second slot task `n` may have, scattered so that a
    /// long-lived task does not keep the same two slots taken for every id
    /// that comes round to its first one.
    fn second(n: u64) -> usize {
        let scattered = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros());
        (scattered as usize) & (SLOTS - 1)
    }

    /// Slot `i`, whose id has been seen to be its task's.
    #[inline(always)]
    fn found(&self, i: usize) -> Found<'_> {
        Found {
            owner: &self.owners[i],
            // The slot holds an id, so its frame is initialized.
            frame: self.frames[i].get().cast::<TaskFrame>(),
        }
    }

    fn shard(&self, id: Id) -> MutexGuard<'_, Overflow> {
        let mut h = IdHasher::default();
        id.hash(&mut h);
        let shard = &self.overflow[(h.finish() >> 32) as usize % SHARDS];
        // No code that can panic runs under this lock: poisoning is moot.
        shard.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The frame of task `id` if it is in its first slot (`None`: it may be
    /// elsewhere). Call only from a hook of task `id`: a slot holds a given
    /// id from that task's spawn to its termination.
    #[inline(always)]
    fn in_first(&self, id: Id) -> Option<Found<'_>> {
        let n = raw(id)?;
        let i = Registry::first(n);
        (self.ids[i].load(Ordering::Acquire) == n).then(|| self.found(i))
    }

    /// The frame of task `id`, wherever it is; with the slot index when it
    /// is in the table. As for `in_first`: only from a hook of task `id`.
    fn find(&self, id: Id) -> Option<(Found<'_>, Option<usize>)> {
        if let Some(n) = raw(id) {
            for i in [Registry::first(n), Registry::second(n)] {
                if self.ids[i].load(Ordering::Acquire) == n {
                    return Some((self.found(i), Some(i)));
                }
            }
        }
        if self.overflowed.load(Ordering::Acquire) == 0 {
            return None;
        }
        let parked: *const Parked = &**self.shard(id).get(&id)?;
        // SAFETY: boxed, the entry stays in place when the map changes, and
        // only task `id`'s terminate hook removes it, after waiting for its
        // owner word to be free, so not while the caller (a hook of `id`)
        // uses it. The lock is released before the frame is used.
        let parked = unsafe { &*parked };
        Some((
            Found {
                owner: &parked.owner,
                frame: ptr::addr_of!(parked.frame).cast_mut(),
            },
            None,
        ))
    }

    /// The spawn hook: on the spawning thread, before the task can be polled.
    pub(crate) fn spawned(&self, id: Id) {
        let frame = TaskFrame::new(Snapshot::capture());
        if self.overflowed.load(Ordering::Acquire) != 0 {
            // A stale frame under a reused id (its task never terminated).
            drop(self.remove_overflow(id));
        }
        if let Some(n) = raw(id) {
            for i in [Registry::first(n), Registry::second(n)] {
                let held_before = match self.ids[i].compare_exchange(
                    0,
                    n,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(free) => free,
                    Err(held) => held,
                };
                // Free, or a stale frame under a reused id: replaced (and
                // ended).
                if held_before == 0 || held_before == n {
                    let cell = self.frames[i].get();
                    // SAFETY: the slot is claimed for `id`, whose task cannot
                    // run yet: nothing else touches the frame. A slot that
                    // already held `id` holds its (stale) frame: initialized.
                    let stale = unsafe {
                        let stale = (held_before == n).then(|| (*cell).assume_init_read());
                        (*cell).write(frame);
                        stale
                    };
                    self.owners[i].store(0, Ordering::Relaxed);
                    drop(stale);
                    return;
                }
            }
        }
        let parked = Box::new(Parked {
            owner: AtomicUsize::new(0),
            frame,
        });
        let stale = self.shard(id).insert(id, parked);
        if stale.is_none() {
            self.overflowed.fetch_add(1, Ordering::AcqRel);
        }
        drop(stale);
    }

    /// The before-poll hook: waits for the frame to be free, claims it and
    /// enters it.
    #[inline(always)]
    pub(crate) fn before_poll(&self, id: Id) {
        match self.in_first(id) {
            Some(found) => Registry::enter(found),
            None => self.before_poll_elsewhere(id),
        }
    }

    #[cold]
    #[inline(never)]
    fn before_poll_elsewhere(&self, id: Id) {
        if let Some((found, _)) = self.find(id) {
            Registry::enter(found);
        }
    }

    #[inline(always)]
    fn enter(found: Found<'_>) {
        if found.owner.load(Ordering::Acquire) != 0 {
            wait_released(found.owner);
        }
        found.owner.store(1, Ordering::Relaxed);
        // SAFETY: this hook owns the frame now (see `Owner`), and it is
        // initialized. tokio calls the after-poll hook on this thread when
        // the poll returns, with no other poll of this task meanwhile; polls
        // of other tasks nested in this one (a runtime driven inside
        // `block_in_place`) run both their hooks within it. Or the task
        // terminates first, also on this thread, and `end` leaves the frame.
        report(unsafe { (*found.frame).enter_paired() });
    }

    /// The after-poll hook: leaves the frame and releases it. When the task
    /// completed in this poll, its frame was ended and removed by the
    /// terminate hook: nothing is found.
    #[inline(always)]
    pub(crate) fn after_poll(&self, id: Id) {
        match self.in_first(id) {
            Some(found) => Registry::leave(found),
            None => self.after_poll_elsewhere(id),
        }
    }

    #[cold]
    #[inline(never)]
    fn after_poll_elsewhere(&self, id: Id) {
        if let Some((found, _)) = self.find(id) {
            Registry::leave(found);
        }
    }

    #[inline(always)]
    fn leave(found: Found<'_>) {
        // SAFETY: this thread's before-poll hook claimed the frame (nobody
        // else uses it until the release below) and entered it with
        // `enter_paired`; the poll left every frame it entered (frames are
        // scoped to the code that enters them, unwinding included). Had the
        // task terminated in the poll, `terminated` would have ended its
        // frame and taken it out of the table: not found here.
        report(unsafe { (*found.frame).leave_paired() });
        found.owner.store(0, Ordering::Release);
    }

    /// The terminate hook: inside the last poll on completion (the frame is
    /// then entered on this thread, which owns it), or on its own for a task
    /// cancelled without a poll (then after waiting for an after-poll hook
    /// that may still run on another worker). Ids of tasks never spawned here
    /// (`spawn_blocking`) are not found and ignored.
    pub(crate) fn terminated(&self, id: Id) {
        let Some((found, slot)) = self.find(id) else {
            return;
        };
        // SAFETY: the frame is alive (the task has not been ended), and
        // only its address is read.
        if !unsafe { TaskFrame::is_current_at(found.frame) } {
            wait_released(found.owner);
        }
        let taken = match slot {
            Some(i) => {
                // SAFETY: the frame is initialized (the slot holds `id`) and
                // this hook owns it; it is moved out and the slot freed, so
                // it is uninitialized from here on.
                let frame = unsafe { found.frame.read() };
                self.owners[i].store(0, Ordering::Relaxed);
                self.ids[i].store(0, Ordering::Release);
                frame
            }
            None => match self.remove_overflow(id) {
                Some(parked) => parked.frame,
                None => return,
            },
        };
        // Ended (torn down with its hooks entered) outside the table: the
        // frame's own storage is boxed, so moving the `TaskFrame` out is fine
        // even while it is current.
        let mut frame = taken;
        report(frame.end());
    }

    fn remove_overflow(&self, id: Id) -> Option<Box<Parked>> {
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
