//! `TaskTable`: the frames of an executor's tasks, by task id, for an
//! executor whose poll callbacks get only the id.
//!
//! tokio's task hooks are such callbacks: one at spawn, before and after each
//! poll, and at termination, each told the task's id. tokio may also run the
//! after-poll callback of one poll while the next poll of the same task (or
//! its cancellation) starts on another worker. The table makes that safe: a
//! slot is *owned* by the thread that entered its frame, from
//! [`enter`](TaskTable::enter) to the end of [`leave`](TaskTable::leave) (or
//! by the thread removing it), and a thread that wants the slot while
//! another owns it waits, spinning briefly, then yielding. Only the owner
//! touches the frame, so no call can race another, whatever the executor
//! does: misuse gives wrong contexts (or a task that waits for a frame never
//! left), never undefined behaviour.
//!
//! A task's slot is found from its id with one or two atomic loads: the table
//! has [`SLOTS`] slots, tried at two places per id (ids handed out in
//! sequence fill the table in turn), and tasks whose two places are both
//! taken by live tasks go to an overflow map in locked shards, which the
//! lookups visit only while it is not empty.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU64;
use std::ptr;

use crate::frame;
use crate::sync::{
    backoff, lock, Arc, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering,
};
use crate::task::{CaughtPanic, Ended, Inner, TaskFrame};

/// Slots of the table: a power of two (each three words: 96 KiB).
#[cfg(not(spawn_hooks_loom))]
const SLOTS: usize = 4096;
/// Under loom, a few: enough for two places per id to collide.
#[cfg(spawn_hooks_loom)]
const SLOTS: usize = 4;

/// Shards of the overflow map: a power of two.
#[cfg(not(spawn_hooks_loom))]
const SHARDS: usize = 16;
#[cfg(spawn_hooks_loom)]
const SHARDS: usize = 2;

/// One task's place: the table's own, or one in the overflow map.
struct Slot {
    /// 0 (free) or the id of the task whose frame is in `frame`. Changed
    /// only by the slot's owner.
    id: AtomicU64,
    /// Whether a thread has the slot to itself: taken by a compare-and-swap
    /// from false (Acquire), given back by storing false (Release), so that
    /// whatever the owner did to the frame happens before the next owner
    /// looks at it. The owner is the thread whose current frame the slot's
    /// frame is, from its entry to its leave (see `is_current_here`), or a
    /// thread inserting or removing the task.
    owner: AtomicBool,
    /// The task's frame (a `Box<Inner>` made into a pointer) while `id` is
    /// not 0, else null. Changed only by the slot's owner.
    frame: AtomicPtr<Inner>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            id: AtomicU64::new(0),
            owner: AtomicBool::new(false),
            frame: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Takes the slot for this thread, waiting while another thread has it.
    /// Returns false if this thread has it already: its frame is this
    /// thread's current frame. (A thread that has the slot with its frame
    /// not current, entered and then left out of order, would wait for
    /// itself: a misuse that hangs, never one that races.)
    #[inline(always)]
    fn own(&self) -> bool {
        match self
            .owner
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(_) => self.own_after_wait(),
        }
    }

    #[cold]
    #[inline(never)]
    fn own_after_wait(&self) -> bool {
        if self.is_current_here() {
            return false;
        }
        // Mutant: the slot is taken without waiting for its owner.
        if cfg!(spawn_hooks_mutant = "no_wait") {
            self.owner.store(true, Ordering::Relaxed);
            return true;
        }
        let mut spins = 0;
        while self
            .owner
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            backoff(&mut spins);
        }
        true
    }

    #[inline(always)]
    fn release(&self) {
        self.owner.store(false, Ordering::Release);
    }

    /// Whether the slot's frame is the calling thread's current frame (then
    /// this thread has the slot: only its owner installs it). Compares
    /// addresses only: the frame is not read, and may be gone if it is not.
    #[inline(always)]
    fn is_current_here(&self) -> bool {
        let frame = self.frame.load(Ordering::Relaxed);
        !frame.is_null() && frame::is_current_ptr(Inner::frame_ptr(frame))
    }

    /// The frame, while this thread owns the slot and it holds a task.
    #[inline]
    fn frame(&self) -> &Inner {
        let frame = self.frame.load(Ordering::Relaxed);
        debug_assert!(!frame.is_null());
        // SAFETY: the caller owns the slot, which holds a task, so `frame`
        // is the pointer of a live `Box<Inner>`: only an owner of the slot
        // takes it out (and frees it only after giving the slot back with
        // `frame` null), and no other thread uses the frame meanwhile.
        // Checked under loom (a model where the next poll starts while the
        // last one is being left) and valgrind's memcheck.
        unsafe { &*frame }
    }
}

/// A task's slot, found by id.
enum Found<'a> {
    Table(&'a Slot),
    Overflow(Arc<Slot>),
}

impl std::ops::Deref for Found<'_> {
    type Target = Slot;
    #[inline]
    fn deref(&self) -> &Slot {
        match self {
            Found::Table(slot) => slot,
            Found::Overflow(slot) => slot,
        }
    }
}

type Shard = Mutex<HashMap<u64, Arc<Slot>>>;

/// The frames of an executor's tasks, by task id: enter one before a poll,
/// leave it after, remove it when the task terminates; safe to call from
/// the executor's callbacks on any thread, even when the after-poll
/// callback of one poll runs while the next poll of the task starts
/// elsewhere (the next poll waits for it).
///
/// # Examples
///
/// ```
/// # use spawn_hooks as rt_ext;
/// use std::num::NonZeroU64;
/// use rt_ext::{Snapshot, TaskFrame, TaskTable, Variable};
///
/// static V: Variable<u32> = Variable::new("v");
/// let table = TaskTable::new();
/// let id = NonZeroU64::new(7).unwrap();
///
/// // The spawn callback, on the spawning thread:
/// V.sync_scope(1, || table.insert(id, TaskFrame::new(Snapshot::capture())));
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         // Before and after a poll, on whatever worker polls the task:
///         table.enter(id).unwrap();
///         assert_eq!(V.get(), Some(1));
///         table.leave(id).unwrap();
///         assert_eq!(V.get(), None);
///     });
/// });
/// // When the task terminates:
/// table.remove(id).unwrap();
/// assert_eq!(table.len(), 0);
/// ```
pub struct TaskTable {
    /// In place (a table lives in an `Arc` or a `Box`): a callback reaches a
    /// slot with one indexed load, no bounds check.
    slots: [Slot; SLOTS],
    overflow: Box<[Shard]>,
    /// The number of tasks in `overflow`.
    overflowed: AtomicUsize,
}

impl TaskTable {
    /// An empty table (about 96 KiB).
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// assert_eq!(rt_ext::TaskTable::new().len(), 0);
    /// ```
    pub fn new() -> TaskTable {
        TaskTable {
            slots: std::array::from_fn(|_| Slot::new()),
            overflow: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            overflowed: AtomicUsize::new(0),
        }
    }

    /// The first place of task `n`: sequential ids fill the table in turn.
    #[inline(always)]
    fn first(n: u64) -> usize {
        (n as usize) & (SLOTS - 1)
    }

    /// The second place of task `n`, scattered, so that a long-lived task
    /// does not keep the same two places taken for every id that comes round
    /// to its first one.
    #[inline]
    fn second(n: u64) -> usize {
        let scattered = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros());
        (scattered as usize) & (SLOTS - 1)
    }

    fn shard(&self, n: u64) -> &Shard {
        &self.overflow[(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % SHARDS]
    }

    /// Task `n`'s slot, if it has one. The id is checked again by whoever
    /// owns the slot before it touches the frame.
    #[inline(always)]
    fn find(&self, n: u64) -> Option<Found<'_>> {
        let slot = &self.slots[TaskTable::first(n)];
        if slot.id.load(Ordering::Acquire) == n {
            return Some(Found::Table(slot));
        }
        self.find_elsewhere(n)
    }

    #[cold]
    #[inline(never)]
    fn find_elsewhere(&self, n: u64) -> Option<Found<'_>> {
        let slot = &self.slots[TaskTable::second(n)];
        if slot.id.load(Ordering::Acquire) == n {
            return Some(Found::Table(slot));
        }
        if self.overflowed.load(Ordering::Acquire) == 0 {
            return None;
        }
        lock(self.shard(n)).get(&n).cloned().map(Found::Overflow)
    }

    /// Adds task `id`'s frame (at spawn, before the task can run). A frame
    /// already held for `id` (a task that never terminated, whose id came
    /// round again) is ended and replaced.
    ///
    /// # Examples
    ///
    /// See [`TaskTable`].
    pub fn insert(&self, id: NonZeroU64, frame: TaskFrame) {
        let n = id.get();
        // A stale frame under the same id goes first.
        let _ = self.remove(id);
        let inner = frame.into_raw();
        for i in [TaskTable::first(n), TaskTable::second(n)] {
            let slot = &self.slots[i];
            if slot.id.load(Ordering::Acquire) != 0 {
                continue;
            }
            let owned = slot.own();
            if slot.id.load(Ordering::Relaxed) == 0 {
                slot.frame.store(inner, Ordering::Relaxed);
                slot.id.store(n, Ordering::Release);
                if owned {
                    slot.release();
                }
                return;
            }
            if owned {
                slot.release();
            }
        }
        let slot = Slot::new();
        slot.frame.store(inner, Ordering::Relaxed);
        slot.id.store(n, Ordering::Relaxed);
        let stale = lock(self.shard(n)).insert(n, Arc::new(slot));
        match stale {
            None => {
                self.overflowed.fetch_add(1, Ordering::AcqRel);
            }
            // Removed above: only a racing insert of the same id gets here.
            Some(stale) => drop(TaskTable::take(&stale)),
        }
    }

    /// Before a poll of task `id`: waits while another thread is still
    /// leaving its frame, then enters it on this thread (see
    /// [`TaskFrame::enter`]). The frame stays this thread's until
    /// [`leave`](TaskTable::leave) or [`remove`](TaskTable::remove) on this
    /// thread. Does nothing for an id the table does not hold.
    ///
    /// # Errors
    ///
    /// The panic of a hook, caught; the frame is entered all the same.
    ///
    /// # Examples
    ///
    /// See [`TaskTable`].
    #[inline(always)]
    pub fn enter(&self, id: NonZeroU64) -> Result<(), CaughtPanic> {
        let n = id.get();
        let slot = &self.slots[TaskTable::first(n)];
        if slot.id.load(Ordering::Acquire) == n {
            return TaskTable::enter_slot(slot, n);
        }
        self.enter_elsewhere(n)
    }

    #[cold]
    #[inline(never)]
    fn enter_elsewhere(&self, n: u64) -> Result<(), CaughtPanic> {
        match self.find_elsewhere(n) {
            Some(slot) => TaskTable::enter_slot(&slot, n),
            None => Ok(()),
        }
    }

    #[inline(always)]
    fn enter_slot(slot: &Slot, n: u64) -> Result<(), CaughtPanic> {
        let owned = slot.own();
        if !owned || slot.id.load(Ordering::Relaxed) != n {
            return TaskTable::not_entered(slot, owned);
        }
        slot.frame().enter()
    }

    /// `enter` of a slot this thread had already (entered here: a misuse,
    /// nothing to do), or that no longer holds the task (removed while this
    /// thread waited: a misuse too).
    #[cold]
    #[inline(never)]
    fn not_entered(slot: &Slot, owned: bool) -> Result<(), CaughtPanic> {
        if owned {
            slot.release();
        }
        Ok(())
    }

    /// After a poll of task `id`: leaves its frame (see
    /// [`TaskFrame::leave`]) and gives the slot back, so that the next poll,
    /// on any thread, may enter it. Does nothing if this thread has not
    /// entered it (a task that terminated in this poll was removed already).
    ///
    /// A frame entered here that is not this thread's current frame (left
    /// out of order, with a frame entered after it still current) stays
    /// entered, and this thread's, until it is left in order.
    ///
    /// # Errors
    ///
    /// The panic of a hook, caught; the frame is left all the same.
    ///
    /// # Examples
    ///
    /// See [`TaskTable`].
    #[inline(always)]
    pub fn leave(&self, id: NonZeroU64) -> Result<(), CaughtPanic> {
        let n = id.get();
        let slot = &self.slots[TaskTable::first(n)];
        if slot.id.load(Ordering::Acquire) == n {
            return TaskTable::leave_slot(slot);
        }
        self.leave_elsewhere(n)
    }

    #[cold]
    #[inline(never)]
    fn leave_elsewhere(&self, n: u64) -> Result<(), CaughtPanic> {
        match self.find_elsewhere(n) {
            Some(slot) => TaskTable::leave_slot(&slot),
            None => Ok(()),
        }
    }

    #[inline(always)]
    fn leave_slot(slot: &Slot) -> Result<(), CaughtPanic> {
        // Not this thread's current frame: not entered here (a task that
        // ended in this poll was removed already), or left out of order
        // (kept until left in order).
        if !slot.is_current_here() {
            return Ok(());
        }
        let left = slot.frame().leave_installed();
        // The last use of the frame by this thread.
        slot.release();
        left
    }

    /// When task `id` terminates: takes its frame out and ends it (see
    /// [`TaskFrame::end`]): inside its last poll (entered on this thread)
    /// it is ended there; otherwise, after waiting for a thread that may
    /// still be leaving it, it is resumed and torn down here, so its hooks
    /// are dropped entered. Does nothing for an id the table does not hold.
    ///
    /// # Errors
    ///
    /// The first panic of a hook or destructor, caught.
    ///
    /// # Examples
    ///
    /// See [`TaskTable`].
    pub fn remove(&self, id: NonZeroU64) -> Result<(), CaughtPanic> {
        let n = id.get();
        let Some(found) = self.find(n) else {
            return Ok(());
        };
        let overflow = matches!(found, Found::Overflow(_));
        let Some(frame) = TaskTable::take(&found) else {
            return Ok(());
        };
        if overflow {
            let mut shard = lock(self.shard(n));
            if shard.get(&n).is_some_and(|s| ptr::eq(&**s, &*found)) {
                shard.remove(&n);
                drop(shard);
                self.overflowed.fetch_sub(1, Ordering::AcqRel);
            }
        }
        TaskTable::end(frame)
    }

    /// Takes the frame out of `slot` (which is then free), once this thread
    /// owns it; `None` if the slot no longer holds a task.
    fn take(slot: &Slot) -> Option<Box<Inner>> {
        // Owned already if this thread has the frame entered (a task that
        // terminates inside its last poll): given back all the same, since
        // the frame leaves the slot and is ended next, on this thread.
        slot.own();
        let frame = slot.frame.swap(ptr::null_mut(), Ordering::Relaxed);
        if !frame.is_null() {
            slot.id.store(0, Ordering::Relaxed);
        }
        slot.release();
        // SAFETY: a non-null `frame` is the pointer of a live `Box<Inner>`
        // made by `insert`, swapped out of the slot by its owner: no other
        // thread can reach it any more.
        (!frame.is_null()).then(|| unsafe { Box::from_raw(frame) })
    }

    /// Ends a frame taken out of the table, on this thread.
    fn end(frame: Box<Inner>) -> Result<(), CaughtPanic> {
        match frame.end() {
            Ended::Done(result) => {
                // The frame's own leftovers (its starting mapping) may hold
                // the last reference to a value whose destructor panics.
                let dropped = frame::catch(move || drop(frame));
                result.and(dropped)
            }
            Ended::Stray => {
                // Entered on this thread but not current: left out of order.
                // It may become current again here: never freed.
                Box::leak(frame);
                Ok(())
            }
        }
    }

    /// The number of tasks held: inserted and not yet removed.
    ///
    /// # Examples
    ///
    /// See [`TaskTable`].
    pub fn len(&self) -> usize {
        let in_slots = self
            .slots
            .iter()
            .filter(|s| s.id.load(Ordering::Acquire) != 0)
            .count();
        in_slots + self.overflowed.load(Ordering::Acquire)
    }

    /// Whether the table holds no task.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// assert!(rt_ext::TaskTable::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for TaskTable {
    fn default() -> TaskTable {
        TaskTable::new()
    }
}

impl Drop for TaskTable {
    /// Frames of tasks never removed (an executor torn down without its
    /// termination callbacks) are ended, on the dropping thread; one still
    /// owned by some thread (entered there, never left) is leaked.
    fn drop(&mut self) {
        let shards = self.overflow.iter().flat_map(|s| {
            let mut map = lock(s);
            map.drain().map(|(_, slot)| slot).collect::<Vec<_>>()
        });
        let overflowed: Vec<Arc<Slot>> = shards.collect();
        let slots = self.slots.iter().chain(overflowed.iter().map(|s| &**s));
        for slot in slots {
            if slot.owner.load(Ordering::Acquire) {
                continue;
            }
            let frame = slot.frame.swap(ptr::null_mut(), Ordering::Relaxed);
            if !frame.is_null() {
                slot.id.store(0, Ordering::Relaxed);
                // SAFETY: as in `take`: a live box, out of the slot, and no
                // thread owns the slot (nor can: the table is being dropped).
                let frame = unsafe { Box::from_raw(frame) };
                let _ = TaskTable::end(frame);
            }
        }
    }
}

impl fmt::Debug for TaskTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskTable")
            .field("tasks", &self.len())
            .finish()
    }
}

// SAFETY: the frames (`Inner`, `Send`) are reached through the slots only by
// the thread that owns the slot, one thread at a time, with the hand-over
// ordered by the owner word (see `Slot`); every other field is atomic or
// behind a mutex.
unsafe impl Sync for TaskTable {}
// SAFETY: as above; the boxes the slots point to are `Send`.
unsafe impl Send for TaskTable {}
