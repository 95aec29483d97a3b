//! What a frame holds: its starting mapping, its bindings and its hooks,
//! each with an id, removed by identity; reads of a variable and of the
//! frame's whole mapping; the pass over the hooks that calls them in place.
//! No user code runs in here: what is removed is handed back to be finished
//! (dropped, a hook resumed first) once the frame is no longer borrowed.

use std::cell::Cell;
use std::fmt;

use super::hook::StoredHook;
use super::{catch, FramePtr, Payload, Registered, Shared};
use crate::lifecycle::Lifecycle;
use crate::mapping::{Entry, Mapping, Value};
use crate::sync::{Arc, Ordering};
use crate::value::Stored;

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
    pub(super) start: Mapping,
    pub(super) ext: Option<Box<FrameExt>>,
    /// Whether `run_hooks` is calling the hooks (a pass is under way), and
    /// whether the hooks changed during the pass. In the frame rather than
    /// its extension: a pass ends with one read of the frame, where the
    /// extension read again after the hooks' calls cost 3 instructions a
    /// pass (benches/icount.sh, `poll_rtext_hook_yield_now`). It fits in
    /// the frame's padding.
    pub(super) pass: Pass,
    /// The thread's base frame, for code that runs outside any frame.
    base: bool,
    /// A frame around an executor (see `crate::isolate`): shared by the
    /// tasks that executor polls without frames of their own.
    isolated: bool,
}

/// The rarely used part of a frame, allocated on the first binding or hook.
pub(super) struct FrameExt {
    /// The part guards can reach from any thread.
    pub(super) shared: Arc<Shared>,
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
    /// `run_hooks` calls them (`Frame::pass`), no slot moves and none is
    /// dropped: a hook is called in place, where its slot stores it.
    pub(super) hooks: Vec<HookSlot>,
    /// Hooks registered during a pass: added after `hooks` when it ends.
    added: Vec<HookSlot>,
    /// What the guards of hooks removed during a pass handed over: dropped
    /// after those hooks, when the pass ends.
    kept: Vec<Keep>,
    /// The panic of a hook during the pass under way, until the pass ends
    /// (see `protocol::poison`). A cell: set through a shared reference.
    panicked: Cell<Option<Payload>>,
    /// Whether `settle_pending` is finishing a deferred removal: user code
    /// that runs meanwhile sees the frame as it was when that removal's
    /// guard dropped, so the later removals wait (see `settle_waits`).
    settling: bool,
}

/// A binding: `var` is `value` in the frame until the guard of `id` drops.
pub(super) struct Slot {
    id: u64,
    var: u64,
    value: Stored,
}

/// A hook and its state. During a pass over the hooks (see `run_hooks`)
/// slots are only reached through shared references (the flags are cells),
/// so that no reference to a slot claims the hook a pass is calling.
pub(super) struct HookSlot {
    id: u64,
    pub(super) hook: StoredHook,
    /// Whether it is entered, whether it is gone, whether it panicked.
    pub(super) flags: SlotFlags,
}

/// Whether a pass over a frame's hooks is under way (see `run_hooks`), and
/// whether the hooks changed during it. A cell: a pass starts and ends
/// through a shared reference, without the frame's borrow flag.
#[derive(Default)]
pub(super) struct Pass(Cell<u8>);

impl Pass {
    const IDLE: u8 = 0;
    const CALLING: u8 = 1;
    /// The bit a change during the pass adds.
    const CHANGED: u8 = 2;

    const fn idle() -> Pass {
        Pass(Cell::new(Self::IDLE))
    }

    /// Whether a pass is calling the hooks.
    #[inline(always)]
    pub(super) fn calling(&self) -> bool {
        self.0.get() != Self::IDLE
    }

    /// Notes that the hooks changed during the pass: a slot was marked gone
    /// (its guard dropped, or its hook panicked), or a hook registered.
    pub(super) fn changed(&self) {
        self.0.set(self.0.get() | Self::CHANGED);
    }

    /// Ends a pass. Returns whether the hooks changed during it, which
    /// [`Frame::apply_pass`] then applies.
    #[inline(always)]
    pub(super) fn end(&self) -> bool {
        self.0.replace(Self::IDLE) != Self::CALLING
    }
}

/// A hook slot's state, in one cell so that a pass tells whether a hook is
/// due with one comparison: whether `on_resume` (or registration) came last
/// rather than `on_yield` (`ENTERED`), whether it is gone (`GONE`: it
/// panicked, or its guard dropped, while the hooks were being called; it is
/// not called again, and dropped when the pass ends), and whether it
/// panicked (`POISONED`, with `GONE`: it is then dropped as it is, not
/// resumed first).
pub(super) struct SlotFlags(Cell<u8>);

impl SlotFlags {
    const ENTERED: u8 = 1;
    const GONE: u8 = 2;
    const POISONED: u8 = 4;

    fn new(entered: bool) -> SlotFlags {
        SlotFlags(Cell::new(u8::from(entered)))
    }

    /// Whether the pass that yields (`yielding`), or else resumes, calls
    /// this hook: one that is not gone and not already where the pass takes
    /// it.
    #[inline(always)]
    pub(super) fn due(&self, yielding: bool) -> bool {
        self.0.get() == u8::from(yielding)
    }

    /// Records the call of a pass: the hook, due, is entered if it was not,
    /// and not if it was. (Only that bit flips: the callback may have marked
    /// the hook gone meanwhile.)
    #[inline(always)]
    pub(super) fn called(&self) {
        self.0.set(self.0.get() ^ Self::ENTERED);
    }

    fn get(&self) -> u8 {
        self.0.get()
    }

    pub(super) fn gone(&self) -> bool {
        self.0.get() & Self::GONE != 0
    }

    /// Marks the hook gone; returns whether it was already.
    pub(super) fn mark_gone(&self) -> bool {
        let was = self.0.replace(self.0.get() | Self::GONE);
        was & Self::GONE != 0
    }

    /// Marks the hook gone because it panicked.
    pub(super) fn mark_poisoned(&self) {
        self.0.set(self.0.get() | Self::GONE | Self::POISONED);
    }

    /// Whether it is to be dropped as it is: entered, or it panicked.
    fn drops_as_it_is(&self) -> bool {
        self.0.get() & (Self::ENTERED | Self::POISONED) != 0
    }
}

/// A frame's hooks, as a pass over them sees them (see `run_hooks`): where
/// the slots are and how many. For the length of the pass (from
/// [`FrameExt::start_pass`] to [`Pass::end`]) the hook list is not
/// changed in place: removals only mark their slot gone, registrations wait
/// aside, teardown waits, and the frame is not dropped (it is entered).
pub(super) struct Slots {
    first: *const HookSlot,
    len: usize,
}

impl Slots {
    /// How many slots the pass covers.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Slot `i`.
    ///
    /// # Safety
    ///
    /// `i < self.len()`, and the pass that took these slots has not ended.
    #[inline]
    pub(super) unsafe fn get(&self, i: usize) -> &HookSlot {
        debug_assert!(i < self.len);
        // SAFETY: the caller's contract: the slots are where `start_pass`
        // found them, alive and unmoved, until the pass ends, and `i` is
        // one of them. Only a shared reference is made, as any code that
        // reaches the slots during a pass makes (the flags are cells).
        unsafe { &*self.first.add(i) }
    }
}

/// What a hook's guard hands over when the hook's drop has to wait (see
/// `HookGuard::release_keeping`): dropped after the hook, outside the frame's
/// borrow.
pub(crate) type Keep = Box<dyn Send>;

/// Something taken out of a frame, to be finished outside the borrow.
pub(super) enum Removed {
    Nothing,
    /// What a guard handed over for a hook that was already gone.
    Kept(Keep),
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
        hook: StoredHook,
        entered: bool,
        /// What the hook's guard handed over: dropped after the hook.
        keep: Option<Keep>,
    },
}

impl Frame {
    /// A thread's base frame.
    pub(super) const fn base() -> Frame {
        Frame {
            start: Mapping::empty(),
            ext: None,
            pass: Pass::idle(),
            base: true,
            isolated: false,
        }
    }

    /// An empty frame that refuses bindings and hooks, like a runtime
    /// thread's base frame, for an executor polled inside another frame.
    pub(crate) fn isolated() -> Frame {
        Frame {
            start: Mapping::empty(),
            ext: None,
            pass: Pass::idle(),
            base: false,
            isolated: true,
        }
    }

    pub(crate) fn with_mapping(mapping: Mapping) -> Frame {
        Frame {
            start: mapping,
            ext: None,
            pass: Pass::idle(),
            base: false,
            isolated: false,
        }
    }

    /// Whether resuming or suspending the frame has work to do: hooks to
    /// call, or removals deferred by guards dropped elsewhere. Bindings alone
    /// need nothing until the frame ends.
    #[inline]
    pub(super) fn has_registrations(&self) -> bool {
        self.ext.as_deref().is_some_and(|e| !e.hooks.is_empty()) || self.has_pending()
    }

    /// Whether this is a thread's base frame.
    pub(super) fn is_base(&self) -> bool {
        self.base
    }

    /// Whether bindings and hooks made here would be shared by unrelated
    /// tasks, and so must be refused.
    pub(super) fn refuses(&self) -> bool {
        self.isolated || (self.base && crate::unframed::refused())
    }

    pub(super) fn owns(&self, shared: &Arc<Shared>) -> bool {
        // Mutant: any frame with registrations counts as the guard's own.
        #[cfg(spawn_hooks_mutant = "owns_any")]
        let shared = self.ext.as_deref().map_or(shared, |e| &e.shared);
        self.ext
            .as_deref()
            .is_some_and(|e| Arc::ptr_eq(&e.shared, shared))
    }

    #[inline]
    pub(super) fn has_pending(&self) -> bool {
        self.ext
            .as_deref()
            .is_some_and(|e| e.shared.pending.load(Ordering::Acquire))
    }

    /// The frame's extension, made on first use; `home` is the frame's own
    /// address (it is current, so in place).
    fn ext_mut(ext: &mut Option<Box<FrameExt>>, home: FramePtr) -> &mut FrameExt {
        ext.get_or_insert_with(|| {
            Box::new(FrameExt {
                shared: Arc::new(Shared::new(home)),
                next_id: 0,
                bindings: Vec::new(),
                current: Cell::new(None),
                hooks: Vec::new(),
                added: Vec::new(),
                kept: Vec::new(),
                panicked: Cell::new(None),
                settling: false,
            })
        })
    }

    pub(super) fn bind(&mut self, home: FramePtr, var: u64, value: Stored) -> Registered {
        Frame::ext_mut(&mut self.ext, home).bind(var, value)
    }

    pub(super) fn add_hook<H: Lifecycle>(&mut self, home: FramePtr, hook: H) -> Registered {
        Frame::ext_mut(&mut self.ext, home).add_hook(&self.pass, hook)
    }

    /// Registers `hook` suspended, with no guard: it is resumed with the
    /// frame's next resume (its first entry) and dropped when the frame
    /// ends. For a frame that does not move (its `home`).
    pub(crate) fn add_suspended_hook<H: Lifecycle>(&mut self, home: FramePtr, hook: H) {
        Frame::ext_mut(&mut self.ext, home).push_hook(&self.pass, hook, false);
    }

    /// Takes out the newest hook, which [`FrameExt::newest_hook_is`] named.
    pub(super) fn pop_hook(&mut self) -> StoredHook {
        let slot = self.ext.as_deref_mut().and_then(|e| e.hooks.pop());
        slot.expect("the newest hook was checked").hook
    }

    /// Removes the binding or hook `id`, by identity.
    pub(super) fn remove(&mut self, id: u64) -> Removed {
        self.remove_keeping(id, None)
    }

    /// [`remove`](Frame::remove), with what the hook's guard handed over to
    /// be dropped after the hook (see `HookGuard::release_keeping`).
    pub(super) fn remove_keeping(&mut self, id: u64, keep: Option<Keep>) -> Removed {
        let Some(ext) = self.ext.as_deref_mut() else {
            return keep.map_or(Removed::Nothing, Removed::Kept);
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
            if self.pass.calling() {
                // Maybe being called: not called again, dropped when the
                // pass ends, and what its guard handed over after it.
                if !ext.hooks[i].flags.mark_gone() {
                    self.pass.changed();
                }
                ext.kept.extend(keep);
                return Removed::Nothing;
            }
            return ext.hooks.remove(i).into_removed(keep);
        }
        if let Some(i) = ext.added.iter().position(|h| h.id == id) {
            return ext.added.remove(i).into_removed(keep);
        }
        keep.map_or(Removed::Nothing, Removed::Kept)
    }

    /// The end of a pass ([`Pass::end`]) that changed the hooks: a
    /// hook panicked, or was removed or registered meanwhile.
    /// Hooks registered meanwhile join the others (they are newer). Returns
    /// the hooks to drop (those that panicked, and those whose guard dropped
    /// meanwhile) and whether any hook was registered meanwhile.
    pub(super) fn apply_pass(&mut self) -> (Vec<Removed>, bool) {
        match self.ext.as_deref_mut() {
            Some(ext) => ext.apply_pass(),
            None => (Vec::new(), false),
        }
    }

    /// Starts a pass over the hooks (see [`FrameExt::start_pass`]).
    #[inline(always)]
    pub(super) fn start_pass(&self) -> Option<Slots> {
        self.ext.as_deref()?.start_pass(&self.pass)
    }

    /// Ends a pass (see [`Pass::end`]).
    #[inline(always)]
    pub(super) fn end_pass(&self) -> bool {
        self.pass.end()
    }

    /// Whether a pass over the hooks is under way: they are not to be
    /// dropped meanwhile.
    pub(super) fn in_pass(&self) -> bool {
        self.pass.calling()
    }

    /// Takes out the newest hook, else the newest binding, for teardown.
    pub(super) fn pop_item(&mut self) -> Option<Removed> {
        let ext = self.ext.as_deref_mut()?;
        if self.pass.calling() {
            // A hook being called: nothing is dropped under it.
            return None;
        }
        if let Some(slot) = ext.added.pop().or_else(|| ext.hooks.pop()) {
            return Some(slot.into_removed(None));
        }
        let id = ext.bindings.last()?.id;
        Some(self.remove(id))
    }

    /// Marks the frame ended: guards dropped from now on do nothing.
    pub(super) fn close(&mut self) {
        if let Some(ext) = self.ext.as_deref() {
            ext.shared.close();
        }
    }

    /// Whether deferred removals must wait, though the frame is not
    /// borrowed: one of them is being finished, or the hooks are out being
    /// called. Code that runs then sees the frame as it is (a removal applied
    /// there would overtake the ones in progress).
    pub(super) fn settle_waits(&self) -> bool {
        self.ext
            .as_deref()
            .is_some_and(|e| e.settling || self.pass.calling())
    }

    pub(super) fn set_settling(&mut self, on: bool) {
        if let Some(ext) = self.ext.as_deref_mut() {
            ext.settling = on;
        }
    }

    /// The ids of the removals deferred by guards dropped elsewhere.
    pub(super) fn pending_ids(&self) -> Vec<u64> {
        self.ext
            .as_deref()
            .map_or_else(Vec::new, |e| e.shared.pending_ids())
    }

    /// Applies the oldest removal deferred by a guard dropped elsewhere, if
    /// any: one at a time, so that each removed item is finished (a hook
    /// resumed and dropped) seeing the frame as it was when its guard
    /// dropped, later removals not yet applied.
    pub(super) fn take_one_pending(&mut self) -> Option<Removed> {
        let (id, keep) = self.ext.as_deref()?.shared.take_one()?;
        Some(self.remove_keeping(id, keep))
    }

    /// The value of `var`: its newest binding, else the starting mapping.
    /// Out of line: [`read`](super::read), inlined where a variable is read, stays small.
    #[inline(never)]
    pub(super) fn get(&self, var: u64) -> Option<&Value> {
        if let Some(ext) = self.ext.as_deref() {
            if let Some(slot) = ext.bindings.iter().rev().find(|b| b.var == var) {
                return Some(slot.value.get());
            }
        }
        self.start.get(var)
    }

    /// The frame's current mapping: O(1) unless its bindings changed since
    /// it was last taken, then O(variables) once.
    pub(super) fn mapping(&self) -> Mapping {
        match self.ext.as_deref() {
            Some(ext) => ext.mapping(&self.start),
            None => self.start.clone(),
        }
    }

    /// [`get`](Frame::get) as it will be once the removals deferred by
    /// `gone` are applied, for a read that cannot apply them (a `with`
    /// callback holds the frame).
    pub(super) fn get_settled(&self, var: u64, gone: &[u64]) -> Option<&Value> {
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
    pub(super) fn mapping_settled(&self, gone: &[u64]) -> Mapping {
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
    /// The slot of hook `id`, `entered` or suspended.
    #[inline(always)]
    fn new<H: Lifecycle>(id: u64, hook: H, entered: bool) -> HookSlot {
        HookSlot {
            id,
            hook: StoredHook::new(hook),
            flags: SlotFlags::new(entered),
        }
    }

    /// A hook that panicked is dropped as it is; others are dropped entered.
    fn into_removed(self, keep: Option<Keep>) -> Removed {
        Removed::Hook {
            hook: self.hook,
            entered: self.flags.drops_as_it_is(),
            keep,
        }
    }
}

impl FrameExt {
    #[inline]
    pub(super) fn bind(&mut self, var: u64, value: Stored) -> Registered {
        let id = self.new_id();
        self.bindings.push(Slot { id, var, value });
        // Its values are all held by the starting mapping or the older
        // bindings: dropping it runs no user code.
        self.current.set(None);
        (self.shared.clone(), id)
    }

    /// Whether hook `id` is the newest, entered, and no pass is calling the
    /// hooks (`pass`, the frame's): then its removal takes it out with
    /// [`Frame::pop_hook`], and it is dropped as it is, with nothing to
    /// resume first.
    #[inline]
    pub(super) fn newest_hook_is(&self, pass: &Pass, id: u64) -> bool {
        self.hooks.last().is_some_and(|last| {
            last.id == id && last.flags.get() == SlotFlags::ENTERED && !pass.calling()
        })
    }

    /// Removes the newest binding if it is `id` and dropping it runs no user
    /// code (a small value without drop glue that no snapshot took: the
    /// common `set` + drop); else leaves it to [`Frame::remove`].
    #[inline]
    pub(super) fn pop_trivial(&mut self, id: u64) -> bool {
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
    pub(super) fn mapping(&self, start: &Mapping) -> Mapping {
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

    /// Registers `hook`, entered, with a guard; `pass` is the frame's.
    #[inline]
    pub(super) fn add_hook<H: Lifecycle>(&mut self, pass: &Pass, hook: H) -> Registered {
        let id = self.push_hook(pass, hook, true);
        (self.shared.clone(), id)
    }

    /// Registers `hook`, `entered` or suspended; during a pass it waits
    /// aside, so that no slot moves while a hook is called in place. The
    /// slot is built where it goes: `H` is moved once, into it. The rare
    /// registration during a pass is out of line: in the same function, the
    /// hook was copied on its way to either list before the branch (7
    /// instructions a span guard, benches/icount.sh `span_guard_enter`).
    #[inline]
    fn push_hook<H: Lifecycle>(&mut self, pass: &Pass, hook: H, entered: bool) -> u64 {
        if pass.calling() {
            return self.push_added(pass, hook, entered);
        }
        let id = self.new_id();
        self.hooks.push(HookSlot::new(id, hook, entered));
        id
    }

    /// [`push_hook`](Self::push_hook) during a pass: the hook waits aside.
    #[cold]
    #[inline(never)]
    fn push_added<H: Lifecycle>(&mut self, pass: &Pass, hook: H, entered: bool) -> u64 {
        let id = self.new_id();
        pass.changed();
        self.added.push(HookSlot::new(id, hook, entered));
        id
    }

    /// Starts a pass over the hooks (see `run_hooks`), `pass` being the
    /// frame's; `None` if there are none, or a pass is under way. Through a
    /// shared reference: the pass does not take the frame's borrow flag
    /// (see `run_hooks`).
    #[inline(always)]
    pub(super) fn start_pass(&self, pass: &Pass) -> Option<Slots> {
        // Read before the flag is set: LLVM cannot tell that the store
        // leaves the list alone, and would read its length twice.
        let slots = Slots {
            first: self.hooks.as_ptr(),
            len: self.hooks.len(),
        };
        if slots.len == 0 || pass.calling() {
            return None;
        }
        pass.0.set(Pass::CALLING);
        Some(slots)
    }

    /// Keeps `p`, the panic of a hook during the pass, unless one is kept
    /// already: then `p` is handed back, to be dropped by the caller.
    pub(super) fn keep_panic(&self, p: Payload) -> Option<Payload> {
        match self.panicked.take() {
            None => {
                self.panicked.set(Some(p));
                None
            }
            first => {
                self.panicked.set(first);
                Some(p)
            }
        }
    }

    /// Takes the panic kept by [`keep_panic`](Self::keep_panic).
    pub(super) fn take_panic(&self) -> Option<Payload> {
        self.panicked.take()
    }

    fn apply_pass(&mut self) -> (Vec<Removed>, bool) {
        let mut gone = Vec::new();
        let mut i = 0;
        while i < self.hooks.len() {
            if self.hooks[i].flags.gone() {
                gone.push(self.hooks.remove(i).into_removed(None));
            } else {
                i += 1;
            }
        }
        gone.extend(self.kept.drain(..).map(Removed::Kept));
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
    pub(super) fn finish(self) -> Result<(), Payload> {
        match self {
            Removed::Nothing => Ok(()),
            Removed::Kept(keep) => catch(move || drop(keep)),
            mut removed @ Removed::Binding { .. } => {
                // A small value without drop glue, never shared (the common
                // case) is not worth the catch.
                if removed.drops_trivially() {
                    return Ok(());
                }
                catch(move || drop(removed))
            }
            Removed::Hook {
                mut hook,
                entered,
                keep,
            } => {
                // Mutant: a hook removed while suspended is dropped unresumed.
                #[cfg(spawn_hooks_mutant = "drop_unresumed")]
                let entered = entered || true;
                let resumed = if entered {
                    Ok(())
                } else {
                    catch(|| hook.on_resume())
                };
                let dropped = catch(move || drop(hook));
                let released = keep.map_or(Ok(()), |keep| Removed::Kept(keep).finish());
                resumed.and(dropped).and(released)
            }
        }
    }
}
