//! `TaskFrame`, the frame an executor drives with enter/leave callbacks:
//! the protocol when used as documented, and what happens when an executor
//! breaks the rules (left out of order, moved to another thread while
//! entered, dropped while current): wrong contexts at worst, never a frame
//! freed while a thread still points to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use spawn_hooks::{enter, Lifecycle, Snapshot, TaskFrame, Variable};

static V: Variable<u32> = Variable::new("v");

type Log = Arc<Mutex<Vec<&'static str>>>;

struct Hook(Log);

impl Lifecycle for Hook {
    fn on_yield(&mut self) {
        self.0.lock().unwrap().push("yield");
    }
    fn on_resume(&mut self) {
        self.0.lock().unwrap().push("resume");
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.0.lock().unwrap().push("drop");
    }
}

fn frame_with(v: u32) -> TaskFrame {
    V.sync_scope(v, || TaskFrame::new(Snapshot::capture()))
}

#[test]
fn hooks_alternate_across_enter_and_leave_and_drop_entered() {
    let log: Log = Arc::default();
    let mut task = frame_with(1);
    task.enter().unwrap();
    let guard = enter(Hook(log.clone()));
    task.leave().unwrap();
    assert_eq!(V.get(), None);
    task.enter().unwrap();
    assert_eq!(V.get(), Some(1));
    task.leave().unwrap();
    task.end().unwrap();
    drop(guard); // after the end: nothing left to remove
    assert_eq!(
        *log.lock().unwrap(),
        ["yield", "resume", "yield", "resume", "drop"]
    );
}

#[test]
fn leaving_out_of_order_does_nothing_until_the_order_is_right() {
    let mut a = frame_with(1);
    let mut b = frame_with(2);
    a.enter().unwrap();
    b.enter().unwrap();
    // `a` is not the current frame: its leave is ignored.
    a.leave().unwrap();
    assert!(a.is_entered());
    assert_eq!(V.get(), Some(2));
    b.leave().unwrap();
    assert_eq!(V.get(), Some(1), "b restored a, which is still entered");
    a.leave().unwrap();
    assert_eq!(V.get(), None);
    assert!(!a.is_entered());
}

#[test]
fn a_frame_moved_to_another_thread_while_entered_is_leaked_not_freed() {
    let mut a = frame_with(7);
    a.enter().unwrap();
    let _bound = V.set(8);
    // The executor (wrongly) ends and drops it on another thread while this
    // thread still has it current.
    thread::spawn(move || {
        a.leave().unwrap(); // not current there: nothing
        a.end().unwrap(); // may be current elsewhere: leaked
        assert_eq!(V.get(), None, "the other thread's own frame is untouched");
    })
    .join()
    .unwrap();
    // This thread still reads the frame it entered: it was not freed.
    assert_eq!(V.get(), Some(8));
}

#[test]
fn dropping_a_current_frame_ends_it_and_restores_the_previous_one() {
    let log: Log = Arc::default();
    let _outer = V.set(1);
    let mut task = frame_with(5);
    task.enter().unwrap();
    let _hook = enter(Hook(log.clone()));
    assert_eq!(V.get(), Some(5));
    drop(task);
    assert_eq!(V.get(), Some(1));
    assert_eq!(*log.lock().unwrap(), ["drop"]);
}

#[test]
fn frames_can_be_entered_inside_a_with_callback() {
    let _outer = V.set(1);
    let (inside, nested) = V.with(|v| {
        let nested = Snapshot::empty().run(|| {
            let _b = V.set(3);
            V.get()
        });
        (v.copied(), nested)
    });
    assert_eq!((inside, nested), (Some(1), Some(3)));
    assert_eq!(V.get(), Some(1));
}

// ===== enter_paired / leave_paired =====

/// `enter_paired` with `tag`, for the tests below: each leaves (or ends) on
/// this thread what it enters this way, nested, without moving the task, and
/// with a tag of its own per open entry.
fn enter_paired(task: &mut TaskFrame, tag: u64) {
    // SAFETY: see above; the callers keep the contract.
    unsafe { TaskFrame::enter_paired(task, tag) }.unwrap();
}

/// `leave_paired` of the entry with `tag`, made by the test on this thread
/// with every entry made since left.
fn leave_paired(tag: u64) {
    // SAFETY: see above; the callers keep the contract.
    unsafe { TaskFrame::leave_paired(tag) }.unwrap();
}

#[test]
fn paired_entries_run_the_protocol_like_enter_and_leave() {
    let log: Log = Arc::default();
    let _outer = V.set(1);
    let mut task = frame_with(2);
    enter_paired(&mut task, 1);
    assert!(task.is_entered());
    assert_eq!(V.get(), Some(2));
    let guard = enter(Hook(log.clone()));
    leave_paired(1);
    assert!(!task.is_entered());
    assert_eq!(V.get(), Some(1));
    enter_paired(&mut task, 1);
    assert_eq!(V.get(), Some(2));
    drop(guard);
    leave_paired(1);
    assert_eq!(V.get(), Some(1));
    assert_eq!(*log.lock().unwrap(), ["yield", "resume", "drop"]);
}

#[test]
fn leaving_a_paired_entry_needs_its_tag() {
    let mut task = frame_with(4);
    enter_paired(&mut task, 1);
    leave_paired(2); // not this entry's tag (its task ended, say): nothing
    assert_eq!(V.get(), Some(4));
    leave_paired(1);
    assert_eq!(V.get(), None);
    leave_paired(1); // left already: nothing
    assert_eq!(V.get(), None);
}

#[test]
fn a_frame_with_hooks_is_claimed_until_its_paired_entry_is_left() {
    let log: Log = Arc::default();
    let mut task = frame_with(5);
    enter_paired(&mut task, 1);
    let _hook = enter(Hook(log.clone()));
    leave_paired(1);
    // Released at the end of the leave: the next entry does not wait.
    enter_paired(&mut task, 1);
    leave_paired(1);

    // Claimed while entered: another thread's wait returns only once the
    // entry is left.
    enter_paired(&mut task, 1);
    let at = &task as *const TaskFrame as usize;
    let waiting = Arc::new(AtomicBool::new(false));
    let left = Arc::new(AtomicBool::new(false));
    let waiter = thread::spawn({
        let (waiting, left) = (waiting.clone(), left.clone());
        move || {
            // SAFETY: `task` outlives this thread (joined below), and only
            // its claim word is read.
            assert!(unsafe { TaskFrame::is_claimed(at as *const TaskFrame) });
            waiting.store(true, Ordering::Release);
            // SAFETY: as above.
            unsafe { TaskFrame::wait_unclaimed(at as *const TaskFrame) };
            left.load(Ordering::Acquire)
        }
    });
    // The waiter found the frame claimed and is waiting (or about to).
    while !waiting.load(Ordering::Acquire) {
        thread::yield_now();
    }
    thread::sleep(std::time::Duration::from_millis(20));
    left.store(true, Ordering::Release);
    leave_paired(1);
    assert!(
        waiter.join().unwrap(),
        "the wait returned before the entry was left"
    );
}

#[test]
fn paired_entries_nest_with_each_other_and_with_scoped_frames() {
    let _outer = V.set(1);
    let mut a = frame_with(10);
    let mut b = frame_with(20);
    enter_paired(&mut a, 1);
    let inner = Snapshot::empty().run(|| {
        // A paired entry inside a scoped frame inside a paired entry.
        enter_paired(&mut b, 2);
        let seen = V.get();
        leave_paired(2);
        (seen, V.get())
    });
    assert_eq!(inner, (Some(20), None));
    assert_eq!(V.get(), Some(10));
    leave_paired(1);
    assert_eq!(V.get(), Some(1));

    // Directly nested, twice over, then entered again: the saved frames
    // come back in order each time.
    for _ in 0..2 {
        enter_paired(&mut a, 1);
        enter_paired(&mut b, 2);
        assert_eq!(V.get(), Some(20));
        leave_paired(2);
        assert_eq!(V.get(), Some(10));
        leave_paired(1);
        assert_eq!(V.get(), Some(1));
    }
}

#[test]
fn ending_a_paired_entry_restores_the_frames_around_it() {
    let log: Log = Arc::default();
    let _outer = V.set(1);
    let mut a = frame_with(10);
    let mut b = frame_with(20);
    enter_paired(&mut a, 1);
    enter_paired(&mut b, 2);
    let _hook = enter(Hook(log.clone()));
    // The task ends inside its poll (as a completed tokio task does).
    b.end().unwrap();
    assert_eq!(*log.lock().unwrap(), ["drop"]);
    assert_eq!(V.get(), Some(10));
    leave_paired(2); // its entry is gone: nothing
    assert_eq!(V.get(), Some(10));
    leave_paired(1);
    assert_eq!(V.get(), Some(1));
}

#[test]
fn plain_calls_ignore_a_paired_entry() {
    let mut task = frame_with(3);
    enter_paired(&mut task, 1);
    task.enter().unwrap(); // entered already: nothing
    task.leave().unwrap(); // not entered with `enter`: nothing
    assert_eq!(V.get(), Some(3));
    leave_paired(1);
    assert_eq!(V.get(), None);
}
