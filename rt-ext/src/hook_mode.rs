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
//! while it is cancelled there): the after-poll hook of a frame without hooks
//! touches only thread-locals, and a frame with hooks is claimed until its
//! after-poll hook is done with it, which the next poll and a cancellation
//! wait for (`TaskFrame::enter_paired`). A task whose two slots are both
//! taken by live tasks (more live tasks than the table comfortably holds)
//! goes to an overflow map of [`SHARDS`] locked shards, never one global
//! lock; the poll path looks there only while the overflow is not empty. Panics of hooks are caught (they run
//! inside tokio's worker loop, which must not unwind); the panic hook has
//! already reported them, and the hook that panicked is dropped.
//!
//! The poll hooks are written so that everything but the common case (the
//! frame in its first slot, no hooks of its own) is a call out of line: what
//! is left inline is a table load, a compare, the claim check and the pointer
//! swap before the poll, and thread-locals only after it.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use spawn_hooks::{CaughtPanic, TaskFrame};
use tokio::task::Id;

/// Slots of the table: a power of two. Each is two words (id, frame), so
/// the table takes 64 KiB per runtime.
const SLOTS: usize = 4096;

/// Shards of the overflow map: a power of two.
pub(crate) const SHARDS: usize = 16;

type Overflow = HashMap<Id, Box<TaskFrame>, BuildHasherDefault<IdHasher>>;

/// Task id → frame, for one runtime.
pub(crate) struct Registry {
    /// Slot `i`: free (0), or the id of the live task whose frame is in
    /// `frames[i]`. Arrays in place (the registry itself is in an `Arc`)
    /// rather than one array of pairs behind a pointer: a hook reaches each
    /// with one indexed load.
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

// SAFETY: a slot's frame is only used by the hooks of the task whose id the
// slot holds (or by the spawner that is claiming it, before the task can run),
// one at a time: the spawn hook runs before the task is scheduled; a poll's
// before-poll and after-poll hooks run on the polling thread, and the next
// poll or the terminate hook of a cancelled task may start on another thread
// before that after-poll hook has returned, but they first wait for the
// frame's claim (`TaskFrame::wait_unclaimed`), and an unclaimed frame is not
// touched by the after-poll hook (`TaskFrame::leave_paired`). A slot is
// claimed by a compare-and-swap of `id` from 0 (Acquire: it sees the frame its
// previous task took out) and freed by storing 0 (Release) after the frame is
// taken out. Task ids are unique among live tasks (`raw` keeps them exact).
// `TaskFrame` is `Send`.
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

    /// The frame in slot `i` (initialized while the slot holds an id). Only
    /// a pointer: no reference is made before the hook may use the frame.
    #[inline(always)]
    fn frame(&self, i: usize) -> *mut TaskFrame {
        self.frames[i].get().cast::<TaskFrame>()
    }

    fn shard(&self, id: Id) -> MutexGuard<'_, Overflow> {
        let shard = &self.overflow[(hash(id) >> 32) as usize % SHARDS];
        // No code that can panic runs under this lock: poisoning is moot.
        shard.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Task `id`'s frame, wherever it is, and its slot when in the table.
    /// Only from a hook of task `id`: a slot holds a given id from that
    /// task's spawn to its termination.
    fn find(&self, id: Id) -> Option<(*mut TaskFrame, Option<usize>)> {
        if let Some(n) = raw(id) {
            for i in [Registry::first(n), Registry::second(n)] {
                if self.ids[i].load(Ordering::Acquire) == n {
                    return Some((self.frame(i), Some(i)));
                }
            }
        }
        if self.overflowed.load(Ordering::Acquire) == 0 {
            return None;
        }
        // Boxed, the frame stays in place when the map changes, and only
        // task `id`'s terminate hook removes it. The lock is released before
        // the frame is used.
        let frame: *mut TaskFrame = &mut **self.shard(id).get_mut(&id)?;
        Some((frame, None))
    }

    /// The spawn hook: on the spawning thread, before the task can be polled.
    pub(crate) fn spawned(&self, id: Id) {
        if take_already_framed() {
            // Spawned through rt-ext: the task's future is framed already.
            return;
        }
        // The task's frame, from the spawner's context, with what it
        // inherits registered in it, suspended until the first poll.
        let frame = crate::inherit::capture().task_frame();
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

    /// The before-poll hook: waits until no thread is still leaving the
    /// frame after the previous poll, then enters it. With `CLAIM`, the frame
    /// is claimed until the after-poll hook is done with it, as a user's
    /// after-poll hook, which reads the context after the poll has returned,
    /// needs.
    #[inline(always)]
    pub(crate) fn before_poll<const CLAIM: bool>(&self, id: Id) {
        if let Some(n) = raw(id) {
            let i = Registry::first(n);
            if self.ids[i].load(Ordering::Acquire) == n {
                // SAFETY: initialized (the slot holds `id`), and this is
                // task `id`'s before-poll hook.
                unsafe { Registry::enter::<CLAIM>(self.frame(i), n) };
                return;
            }
        }
        self.before_poll_elsewhere::<CLAIM>(id);
    }

    #[cold]
    #[inline(never)]
    fn before_poll_elsewhere<const CLAIM: bool>(&self, id: Id) {
        if let Some((frame, _)) = self.find(id) {
            // SAFETY: found for task `id`, in its before-poll hook.
            unsafe { Registry::enter::<CLAIM>(frame, tag(id)) };
        }
    }

    /// # Safety
    ///
    /// `frame` is task `tag`'s live frame, and this is its before-poll hook.
    #[inline(always)]
    unsafe fn enter<const CLAIM: bool>(frame: *mut TaskFrame, tag: u64) {
        // SAFETY: alive, and no thread uses the frame but one that may still
        // be leaving it after the previous poll (`enter_paired` waits for
        // it); tokio does not run this task's poll or termination elsewhere
        // meanwhile. tokio calls the after-poll hook on this thread when the
        // poll returns; polls of other tasks nested in this one (a runtime
        // driven inside `block_in_place`) run both their hooks within it. Or
        // the task terminates first, also on this thread, and `end` leaves
        // the frame. Task ids tell entries apart. Between the poll and the
        // after-poll hook nothing of ours reads the context, and a user's
        // after-poll hook, which does, runs only on claimed frames.
        report(unsafe { TaskFrame::enter_paired(frame, tag) });
        if CLAIM {
            TaskFrame::claim_paired();
        }
    }

    /// The after-poll hook: leaves this thread's entry of the task's frame,
    /// found by the task id in a thread-local. When the task completed in
    /// this poll, its frame was ended by the terminate hook: nothing is left.
    #[inline(always)]
    pub(crate) fn after_poll(&self, id: Id) {
        // SAFETY: the entry with this tag, if any, was made by this task's
        // before-poll hook on this thread, and the poll left every entry it
        // made (frames are scoped to the code that enters them, unwinding
        // included; nested task polls run both their hooks within it).
        report(unsafe { TaskFrame::leave_paired(tag(id)) });
    }

    /// The terminate hook: inside the last poll on completion (the frame is
    /// then entered on this thread), or on its own for a task cancelled
    /// without a poll (then after waiting for an after-poll hook that may
    /// still be leaving the frame on another worker). Ids of tasks never
    /// spawned here (`spawn_blocking`) are not found and ignored.
    pub(crate) fn terminated(&self, id: Id) {
        let Some((frame, slot)) = self.find(id) else {
            return;
        };
        // SAFETY: the frame is alive (the task has not been ended); only
        // its address and its claim word are read.
        unsafe {
            if !TaskFrame::is_current_at(frame) {
                TaskFrame::wait_unclaimed(frame);
            }
        }
        let taken = match slot {
            Some(i) => {
                // SAFETY: the frame is initialized (the slot holds `id`) and
                // no other thread uses it; it is moved out and the slot
                // freed, so it is uninitialized from here on.
                let frame = unsafe { frame.read() };
                self.ids[i].store(0, Ordering::Release);
                frame
            }
            None => match self.remove_overflow(id) {
                Some(frame) => *frame,
                None => return,
            },
        };
        // Ended (torn down with its hooks entered) outside the table: the
        // frame's own storage is boxed, so moving the `TaskFrame` out is fine
        // even while it is current.
        let mut frame = taken;
        report(frame.end());
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

/// The tag of task `id`'s paired entries, never 0: its integer, or (if
/// tokio ever hashed ids differently) its hash.
#[inline(always)]
fn tag(id: Id) -> u64 {
    raw(id).unwrap_or_else(|| hash(id) | 1)
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
