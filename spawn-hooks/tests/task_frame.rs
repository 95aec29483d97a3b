//! `TaskFrame`, the frame an executor drives with enter/leave callbacks:
//! the protocol when used as documented, and what happens when an executor
//! breaks the rules (left out of order, moved to another thread while
//! entered, dropped while current): wrong contexts at worst, never a frame
//! freed while a thread still points to it.

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

/// `enter_paired`, for the tests below: each leaves (or ends) on this thread
/// what it enters this way, nested, without moving the task.
fn enter_paired(task: &mut TaskFrame) {
    // SAFETY: see above; the callers keep the contract.
    unsafe { task.enter_paired() }.unwrap();
}

/// `leave_paired` of a task the test entered with `enter_paired` on this
/// thread, with every frame entered since left.
fn leave_paired(task: &mut TaskFrame) {
    // SAFETY: see above; the callers keep the contract.
    unsafe { task.leave_paired() }.unwrap();
}

#[test]
fn paired_entries_run_the_protocol_like_enter_and_leave() {
    let log: Log = Arc::default();
    let _outer = V.set(1);
    let mut task = frame_with(2);
    enter_paired(&mut task);
    assert!(task.is_entered());
    assert_eq!(V.get(), Some(2));
    let guard = enter(Hook(log.clone()));
    leave_paired(&mut task);
    assert!(!task.is_entered());
    assert_eq!(V.get(), Some(1));
    enter_paired(&mut task);
    assert_eq!(V.get(), Some(2));
    drop(guard);
    leave_paired(&mut task);
    assert_eq!(V.get(), Some(1));
    assert_eq!(*log.lock().unwrap(), ["yield", "resume", "drop"]);
}

#[test]
fn paired_entries_nest_with_each_other_and_with_scoped_frames() {
    let _outer = V.set(1);
    let mut a = frame_with(10);
    let mut b = frame_with(20);
    enter_paired(&mut a);
    let inner = Snapshot::empty().run(|| {
        // A paired entry inside a scoped frame inside a paired entry.
        enter_paired(&mut b);
        let seen = V.get();
        leave_paired(&mut b);
        (seen, V.get())
    });
    assert_eq!(inner, (Some(20), None));
    assert_eq!(V.get(), Some(10));
    leave_paired(&mut a);
    assert_eq!(V.get(), Some(1));

    // Directly nested, twice over, then entered again: the saved frames
    // come back in order each time.
    for _ in 0..2 {
        enter_paired(&mut a);
        enter_paired(&mut b);
        assert_eq!(V.get(), Some(20));
        leave_paired(&mut b);
        assert_eq!(V.get(), Some(10));
        leave_paired(&mut a);
        assert_eq!(V.get(), Some(1));
    }
}

#[test]
fn ending_a_paired_entry_restores_the_frames_around_it() {
    let log: Log = Arc::default();
    let _outer = V.set(1);
    let mut a = frame_with(10);
    let mut b = frame_with(20);
    enter_paired(&mut a);
    enter_paired(&mut b);
    let _hook = enter(Hook(log.clone()));
    // The task ends inside its poll (as a completed tokio task does).
    b.end().unwrap();
    assert_eq!(*log.lock().unwrap(), ["drop"]);
    assert_eq!(V.get(), Some(10));
    leave_paired(&mut a);
    assert_eq!(V.get(), Some(1));
    // The thread's pairing is back to empty: a new paired entry works.
    enter_paired(&mut b);
    leave_paired(&mut b);
    assert_eq!(V.get(), Some(1));
}

#[test]
fn paired_and_plain_calls_mix() {
    let mut task = frame_with(3);
    enter_paired(&mut task);
    assert!(task.is_entered());
    task.enter().unwrap(); // entered already: nothing
    assert_eq!(V.get(), Some(3));
    task.leave().unwrap(); // a plain leave of a paired entry
    assert!(!task.is_entered());
    assert_eq!(V.get(), None);
    task.enter().unwrap();
    leave_paired(&mut task); // and the other way round
    assert_eq!(V.get(), None);
}
