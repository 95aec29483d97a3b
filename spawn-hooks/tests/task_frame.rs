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
