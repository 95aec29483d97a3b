//! The current frame: a thread-local pointer to the frame of the innermost
//! poll (or closure) running on the thread, null for the thread's base
//! frame, and the per-thread tokens that tell a frame's guards on which
//! thread it is entered.

use std::cell::{Cell, RefCell};
use std::ptr;

use super::{Frame, FramePtr};
use crate::sync::thread_local;

thread_local! {
    // The current frame, or null for the base frame. Const-initialized and
    // without destructor: reading it is a plain thread-local load, and it
    // stays readable while the thread's other thread-locals are destroyed.
    // (The shim's loom version of the macro unwraps the `const` blocks.)
    static CURRENT: Cell<FramePtr> = const { Cell::new(ptr::null()) };
    // The thread's base frame, for code that runs outside any frame.
    static BASE: RefCell<Frame> = const { RefCell::new(Frame::base()) };
}

/// Calls `f` with the current frame; `None` when it is the base frame and the
/// thread's base frame is already destroyed (the thread is exiting).
#[inline]
pub(super) fn with_current<R>(f: impl FnOnce(&RefCell<Frame>) -> R) -> Option<R> {
    match current_framed() {
        Some(cell) => Some(f(cell)),
        None => BASE.try_with(f).ok(),
    }
}

/// The current frame, unless it is the thread's base frame. Private to the
/// frame module: callers use the reference at once, within the installation
/// of the frame.
#[inline]
pub(super) fn current_framed<'a>() -> Option<&'a RefCell<Frame>> {
    let current = current_ptr();
    if current.is_null() {
        return None;
    }
    // SAFETY: a non-null `CURRENT` was stored by `install` from a reference
    // to a frame whose owner keeps it in place, alive, until `uninstall` has
    // put the previous pointer back: `Entered` borrows its frame for its whole
    // life and uninstalls in `leave` or `Drop` (it is never leaked while
    // installed);
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
fn current_ptr() -> FramePtr {
    CURRENT.with(Cell::get)
}

/// Makes `frame` the current frame; returns the one that was.
#[inline(always)]
pub(super) fn replace(frame: FramePtr) -> FramePtr {
    CURRENT.with(|c| c.replace(frame))
}

/// Makes `frame` the current frame again.
#[inline(always)]
pub(super) fn set(frame: FramePtr) {
    CURRENT.with(|c| c.set(frame));
}

/// [`is_current`] from an address alone.
#[inline]
pub(crate) fn is_current_ptr(frame: FramePtr) -> bool {
    ptr::eq(current_ptr(), frame)
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
pub(super) fn thread_token() -> usize {
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
