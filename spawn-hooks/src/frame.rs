//! Frames and the poll protocol.
//!
//! A [`Frame`] is the unit of suspension: it owns the [`Mapping`] it started
//! from, the bindings made in it and the lifecycle hooks registered in it.
//! Each thread has one *current* frame: a thread-local pointer to the frame
//! of the innermost poll (or closure) running on it, or null for the
//! thread's base frame. Entering a frame stores its address there and keeps the previous
//! pointer aside; leaving it puts the previous pointer back. That is all a
//! poll of a frame without hooks (or deferred removals) costs: two
//! thread-local pointer swaps. The frame itself never moves while current: it
//! stays where its owner keeps it (a pinned [`Framed`](crate::Framed), a boxed
//! [`TaskFrame`](crate::TaskFrame), or the stack of a closure frame).
//!
//! The protocol, per frame and per poll, on the polling thread (see
//! [`Entered`]):
//!
//! 1. the frame becomes current, the previous one is saved;
//! 2. from the second poll on, removals deferred by guards dropped elsewhere
//!    are applied and the hooks' `on_resume` run in registration order;
//! 3. the inner future is polled (by the caller);
//! 4. on `Pending`, or when the poll unwinds, the hooks' `on_yield` run in
//!    reverse order and the saved frame becomes current again;
//! 5. on `Ready` (and for closure frames when the closure returns or unwinds)
//!    what is left of the bindings and hooks is dropped, then the saved frame
//!    becomes current again.
//!
//! When a dropped guard's removal takes effect: a guard dropped on a thread
//! where its frame is entered (the current frame, or one further down that
//! thread's stack of entered frames: [`Shared::entered_on`] says which
//! thread) removes its binding or hook at once. Dropped anywhere else, it
//! defers: the frame applies deferred removals at its next resume or end (or
//! when it is next read or bound in), one at a time in drop order, each
//! removed item finished (a hook resumed and dropped) before the next is
//! applied, so it sees the context as it was when its guard dropped.
//!
//! No user code (hook callbacks, value or hook destructors) ever runs while a
//! frame is borrowed: items are taken out, the borrow is released, then the
//! item is called or dropped. That makes every entry point re-entrant.
//! User code that panics inside the protocol is caught, the protocol finishes
//! (so the thread is back in its saved frame) and the panic is resumed
//! afterwards, unless the thread is already unwinding, in which case it is
//! discarded rather than aborting the process.

use std::any::Any;
use std::cell::{Cell, RefCell, RefMut};
use std::fmt;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::error::BindError;
use crate::lifecycle::Lifecycle;
use crate::mapping::{Entry, Mapping, Value};
use crate::sync::{lock, thread_local, Arc, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::value::Stored;

pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// What a guard keeps to find its binding or hook: the frame's shared part and
/// the id within the frame.
pub(crate) type Registered = (Arc<Shared>, u64);

/// Where the current frame lives: installed by [`install`], removed by
/// [`uninstall`].
pub(crate) type FramePtr = *const RefCell<Frame>;

thread_local! {
    // The current frame, or null for the base frame. Const-initialized and
    // without destructor: reading it is a plain thread-local load, and it
    // stays readable while the thread's other thread-locals are destroyed.
    // (The shim's loom version of the macro unwraps the `const` blocks.)
    static CURRENT: Cell<FramePtr> = const { Cell::new(ptr::null()) };
    // The thread's base frame, for code that runs outside any frame.
    static BASE: RefCell<Frame> = const { RefCell::new(Frame::BASE) };
}

/// Calls `f` with the current frame; `None` when it is the base frame and the
/// thread's base frame is already destroyed (the thread is exiting).
#[inline]
fn with_current<R>(f: impl FnOnce(&RefCell<Frame>) -> R) -> Option<R> {
    match current_framed() {
        Some(cell) => Some(f(cell)),
        None => BASE.try_with(f).ok(),
    }
}

/// The current frame, unless it is the thread's base frame. Module-private:
/// callers use the reference at once, within the installation of the frame.
#[inline]
fn current_framed<'a>() -> Option<&'a RefCell<Frame>> {
    let current = current_ptr();
    if current.is_null() {
        return None;
    }
    // SAFETY: a non-null `CURRENT` was stored by `install` from a reference
    // to a frame whose owner keeps it in place, alive, until `uninstall` has
    // put the previous pointer back: `Entered` borrows its frame for its whole
    // life and uninstalls in `Drop` (it is never leaked while installed);
    // `TaskFrame` boxes its frame and never frees the box while the frame may
    // be current on some thread (it leaks it instead), and a `TaskTable`
    // frees a frame only once it owns it, which no thread does while the
    // frame is entered. Frames are only ever accessed through their
    // `RefCell`, so only shared references to one exist, and only on the
    // thread where it is current.
    Some(unsafe { &*current })
}

/// Whether `frame` is the current frame of this thread.
#[inline]
pub(crate) fn is_current(frame: &RefCell<Frame>) -> bool {
    is_current_ptr(frame)
}

/// The current frame's address (null: the base frame).
#[inline]
pub(crate) fn current_ptr() -> FramePtr {
    CURRENT.with(Cell::get)
}

/// [`is_current`] from an address alone.
#[inline]
pub(crate) fn is_current_ptr(frame: FramePtr) -> bool {
    ptr::eq(current_ptr(), frame)
}

// ===== Frame =====

/// One frame: the mapping it started from plus, once something is bound or
/// registered in it, its bindings and hooks. A frame with nothing registered
/// is four words and owns no allocation of its own.
///
/// The frame's current mapping is its starting mapping with its bindings
/// applied, oldest first. It is only made when something takes it whole (a
/// snapshot, a spawn, a nested frame) and kept until the next change: a
/// binding costs no mapping of its own, and a read looks at the bindings
/// (newest first), then at the starting mapping.
#[derive(Default)]
pub(crate) struct Frame {
    /// The mapping the frame started from: never changes.
    start: Mapping,
    ext: Option<Box<FrameExt>>,
    /// The thread's base frame, for code that runs outside any frame.
    base: bool,
    /// A frame around an executor (see `crate::isolate`): shared by the
    /// tasks that executor polls without frames of their own.
    isolated: bool,
}

/// The rarely used part of a frame, allocated on the first binding or hook.
struct FrameExt {
    /// The part guards can reach from any thread.
    shared: Arc<Shared>,
    /// Ids of bindings and hooks, unique within the frame, increasing.
    next_id: u64,
    /// Live bindings, oldest first (so ids increase along the vector). Its
    /// capacity stays: the next binding in the frame allocates nothing.
    bindings: Vec<Slot>,
    /// The current mapping, once taken whole, until the bindings change.
    /// A cell: it is made by readers, which share the frame (a snapshot
    /// captured inside a `with` callback). It only ever holds values that
    /// the starting mapping or the bindings hold too, so dropping it runs no
    /// user code, except when a removal drops it (see `Removed`).
    current: Cell<Option<Mapping>>,
    /// Live hooks, oldest first (so ids increase along the vector). While
    /// `run_hooks` calls them (`calling`), no slot moves and none is dropped:
    /// a hook is called in place, through a pointer into its box.
    hooks: Vec<HookSlot>,
    /// Whether `run_hooks` is calling the hooks: a pass is under way.
    calling: bool,
    /// Hooks registered while `calling`: added after `hooks` when the pass
    /// ends.
    added: Vec<HookSlot>,
    /// Whether a slot was marked gone during the pass.
    dirty: bool,
    /// Whether `settle_pending` is finishing a deferred removal: user code
    /// that runs meanwhile sees the frame as it was when that removal's
    /// guard dropped, so the later removals wait (see `settle_waits`).
    settling: bool,
}

/// A binding: `var` is `value` in the frame until the guard of `id` drops.
struct Slot {
    id: u64,
    var: u64,
    value: Stored,
}

struct HookSlot {
    id: u64,
    hook: Box<dyn Lifecycle>,
    /// Whether `on_resume` (or registration) came last, rather than `on_yield`.
    entered: bool,
    /// It panicked, or its guard dropped, while the hooks were being called:
    /// not called again, dropped when the pass ends.
    gone: bool,
    /// It panicked (it is then dropped as it is, not resumed first).
    poisoned: bool,
}

/// What a guard reaches from any thread: where its frame is entered, and a
/// queue of removals the frame applies at its next resume or end (or the
/// next time it is read or bound in).
pub(crate) struct Shared {
    pending: AtomicBool,
    /// The [`thread_token`] of the thread on whose stack of entered frames
    /// the frame is, or 0. Only that thread stores its own token here, and
    /// it stores 0 before it leaves the frame (or when the frame ends), so a
    /// thread that reads its own token knows, exactly, that the frame is
    /// entered below it: alive, in place at `home`, and used by no other
    /// thread. A thread's base frame keeps its token until the thread's
    /// context is destroyed.
    entered_on: AtomicUsize,
    /// The frame's address, fixed when its first binding or hook made this
    /// (the frame is current then, so in place until it ends; an ended frame
    /// is never marked entered again). Only read on the thread named by
    /// `entered_on`.
    home: usize,
    state: Mutex<SharedState>,
}

struct SharedState {
    /// The frame has ended: removals are moot.
    closed: bool,
    removals: Vec<u64>,
}

/// Where a pass over a frame's hooks is (see `Frame::step`).
struct Pass {
    /// The hooks that are due: entered ones (`on_yield`), or suspended ones.
    due: bool,
    /// How many hooks the pass covers; 0 until it starts.
    len: usize,
    /// How many slots were looked at.
    next: usize,
    /// The slot whose hook is being called, and whether the call returned.
    called: Option<(usize, bool)>,
}

/// What to do next in a pass over a frame's hooks.
enum Step {
    /// Call this hook (in place, with the frame not borrowed).
    Call(*mut dyn Lifecycle),
    /// The pass is over: the hooks to drop and whether any was registered
    /// meanwhile, if anything changed (see `FrameExt::end_pass_changed`).
    Done(Option<(Vec<Removed>, bool)>),
}

/// Something taken out of a frame, to be finished outside the borrow.
enum Removed {
    Nothing,
    Binding {
        slot: Slot,
        /// The frame's current mapping as it was, if it was made: it may
        /// hold the last share of the value.
        current: Option<Mapping>,
        /// Mutant only: the later bindings it dropped.
        #[cfg(spawn_hooks_mutant = "no_replay")]
        lost: Vec<Slot>,
    },
    Hook {
        hook: Box<dyn Lifecycle>,
        entered: bool,
    },
}

impl Frame {
    /// A thread's base frame.
    const BASE: Frame = Frame {
        start: Mapping::empty(),
        ext: None,
        base: true,
        isolated: false,
    };

    /// An empty frame that refuses bindings and hooks, like a runtime
    /// thread's base frame, for an executor polled inside another frame.
    pub(crate) fn isolated() -> Frame {
        Frame {
            start: Mapping::empty(),
            ext: None,
            base: false,
            isolated: true,
        }
    }

    pub(crate) fn with_mapping(mapping: Mapping) -> Frame {
        Frame {
            start: mapping,
            ext: None,
            base: false,
            isolated: false,
        }
    }

    /// Whether resuming or suspending the frame has work to do: hooks to
    /// call, or removals deferred by guards dropped elsewhere. Bindings alone
    /// need nothing until the frame ends.
    #[inline]
    fn has_registrations(&self) -> bool {
        self.ext.as_deref().is_some_and(|e| !e.hooks.is_empty()) || self.has_pending()
    }

    /// Whether bindings and hooks made here would be shared by unrelated
    /// tasks, and so must be refused.
    fn refuses(&self) -> bool {
        self.isolated || (self.base && crate::unframed::refused())
    }

    fn owns(&self, shared: &Arc<Shared>) -> bool {
        // Mutant: any frame with registrations counts as the guard's own.
        #[cfg(spawn_hooks_mutant = "owns_any")]
        let shared = self.ext.as_deref().map_or(shared, |e| &e.shared);
        self.ext
            .as_deref()
            .is_some_and(|e| Arc::ptr_eq(&e.shared, shared))
    }

    #[inline]
    fn has_pending(&self) -> bool {
        self.ext
            .as_deref()
            .is_some_and(|e| e.shared.pending.load(Ordering::Acquire))
    }

    /// The frame's extension, made on first use; `home` is the frame's own
    /// address (it is current, so in place).
    fn ext_mut(&mut self, home: FramePtr) -> &mut FrameExt {
        self.ext.get_or_insert_with(|| {
            Box::new(FrameExt {
                shared: Arc::new(Shared {
                    pending: AtomicBool::new(false),
                    entered_on: AtomicUsize::new(0),
                    home: home as usize,
                    state: Mutex::new(SharedState {
                        closed: false,
                        removals: Vec::new(),
                    }),
                }),
                next_id: 0,
                bindings: Vec::new(),
                current: Cell::new(None),
                hooks: Vec::new(),
                calling: false,
                added: Vec::new(),
                dirty: false,
                settling: false,
            })
        })
    }

    fn bind(&mut self, home: FramePtr, var: u64, value: Stored) -> Registered {
        self.ext_mut(home).bind(var, value)
    }

    fn add_hook(&mut self, home: FramePtr, hook: Box<dyn Lifecycle>) -> Registered {
        let ext = self.ext_mut(home);
        let id = ext.push_hook(hook, true);
        (ext.shared.clone(), id)
    }

    /// Registers `hook` suspended, with no guard: it is resumed with the
    /// frame's next resume (its first entry) and dropped when the frame
    /// ends. For a frame that does not move (its `home`).
    pub(crate) fn add_suspended_hook(&mut self, home: FramePtr, hook: Box<dyn Lifecycle>) {
        self.ext_mut(home).push_hook(hook, false);
    }

    /// Removes the binding or hook `id`, by identity.
    fn remove(&mut self, id: u64) -> Removed {
        let Some(ext) = self.ext.as_deref_mut() else {
            return Removed::Nothing;
        };
        if let Some(i) = ext.bindings.iter().rposition(|b| b.id == id) {
            // Mutant: removal by depth (the newest binding), not identity.
            #[cfg(spawn_hooks_mutant = "remove_by_depth")]
            let i = i.max(ext.bindings.len() - 1);
            // Mutant: the bindings made after the removed one go with it
            // (a stack-style restore of the mapping as it was before it).
            #[cfg(spawn_hooks_mutant = "no_replay")]
            let lost = ext.bindings.split_off(i + 1);
            // Later bindings stay where they are: a read finds each
            // variable's newest binding whatever was removed below it, so
            // each keeps its own value, whatever the drop order.
            let slot = if i + 1 == ext.bindings.len() {
                ext.bindings.pop().expect("not empty")
            } else {
                ext.bindings.remove(i)
            };
            return Removed::Binding {
                slot,
                current: ext.current.take(),
                #[cfg(spawn_hooks_mutant = "no_replay")]
                lost,
            };
        }
        if let Some(i) = ext.hooks.iter().position(|h| h.id == id) {
            if ext.calling {
                // Maybe being called: not called again, dropped when the
                // pass ends.
                let slot = &mut ext.hooks[i];
                if !slot.gone {
                    slot.gone = true;
                    ext.dirty = true;
                }
                return Removed::Nothing;
            }
            let slot = ext.hooks.remove(i);
            return Removed::Hook {
                hook: slot.hook,
                entered: slot.entered,
            };
        }
        if let Some(i) = ext.added.iter().position(|h| h.id == id) {
            let slot = ext.added.remove(i);
            return Removed::Hook {
                hook: slot.hook,
                entered: slot.entered,
            };
        }
        Removed::Nothing
    }

    /// One step of a pass over the hooks (see `run_hooks`), under one
    /// borrow of the frame: starts the pass, records the outcome of the call
    /// just made, and finds the next hook that is due (`entered == due`, not
    /// gone), or ends the pass.
    #[inline]
    fn step(&mut self, pass: &mut Pass) -> Step {
        let Some(ext) = self.ext.as_deref_mut() else {
            return Step::Done(None);
        };
        if pass.len == 0 {
            if ext.hooks.is_empty() || ext.calling {
                return Step::Done(None);
            }
            ext.calling = true;
            pass.len = ext.hooks.len();
        }
        if let Some((i, ok)) = pass.called.take() {
            let slot = &mut ext.hooks[i];
            if ok {
                slot.entered = !pass.due;
            } else {
                slot.gone = true;
                slot.poisoned = true;
                ext.dirty = true;
            }
        }
        while pass.next < pass.len {
            // `on_resume` oldest first, `on_yield` newest first.
            let i = match pass.due {
                true => pass.len - 1 - pass.next,
                false => pass.next,
            };
            pass.next += 1;
            let slot = &mut ext.hooks[i];
            if slot.entered == pass.due && !slot.gone {
                pass.called = Some((i, false));
                return Step::Call(&mut *slot.hook);
            }
        }
        ext.calling = false;
        if !ext.dirty && ext.added.is_empty() {
            return Step::Done(None);
        }
        Step::Done(Some(ext.end_pass_changed()))
    }

    /// Whether a pass over the hooks is under way: they are not to be
    /// dropped meanwhile.
    fn in_pass(&self) -> bool {
        self.ext.as_deref().is_some_and(|e| e.calling)
    }

    /// Takes out the newest hook, else the newest binding, for teardown.
    fn pop_item(&mut self) -> Option<Removed> {
        let ext = self.ext.as_deref_mut()?;
        if ext.calling {
            // A hook being called: nothing is dropped under it.
            return None;
        }
        if let Some(slot) = ext.added.pop().or_else(|| ext.hooks.pop()) {
            return Some(slot.into_removed());
        }
        let id = ext.bindings.last()?.id;
        Some(self.remove(id))
    }

    /// Marks the frame ended: guards dropped from now on do nothing.
    fn close(&mut self) {
        if let Some(ext) = self.ext.as_deref() {
            ext.shared.close();
        }
    }

    /// Whether deferred removals must wait, though the frame is not
    /// borrowed: one of them is being finished, or the hooks are out being
    /// called. Code that runs then sees the frame as it is (a removal applied
    /// there would overtake the ones in progress).
    fn settle_waits(&self) -> bool {
        self.ext.as_deref().is_some_and(|e| e.settling || e.calling)
    }

    fn set_settling(&mut self, on: bool) {
        if let Some(ext) = self.ext.as_deref_mut() {
            ext.settling = on;
        }
    }

    /// The ids of the removals deferred by guards dropped elsewhere.
    fn pending_ids(&self) -> Vec<u64> {
        self.ext
            .as_deref()
            .map_or_else(Vec::new, |e| e.shared.pending_ids())
    }

    /// Applies the oldest removal deferred by a guard dropped elsewhere, if
    /// any: one at a time, so that each removed item is finished (a hook
    /// resumed and dropped) seeing the frame as it was when its guard
    /// dropped, later removals not yet applied.
    fn take_one_pending(&mut self) -> Option<Removed> {
        let id = self.ext.as_deref()?.shared.take_one()?;
        Some(self.remove(id))
    }

    /// The value of `var`: its newest binding, else the starting mapping.
    /// Out of line: [`read`], inlined where a variable is read, stays small.
    #[inline(never)]
    fn get(&self, var: u64) -> Option<&Value> {
        if let Some(ext) = self.ext.as_deref() {
            if let Some(slot) = ext.bindings.iter().rev().find(|b| b.var == var) {
                return Some(slot.value.get());
            }
        }
        self.start.get(var)
    }

    /// The frame's current mapping: O(1) unless its bindings changed since
    /// it was last taken, then O(variables) once.
    fn mapping(&self) -> Mapping {
        match self.ext.as_deref() {
            Some(ext) => ext.mapping(&self.start),
            None => self.start.clone(),
        }
    }

    /// [`get`](Frame::get) as it will be once the removals deferred by
    /// `gone` are applied, for a read that cannot apply them (a `with`
    /// callback holds the frame).
    fn get_settled(&self, var: u64, gone: &[u64]) -> Option<&Value> {
        if let Some(ext) = self.ext.as_deref() {
            let mut newest_first = ext.bindings.iter().rev();
            if let Some(slot) = newest_first.find(|b| b.var == var && !gone.contains(&b.id)) {
                return Some(slot.value.get());
            }
        }
        self.start.get(var)
    }

    /// [`mapping`](Frame::mapping) as it will be once the removals deferred
    /// by `gone` are applied (not kept: the frame is not there yet).
    fn mapping_settled(&self, gone: &[u64]) -> Mapping {
        match self.ext.as_deref() {
            Some(ext) => apply(&self.start, &ext.bindings, gone),
            None => self.start.clone(),
        }
    }
}

/// `start` with `bindings` (oldest first) applied, leaving out those with
/// ids in `gone`: each variable's newest binding wins. Moves the bindings'
/// values to shared storage.
fn apply(start: &Mapping, bindings: &[Slot], gone: &[u64]) -> Mapping {
    // The newest binding of each variable, sorted by variable.
    let mut newest: Vec<(u64, usize)> = (bindings.iter().enumerate())
        .filter(|(_, b)| !gone.contains(&b.id))
        .map(|(i, b)| (b.var, i))
        .collect();
    if newest.is_empty() {
        return start.clone();
    }
    newest.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    newest.dedup_by_key(|e| e.0);
    let old = start.entries();
    let mut entries = Vec::with_capacity(old.len() + newest.len());
    let mut old = old.iter().peekable();
    for (var, i) in newest {
        while let Some(e) = old.next_if(|e| e.id < var) {
            entries.push(e.clone());
        }
        old.next_if(|e| e.id == var);
        entries.push(Entry {
            id: var,
            value: bindings[i].value.get().clone(),
        });
    }
    entries.extend(old.cloned());
    Mapping::from_sorted(entries)
}

impl HookSlot {
    /// A hook that panicked is dropped as it is; others are dropped entered.
    fn into_removed(self) -> Removed {
        Removed::Hook {
            hook: self.hook,
            entered: self.entered || self.poisoned,
        }
    }
}

impl FrameExt {
    #[inline]
    fn bind(&mut self, var: u64, value: Stored) -> Registered {
        let id = self.new_id();
        self.bindings.push(Slot { id, var, value });
        // Its values are all held by the starting mapping or the older
        // bindings: dropping it runs no user code.
        self.current.set(None);
        (self.shared.clone(), id)
    }

    /// Removes the newest binding if it is `id` and dropping it runs no user
    /// code (a small value without drop glue that no snapshot took: the
    /// common `set` + drop); else leaves it to [`Frame::remove`].
    #[inline]
    fn pop_trivial(&mut self, id: u64) -> bool {
        let Some(last) = self.bindings.last_mut() else {
            return false;
        };
        if last.id != id || self.current.get_mut().is_some() || !last.value.drops_trivially() {
            return false;
        }
        let newest = self.bindings.len() - 1;
        self.bindings.truncate(newest);
        true
    }

    /// The current mapping over `start`, made (and kept) if it was not.
    #[inline(never)]
    fn mapping(&self, start: &Mapping) -> Mapping {
        if self.bindings.is_empty() {
            return start.clone();
        }
        if let Some(mapping) = self.current.take() {
            self.current.set(Some(mapping.clone()));
            return mapping;
        }
        self.make_mapping(start)
    }

    #[cold]
    #[inline(never)]
    fn make_mapping(&self, start: &Mapping) -> Mapping {
        let mapping = apply(start, &self.bindings, &[]);
        // A reader that ran meanwhile (a global allocator reading the
        // context) may have made one too: the same, dropped without user
        // code.
        self.current.set(Some(mapping.clone()));
        mapping
    }

    /// Registers `hook`, `entered` or suspended; during a pass it waits
    /// aside, so that no slot moves while a hook is called in place.
    fn push_hook(&mut self, hook: Box<dyn Lifecycle>, entered: bool) -> u64 {
        let id = self.new_id();
        let slot = HookSlot {
            id,
            hook,
            entered,
            gone: false,
            poisoned: false,
        };
        if self.calling {
            self.added.push(slot);
        } else {
            self.hooks.push(slot);
        }
        id
    }

    /// [`Frame::end_pass`] when something changed during the pass.
    #[cold]
    #[inline(never)]
    fn end_pass_changed(&mut self) -> (Vec<Removed>, bool) {
        let mut gone = Vec::new();
        if mem::take(&mut self.dirty) {
            let mut i = 0;
            while i < self.hooks.len() {
                if self.hooks[i].gone {
                    gone.push(self.hooks.remove(i).into_removed());
                } else {
                    i += 1;
                }
            }
        }
        let added = !self.added.is_empty();
        self.hooks.append(&mut self.added);
        (gone, added)
    }

    /// The id of a new binding or hook: unique within the frame, increasing.
    fn new_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}

impl Drop for Frame {
    /// Closes the frame before anything of it is dropped: a guard dropped by
    /// a destructor below (a value of the mapping, a hook) then does nothing,
    /// and the frame is no longer marked entered anywhere.
    fn drop(&mut self) {
        if let Some(ext) = self.ext.as_deref() {
            ext.shared.close();
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ext = self.ext.as_deref();
        f.debug_struct("Frame")
            .field("start", &self.start)
            .field("bindings", &ext.map_or(0, |e| e.bindings.len()))
            .field("hooks", &ext.map_or(0, |e| e.hooks.len() + e.added.len()))
            .field("base", &self.base)
            .finish()
    }
}

// ===== impl Shared =====

impl Shared {
    fn defer(&self, id: u64) {
        // Mutant: the flag is raised before the removal is queued.
        #[cfg(spawn_hooks_mutant = "pending_before_lock")]
        self.pending.store(true, Ordering::Release);
        let mut state = lock(&self.state);
        if state.closed {
            return;
        }
        state.removals.push(id);
        #[cfg(not(spawn_hooks_mutant = "pending_before_lock"))]
        self.pending.store(true, Ordering::Release);
    }

    /// Takes the oldest deferred removal; the flag is lowered with the last.
    fn take_one(&self) -> Option<u64> {
        let mut state = lock(&self.state);
        if state.removals.is_empty() {
            // Mutant: the flag is lowered after the lock is released (a
            // removal deferred in between is then never seen).
            #[cfg(spawn_hooks_mutant = "clear_after_unlock")]
            drop(state);
            self.pending.store(false, Ordering::Release);
            return None;
        }
        let id = state.removals.remove(0);
        if state.removals.is_empty() {
            self.pending.store(false, Ordering::Release);
        }
        Some(id)
    }

    /// The ids of the deferred removals.
    fn pending_ids(&self) -> Vec<u64> {
        lock(&self.state).removals.clone()
    }

    fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        state.removals = Vec::new();
        self.pending.store(false, Ordering::Release);
        self.entered_on.store(0, Ordering::Relaxed);
    }
}

// ===== impl Removed =====

impl Removed {
    /// Whether dropping a removed binding runs no user code.
    #[inline]
    fn drops_trivially(&mut self) -> bool {
        #[cfg(spawn_hooks_mutant = "no_replay")]
        if let Removed::Binding { lost, .. } = self {
            if !lost.is_empty() {
                return false;
            }
        }
        match self {
            Removed::Binding { slot, current, .. } => {
                current.is_none() && slot.value.drops_trivially()
            }
            _ => false,
        }
    }

    /// Finishes a removal: a hook is dropped in the entered state, so a
    /// suspended one is resumed first. Returns the panic of user code, if any.
    fn finish(self) -> Result<(), Payload> {
        match self {
            Removed::Nothing => Ok(()),
            mut removed @ Removed::Binding { .. } => {
                // A small value without drop glue, never shared (the common
                // case) is not worth the catch.
                if removed.drops_trivially() {
                    return Ok(());
                }
                catch(move || drop(removed))
            }
            Removed::Hook { mut hook, entered } => {
                // Mutant: a hook removed while suspended is dropped unresumed.
                #[cfg(spawn_hooks_mutant = "drop_unresumed")]
                let entered = entered || true;
                let resumed = if entered {
                    Ok(())
                } else {
                    catch(|| hook.on_resume())
                };
                let dropped = catch(move || drop(hook));
                resumed.and(dropped)
            }
        }
    }
}

pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    panic::catch_unwind(AssertUnwindSafe(f))
}

fn keep_first(slot: &mut Option<Payload>, result: Result<(), Payload>) {
    if let Err(payload) = result {
        slot.get_or_insert(payload);
    }
}

/// Re-raises a panic of user code caught by the protocol, unless the thread is
/// already unwinding (a second panic would abort the process).
#[inline]
pub(crate) fn rethrow(payload: Option<Payload>) {
    if let Some(payload) = payload {
        rethrow_caught(payload);
    }
}

#[cold]
#[inline(never)]
fn rethrow_caught(payload: Payload) {
    if !std::thread::panicking() {
        panic::resume_unwind(payload);
    }
}

// ===== reading and binding from the current frame =====

/// Applies removals deferred by guards dropped away from their frame.
#[inline]
fn settle(cell: &RefCell<Frame>) -> Option<Payload> {
    // The common case, inline: nothing deferred (checked without the
    // borrow flag, as `has_registrations` does).
    // SAFETY: as in `has_registrations`.
    if !unsafe { &*cell.as_ptr() }.has_pending() {
        return None;
    }
    settle_pending(cell)
}

/// Applies the deferred removals one at a time, in drop order: each item is
/// taken out and finished (user code runs) before the next is taken. Does
/// nothing while the frame is borrowed (a `with` callback reading it: the
/// removals wait until it returns).
#[cold]
#[inline(never)]
fn settle_pending(cell: &RefCell<Frame>) -> Option<Payload> {
    match cell.try_borrow_mut() {
        Ok(mut frame) if !frame.settle_waits() => frame.set_settling(true),
        _ => return None,
    }
    let mut payload = None;
    // Mutant: every removal is applied before any removed item is finished.
    #[cfg(spawn_hooks_mutant = "settle_all_at_once")]
    {
        let mut all = Vec::new();
        loop {
            let next = cell.borrow_mut().take_one_pending();
            let Some(r) = next else { break };
            all.push(r);
        }
        for r in all {
            keep_first(&mut payload, r.finish());
        }
    }
    // Each item is finished without the borrow (user code runs); the frame
    // is borrowed by nobody else meanwhile but that code, which cannot
    // settle (see `settle_waits`), so `borrow_mut` cannot fail.
    loop {
        let next = cell.borrow_mut().take_one_pending();
        let Some(removed) = next else { break };
        keep_first(&mut payload, removed.finish());
    }
    cell.borrow_mut().set_settling(false);
    payload
}

/// Calls `f` with the value of variable `var` in the current frame (none
/// where the thread's context is gone, during thread-local destruction).
///
/// `f` runs with the frame borrowed: a guard of this frame dropped inside it
/// cannot remove its item at once and defers; reads inside `f` see the
/// frame as if the removal had been applied, and the removal is applied
/// when `f` returns.
#[inline(always)]
pub(crate) fn read<R>(var: u64, f: impl FnOnce(Option<&Value>) -> R) -> R {
    // The common cases, inline: a frame with nothing deferred.
    if let Some(cell) = current_framed() {
        if let Ok(frame) = cell.try_borrow() {
            match frame.ext.as_deref() {
                // Nothing was ever bound or registered here: no guard of
                // the frame exists for `f` to drop, and none can be made
                // while it is borrowed, so there is nothing to check after.
                None => return f(frame.start.get_inlined(var)),
                Some(ext) if !ext.shared.pending.load(Ordering::Acquire) => {
                    let r = f(frame.get(var));
                    drop(frame);
                    // SAFETY: as in `has_registrations`.
                    if unsafe { &*cell.as_ptr() }.has_pending() {
                        settle_after_read(cell);
                    }
                    return r;
                }
                Some(_) => {}
            }
        }
    }
    read_slow(move |frame, gone| f(frame.and_then(|frame| frame.get_settled(var, gone))))
}

/// Applies the removals deferred by guards dropped inside a `read` callback.
#[cold]
#[inline(never)]
fn settle_after_read(cell: &RefCell<Frame>) {
    rethrow(settle_pending(cell));
}

/// `read` in the base frame, or with removals to apply first: `f` gets the
/// frame (none where the thread's context is gone) and the ids of the
/// removals that are deferred still (an enclosing `with` callback holds the
/// frame), which it reads as if they were applied.
#[cold]
#[inline(never)]
fn read_slow<R>(f: impl FnOnce(Option<&Frame>, &[u64]) -> R) -> R {
    let mut f = Some(f);
    let done = with_current(|cell| {
        rethrow(settle(cell));
        let frame = cell.try_borrow().ok()?;
        let f = f.take()?;
        let r = if frame.has_pending() && !frame.settle_waits() {
            // Still deferred: an enclosing `with` callback holds the frame.
            f(Some(&frame), &frame.pending_ids())
        } else {
            f(Some(&frame), &[])
        };
        drop(frame);
        rethrow(settle(cell));
        Some(r)
    });
    match done {
        Some(Some(r)) => r,
        _ => match f.take() {
            Some(f) => f(None, &[]),
            None => unreachable!("the reader ran but returned nothing"),
        },
    }
}

/// The current mapping: O(1) unless the frame's bindings changed since it
/// was last taken. [`read`] without its check after the callback: making
/// the mapping runs no user code, so drops no guard.
#[inline]
pub(crate) fn current_mapping() -> Mapping {
    // The common cases, inline: a frame with nothing deferred; the one with
    // nothing bound in it (a frame made for a future, a closure, a spawned
    // task, until it binds) in a few instructions.
    if let Some(cell) = current_framed() {
        if let Ok(frame) = cell.try_borrow() {
            match frame.ext.as_deref() {
                None => return frame.start.clone(),
                Some(ext) if !ext.shared.pending.load(Ordering::Acquire) => {
                    return ext.mapping(&frame.start);
                }
                Some(_) => {}
            }
        }
    }
    current_mapping_slow()
}

/// [`current_mapping`] in the base frame, or with removals to apply first.
#[cold]
#[inline(never)]
fn current_mapping_slow() -> Mapping {
    read_slow(|frame, gone| match frame {
        Some(frame) if gone.is_empty() => frame.mapping(),
        Some(frame) => frame.mapping_settled(gone),
        None => Mapping::empty(),
    })
}

/// Registers a binding in the current frame.
#[inline]
pub(crate) fn bind(name: &'static str, var: u64, value: Stored) -> Result<Registered, BindError> {
    // The common case, inline: a frame that has bound before, entered
    // (and marked so: see `register`) on this thread, with nothing
    // deferred. A frame with an extension is neither a base frame (never
    // current: `with_current`) nor an isolated one (which refuses, and is
    // given no hooks).
    if let Some(cell) = current_framed() {
        if let Ok(mut frame) = cell.try_borrow_mut() {
            if let Some(ext) = frame.ext.as_deref_mut() {
                if !ext.shared.pending.load(Ordering::Acquire)
                    && ext.shared.entered_on.load(Ordering::Relaxed) == thread_token()
                {
                    return Ok(ext.bind(var, value));
                }
            }
        }
    }
    bind_slow(name, var, value)
}

#[cold]
#[inline(never)]
fn bind_slow(name: &'static str, var: u64, value: Stored) -> Result<Registered, BindError> {
    register(name, |frame, home| frame.bind(home, var, value))
}

/// Registers a hook in the current frame; on refusal the hook is handed back.
pub(crate) fn add_hook(
    hook: Box<dyn Lifecycle>,
) -> Result<Registered, (BindError, Box<dyn Lifecycle>)> {
    let mut hook = Some(hook);
    let registered = register("a lifecycle hook", |frame, home| {
        frame.add_hook(home, hook.take().expect("registered once"))
    })
    .map_err(|e| (e, hook.take().expect("not registered")))?;
    Ok(registered)
}

fn register<R>(
    what: &'static str,
    f: impl FnOnce(&mut Frame, FramePtr) -> R,
) -> Result<R, BindError> {
    let done = with_current(|cell| {
        rethrow(settle(cell));
        let mut frame = cell
            .try_borrow_mut()
            .map_err(|_| BindError::borrowed(what))?;
        if frame.refuses() {
            return Err(BindError::unframed(what));
        }
        let registered = f(&mut frame, cell);
        drop(frame);
        // The frame is entered on this thread: say so to its guards.
        mark(cell);
        Ok(registered)
    });
    done.unwrap_or_else(|| Err(BindError::destroyed(what)))
}

/// Removes a binding or hook by identity: at once when its frame is entered
/// on this thread (the current frame, or one further down the thread's stack
/// of entered frames), otherwise at that frame's next resume or end (or the
/// next time it is read or bound in).
#[inline]
pub(crate) fn release(shared: &Arc<Shared>, id: u64) {
    // The common cases: an item of the current frame; inline, the newest
    // binding, dropped trivially.
    if let Some(cell) = current_framed() {
        if let Ok(mut frame) = cell.try_borrow_mut() {
            if frame.owns(shared) {
                if let Some(ext) = frame.ext.as_deref_mut() {
                    if ext.pop_trivial(id) {
                        return;
                    }
                }
                return remove_current(frame, id);
            }
        }
    }
    release_slow(shared, id);
}

/// [`release`] of an item of the current frame, borrowed as `frame`.
#[inline(never)]
fn remove_current(mut frame: RefMut<'_, Frame>, id: u64) {
    let removed = frame.remove(id);
    drop(frame);
    rethrow(removed.finish().err());
}

#[cold]
#[inline(never)]
fn release_slow(shared: &Arc<Shared>, id: u64) {
    let removed = with_current(|cell| {
        let mut frame = cell.try_borrow_mut().ok()?;
        frame.owns(shared).then(|| frame.remove(id))
    })
    .flatten()
    .or_else(|| remove_below(shared, id));
    match removed {
        Some(removed) => rethrow(removed.finish().err()),
        None => shared.defer(id),
    }
}

/// [`release`] of an item whose frame is not the current one: removed at
/// once if the frame is entered further down this thread's stack.
#[cold]
fn remove_below(shared: &Arc<Shared>, id: u64) -> Option<Removed> {
    if shared.entered_on.load(Ordering::Relaxed) != thread_token() {
        return None;
    }
    // SAFETY: this thread stored its own token in `entered_on`, and stores 0
    // before it leaves the frame or the frame ends (`Shared::entered_on`):
    // the frame is entered on this thread, so its owner keeps it alive and
    // in place at `home` (as for the current frame: see `current_framed`),
    // and no other thread uses it. Only a shared reference is made; the
    // frame is reached through its `RefCell`.
    let cell = unsafe { &*(shared.home as FramePtr) };
    let mut frame = cell.try_borrow_mut().ok()?;
    frame.owns(shared).then(|| frame.remove(id))
}

thread_local! {
    // This thread's token (see `thread_token`), 0 until first asked for.
    static TOKEN: Cell<usize> = const { Cell::new(0) };
}

/// The last token handed out. A plain `std` atomic in every build: tokens
/// only tell threads apart; nothing synchronises through this counter.
static TOKENS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A number that tells the calling thread apart from every other thread that
/// ever ran in the process, never 0. Not an address: a thread-local's address
/// is reused by threads started after one exits, and a token a dead thread
/// left in a frame's `Shared::entered_on` must never match a live thread's.
#[inline]
pub(crate) fn thread_token() -> usize {
    TOKEN
        .try_with(|t| match t.get() {
            0 => {
                let token = new_token();
                t.set(token);
                token
            }
            token => token,
        })
        // A thread whose thread-locals are gone: a token of its own, used
        // once (it matches no frame's).
        .unwrap_or_else(|_| new_token())
}

#[cold]
fn new_token() -> usize {
    TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
}

/// Tells the guards of `frame` (if it has any) that it is entered on this
/// thread. The caller unmarks it before leaving it.
#[inline]
pub(crate) fn mark(frame: &RefCell<Frame>) {
    // SAFETY: as in `has_registrations`.
    if let Some(ext) = unsafe { &*frame.as_ptr() }.ext.as_deref() {
        ext.shared
            .entered_on
            .store(thread_token(), Ordering::Relaxed);
    }
}

/// Undoes [`mark`], as `frame` is left.
#[inline]
fn unmark(frame: &RefCell<Frame>) {
    // SAFETY: as in `has_registrations`.
    if let Some(ext) = unsafe { &*frame.as_ptr() }.ext.as_deref() {
        ext.shared.entered_on.store(0, Ordering::Relaxed);
    }
}

/// What a `Binding` or `HookGuard` holds: the way back to its registration.
/// Dropping it removes the registration, by identity (see [`release`]).
pub(crate) struct Registration {
    frame: Option<Arc<Shared>>,
    id: u64,
}

impl Registration {
    pub(crate) fn new((frame, id): Registered) -> Registration {
        Registration {
            frame: Some(frame),
            id,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(frame) = self.frame.take() {
            release(&frame, self.id);
        }
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("id", &self.id)
            .finish()
    }
}

// ===== the poll protocol =====

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Resume,
    Yield,
}

/// What leaving a frame does with it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Leave {
    /// Run `on_yield`, keep bindings and hooks for the next poll.
    Suspend,
    /// Drop what is left of the bindings and hooks: the frame has ended.
    End,
}

/// A frame installed as the thread's current frame: the one form of steps
/// 1 to 5 that [`Framed`](crate::Framed) and closure frames use (a
/// [`TaskFrame`](crate::TaskFrame), whose entry outlives any scope, calls
/// [`install`], [`resume`] and [`uninstall`] itself).
///
/// [`leave`](Entered::leave) leaves the frame (step 4, or step 5 once
/// [`ending`](Entered::ending)) and makes the previous frame current again.
/// Dropping it without `leave` does the same, for a poll or closure that
/// unwinds, so a panic still restores the thread's previous frame, and nested
/// frames unwind in order (they are strictly stack-scoped, so the frame
/// current at drop time is always ours).
///
/// It borrows its frame for its whole life, so the frame cannot move or be
/// dropped while its address is the thread's current frame. It is never
/// leaked while installed. Two words and a flag, with no panic slot: what
/// user code panics with on the way in or out is handed to the caller.
pub(crate) struct Entered<'a> {
    home: &'a RefCell<Frame>,
    /// The frame that was current before.
    prev: FramePtr,
    leave: Leave,
}

impl<'a> Entered<'a> {
    /// Step 1: installs `home` as the current frame; [`leave`] (or dropping
    /// the guard) leaves it as `leave` says.
    ///
    /// [`leave`]: Entered::leave
    #[inline(always)]
    pub(crate) fn install(home: &'a RefCell<Frame>, leave: Leave) -> Entered<'a> {
        Entered {
            home,
            prev: install(home),
            leave,
        }
    }

    /// Step 2, for a frame known to have work to do on the way in (see
    /// [`has_registrations`]): applies deferred removals and runs
    /// `on_resume`. Returns the panic of user code, if any.
    #[inline]
    pub(crate) fn resume_registered(&self) -> Option<Payload> {
        resume_current(self.home)
    }

    /// Step 2, whatever the frame has.
    #[inline]
    pub(crate) fn resume(&self) -> Option<Payload> {
        resume(self.home)
    }

    /// Makes leaving end the frame (step 5), from now on: set before the
    /// last destructors of the frame's owner run, so that the frame ends even
    /// if one of them panics.
    #[inline(always)]
    pub(crate) fn ending(&mut self) {
        self.leave = Leave::End;
    }

    /// Steps 4 or 5, now. Returns the panic of user code, if any.
    #[inline(always)]
    pub(crate) fn leave(self) -> Option<Payload> {
        let this = mem::ManuallyDrop::new(self);
        uninstall(this.home, this.prev, this.leave)
    }
}

impl Drop for Entered<'_> {
    /// The poll or closure unwound: leaves as [`Entered::leave`] does; a
    /// panic of user code on the way out is discarded (the thread is
    /// unwinding already) or resumed.
    #[cold]
    fn drop(&mut self) {
        rethrow(uninstall(self.home, self.prev, self.leave));
    }
}

impl fmt::Debug for Entered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entered")
            .field("leave", &self.leave)
            .finish()
    }
}

/// Step 1, for any owner of a frame: makes `frame` the current frame.
/// Returns the frame that was current, to give back to [`uninstall`]. When
/// the frame is resumed, [`resume`] comes next.
///
/// The caller keeps `frame` in place and alive until it has called
/// [`uninstall`] on this thread (see `with_current`).
#[inline]
pub(crate) fn install(frame: &RefCell<Frame>) -> FramePtr {
    mark(frame);
    CURRENT.with(|c| c.replace(frame))
}

/// Step 2, on `frame`, just installed: applies deferred removals and runs
/// `on_resume`. A frame with no hooks and no removals pending skips it (the
/// common case, kept to a check). Returns the panic of user code, if any.
#[inline]
pub(crate) fn resume(frame: &RefCell<Frame>) -> Option<Payload> {
    if has_registrations(frame) {
        return resume_current(frame);
    }
    None
}

/// Whether resuming or suspending `frame` has work to do (see
/// `Frame::has_registrations`).
#[inline]
pub(crate) fn has_registrations(frame: &RefCell<Frame>) -> bool {
    // SAFETY: no `RefMut` of a frame is ever held while code outside this
    // module runs (the protocol takes items out, releases the borrow, then
    // calls or drops them), and this module never calls here while holding
    // one; the shared reference is dropped before this returns. That spares
    // the poll path the borrow flag.
    unsafe { &*frame.as_ptr() }.has_registrations()
}

/// Step 2, on the current frame: applies deferred removals, then `on_resume`.
#[cold]
#[inline(never)]
pub(crate) fn resume_current(cell: &RefCell<Frame>) -> Option<Payload> {
    #[cfg(not(spawn_hooks_mutant = "no_settle_on_resume"))]
    let mut panic = settle(cell);
    // Mutant: deferred removals are not applied on resume.
    #[cfg(spawn_hooks_mutant = "no_settle_on_resume")]
    let mut panic = None;
    run_hooks(cell, Phase::Resume, &mut panic);
    panic
}

/// Steps 4 and 5: leaves `frame`, the current frame (`on_yield`, or teardown
/// when it ends), and makes `prev` (from [`install`]) current again. When the
/// frame ends, what is left of it is dropped here, no longer current
/// (whatever a destructor bound in it during teardown can no longer be
/// observed), and the frame is left empty; a frame in which nothing was ever
/// bound or registered keeps its starting mapping, which its owner drops
/// with it. Returns the panic of user code, if any.
#[inline]
pub(crate) fn uninstall(frame: &RefCell<Frame>, prev: FramePtr, leave: Leave) -> Option<Payload> {
    // The extension read once for every check below: written as calls of
    // `has_registrations` and `unmark`, a poll of a frame with a binding
    // costs 3 instructions more (510.6 against 507.6, benches/icount.sh).
    // SAFETY: as in `has_registrations` (the reference is not used after
    // the checks).
    match unsafe { &*frame.as_ptr() }.ext.as_deref() {
        // Nothing registered, ever: only the swap, whether the frame
        // suspends or ends. An ending frame has nothing of its own to drop;
        // its starting mapping goes with its owner (dropping it here, under
        // a catch, measured 20 instructions of a `ctx::spawn` + join).
        None => {
            restore(prev);
            None
        }
        Some(ext) if leave == Leave::Suspend => {
            if ext.hooks.is_empty() && !ext.shared.pending.load(Ordering::Acquire) {
                // Nothing to yield (no hooks, no deferred removals): unmark
                // and swap.
                ext.shared.entered_on.store(0, Ordering::Relaxed);
                restore(prev);
                return None;
            }
            suspend_registered(frame, prev)
        }
        Some(_) => end_registered(frame, prev),
    }
}

/// The last step of [`uninstall`]: makes `prev` current again.
#[inline]
pub(crate) fn restore(prev: FramePtr) {
    // Mutant: the thread's previous frame is lost, not restored.
    #[cfg(spawn_hooks_mutant = "skip_restore")]
    let prev = {
        let _ = prev;
        ptr::null()
    };
    CURRENT.with(|c| c.set(prev));
}

/// Step 4 of a frame with hooks (or deferred removals): `on_yield`, newest
/// first, then the swap back.
#[inline(never)]
fn suspend_registered(frame: &RefCell<Frame>, prev: FramePtr) -> Option<Payload> {
    let mut panic = None;
    // Mutant: `on_yield` is skipped when the poll unwinds.
    #[cfg(spawn_hooks_mutant = "no_yield_on_unwind")]
    let skip = std::thread::panicking();
    #[cfg(not(spawn_hooks_mutant = "no_yield_on_unwind"))]
    let skip = false;
    if !skip {
        run_hooks(frame, Phase::Yield, &mut panic);
    }
    unmark(frame);
    restore(prev);
    panic
}

/// Step 5 of a frame in which something was bound or registered: teardown,
/// with the frame still current, then the swap back; what is left of the
/// frame is dropped no longer current, and the frame is left empty.
#[cold]
#[inline(never)]
fn end_registered(frame: &RefCell<Frame>, prev: FramePtr) -> Option<Payload> {
    let mut panic = None;
    if frame.try_borrow().is_ok() {
        teardown(frame, &mut panic);
    }
    unmark(frame);
    restore(prev);
    // (Not while a pass calls the hooks, should a hook's callback end its
    // own frame: they are dropped with the frame's owner then.)
    if let Some(mut f) = frame.try_borrow_mut().ok().filter(|f| !f.in_pass()) {
        let mine = mem::take(&mut *f);
        drop(f);
        keep_first(&mut panic, catch(move || drop(mine)));
    }
    panic
}

/// Runs the hooks of the current frame for `phase`: `on_resume` oldest first,
/// `on_yield` newest first. The `entered` flag of each hook makes the two
/// strictly alternate, whatever hooks are added or removed by the callbacks.
/// A hook that panics is dropped when the pass ends; the others still run.
///
/// Each hook is called in place, with the frame not borrowed: during the
/// pass (`FrameExt::calling`) no slot moves and none is dropped (a removal
/// marks its slot gone, a registration waits aside), so the pointer taken
/// to a hook stays valid through its call, whatever the callback does.
#[inline(always)]
fn run_hooks(cell: &RefCell<Frame>, phase: Phase, panic: &mut Option<Payload>) {
    loop {
        let mut pass = Pass {
            due: phase == Phase::Yield,
            len: 0,
            next: 0,
            called: None,
        };
        let changed = loop {
            let hook = match cell.borrow_mut().step(&mut pass) {
                Step::Call(hook) => hook,
                Step::Done(changed) => break changed,
            };
            // SAFETY: `hook` points into the box of a slot, taken just now
            // through the frame's `RefCell`, whose borrow has ended. The box
            // is neither dropped nor moved out of its slot before the pass
            // ends (removals only mark the slot gone, teardown waits,
            // registrations go aside), and nothing else reaches the hook
            // meanwhile: only a pass calls it, and a second pass does not
            // start while this one runs. Calling in place, rather than taking
            // the hooks out and putting them back, saves about 130
            // instructions a poll with one hook (benches/icount.sh,
            // `poll_rtext_hook`).
            let hook = unsafe { &mut *hook };
            let called = match phase {
                Phase::Resume => catch(|| hook.on_resume()),
                Phase::Yield => catch(|| hook.on_yield()),
            };
            if let Err(p) = called {
                panic.get_or_insert(p);
            } else if let Some((_, ok)) = &mut pass.called {
                *ok = true;
            }
        };
        let Some((gone, added)) = changed else {
            return;
        };
        for removed in gone {
            keep_first(panic, removed.finish());
        }
        // Hooks registered by a callback are entered: on the way out they
        // are due too (on the way in they are skipped).
        if !added {
            return;
        }
    }
}

/// Drops what is left in the current frame, newest hook first, then newest
/// binding first, with the frame still current so destructors see it.
fn teardown(cell: &RefCell<Frame>, panic: &mut Option<Payload>) {
    if let Some(p) = settle(cell) {
        panic.get_or_insert(p);
    }
    loop {
        let Some(item) = cell.borrow_mut().pop_item() else {
            break;
        };
        keep_first(panic, item.finish());
    }
    cell.borrow_mut().close();
}

/// Runs `f` in a new frame that starts from `mapping` and ends when `f`
/// returns or unwinds.
pub(crate) fn run_in<R>(mapping: Mapping, f: impl FnOnce() -> R) -> R {
    let home = RefCell::new(Frame::with_mapping(mapping));
    let entered = Entered::install(&home, Leave::End);
    let r = f();
    rethrow(entered.leave());
    r
}

#[cfg(all(test, not(spawn_hooks_loom)))]
mod tests {
    use super::*;

    #[test]
    fn frame_without_registrations_is_small() {
        assert!(mem::size_of::<Frame>() <= 4 * mem::size_of::<usize>());
    }
}
