//! Inheritable hooks: what a spawn gives its child besides the context. The
//! child's hook starts suspended, is resumed before every poll (or before a
//! closure runs, or at a task frame's first entry) and yields after every
//! `Pending`, wraps the child's own hooks (resumes before them, yields after
//! them), and is always dropped entered: at the end, or resumed to be
//! dropped when the child is dropped unfinished.

mod support;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::Mutex;
use std::task::Poll;

use spawn_hooks::{
    enter, register, Inherit, Inheritance, Lifecycle, Registered, Snapshot, TaskFrame, Variable,
};
use support::{poll_once, yield_once, Log};

thread_local! {
    /// How many recording hooks are entered on this thread.
    static ENTERED: Cell<u32> = const { Cell::new(0) };
}

fn entered() -> u32 {
    ENTERED.with(Cell::get)
}

/// A hook that logs its calls and keeps [`ENTERED`] right.
struct Rec {
    name: &'static str,
    log: Log,
    entered: bool,
    panic_on_resume: bool,
}

impl Rec {
    fn suspended(name: &'static str, log: &Log) -> Rec {
        Rec {
            name,
            log: log.clone(),
            entered: false,
            panic_on_resume: false,
        }
    }

    /// Registered in a running frame: entered from the start.
    fn entered(name: &'static str, log: &Log) -> Rec {
        ENTERED.with(|e| e.set(e.get() + 1));
        let mut rec = Rec::suspended(name, log);
        rec.entered = true;
        rec
    }
}

impl Lifecycle for Rec {
    fn on_resume(&mut self) {
        assert!(!self.entered, "{}: resumed twice", self.name);
        if self.panic_on_resume {
            panic!("{} panics on resume", self.name);
        }
        self.entered = true;
        ENTERED.with(|e| e.set(e.get() + 1));
        self.log.push(format!("resume {}", self.name));
    }

    fn on_yield(&mut self) {
        assert!(self.entered, "{}: yielded twice", self.name);
        self.entered = false;
        ENTERED.with(|e| e.set(e.get() - 1));
        self.log.push(format!("yield {}", self.name));
    }
}

impl Drop for Rec {
    fn drop(&mut self) {
        let state = if self.entered { "entered" } else { "SUSPENDED" };
        if self.entered {
            ENTERED.with(|e| e.set(e.get() - 1));
        }
        self.log.push(format!("drop {} {state}", self.name));
    }
}

/// Gives every child a [`Rec`] named `name`, unless `off`.
struct Gives {
    name: &'static str,
    log: Log,
    panic_on_resume: bool,
}

impl Gives {
    fn new(name: &'static str, log: &Log) -> Gives {
        Gives {
            name,
            log: log.clone(),
            panic_on_resume: false,
        }
    }
}

impl Inherit for Gives {
    type Hook = Rec;

    fn child(&self, _: &Snapshot) -> Option<Rec> {
        self.log.push(format!("asked {}", self.name));
        let mut rec = Rec::suspended(self.name, &self.log);
        rec.panic_on_resume = self.panic_on_resume;
        Some(rec)
    }
}

static V: Variable<u32> = Variable::new("v");

#[test]
fn a_child_hook_starts_suspended_and_wraps_every_poll() {
    let log = Log::default();
    let body = log.clone();
    let child = V.sync_scope(1, || {
        Inheritance::capture(&Gives::new("h", &log)).scope(async move {
            body.push(format!("body {:?} entered {}", V.get(), entered()));
            yield_once().await;
            body.push(format!("body {:?} entered {}", V.get(), entered()));
        })
    });
    assert_eq!(log.take(), ["asked h"]);
    let mut child = pin!(child);
    assert_eq!(poll_once(child.as_mut()), Poll::Pending);
    assert_eq!(
        log.take(),
        ["resume h", "body Some(1) entered 1", "yield h"]
    );
    assert_eq!(entered(), 0);
    assert_eq!(poll_once(child.as_mut()), Poll::Ready(()));
    // Dropped entered as soon as the child finished, not with the task.
    assert_eq!(
        log.take(),
        ["resume h", "body Some(1) entered 1", "drop h entered"]
    );
    assert_eq!(entered(), 0);
}

#[test]
fn the_child_s_own_hooks_nest_inside_the_inherited_one() {
    let log = Log::default();
    let body = log.clone();
    let child = Inheritance::capture(&Gives::new("inherited", &log)).scope(async move {
        let _own = enter(Rec::entered("own", &body));
        yield_once().await;
        body.push("body");
    });
    log.take();
    let mut child = pin!(child);
    assert_eq!(poll_once(child.as_mut()), Poll::Pending);
    assert_eq!(
        log.take(),
        ["resume inherited", "yield own", "yield inherited"]
    );
    assert_eq!(poll_once(child.as_mut()), Poll::Ready(()));
    assert_eq!(
        log.take(),
        [
            "resume inherited",
            "resume own",
            "body",
            "drop own entered",
            "drop inherited entered"
        ]
    );
}

/// Logs, when dropped, how many recording hooks were entered.
struct Witness(Log);

impl Drop for Witness {
    fn drop(&mut self) {
        self.0
            .push(format!("future dropped, entered {}", entered()));
    }
}

#[test]
fn a_child_dropped_unfinished_drops_its_future_with_the_hook_resumed() {
    let log = Log::default();
    let witness = Witness(log.clone());
    let child = Inheritance::capture(&Gives::new("h", &log)).scope(async move {
        let _w = witness;
        yield_once().await;
    });
    log.take();
    let mut child = Box::pin(child);
    assert_eq!(poll_once(child.as_mut()), Poll::Pending);
    log.take();
    drop(child);
    assert_eq!(
        log.take(),
        ["resume h", "future dropped, entered 1", "drop h entered"]
    );
    assert_eq!(entered(), 0);
}

#[test]
fn a_child_never_polled_is_resumed_to_be_dropped() {
    let log = Log::default();
    let witness = Witness(log.clone());
    let child = Inheritance::capture(&Gives::new("h", &log)).scope(async move {
        let _w = witness;
    });
    log.take();
    drop(child);
    assert_eq!(
        log.take(),
        ["resume h", "future dropped, entered 1", "drop h entered"]
    );
}

#[test]
fn run_resumes_the_hook_around_the_closure_even_when_it_panics() {
    let log = Log::default();
    let inheritance = V.sync_scope(5, || Inheritance::capture(&Gives::new("h", &log)));
    let body = log.clone();
    let seen = std::thread::spawn(move || {
        inheritance.run(|| {
            body.push(format!("closure {:?} entered {}", V.get(), entered()));
            V.get()
        })
    })
    .join()
    .unwrap();
    assert_eq!(seen, Some(5));
    assert_eq!(
        log.take(),
        [
            "asked h",
            "resume h",
            "closure Some(5) entered 1",
            "drop h entered"
        ]
    );

    let inheritance = Inheritance::capture(&Gives::new("h", &log));
    let unwound = catch_unwind(AssertUnwindSafe(|| inheritance.run(|| panic!("boom"))));
    assert!(unwound.is_err());
    assert_eq!(log.take(), ["asked h", "resume h", "drop h entered"]);
    assert_eq!(entered(), 0);
}

#[test]
fn a_task_frame_resumes_the_hook_at_its_first_entry_and_drops_it_at_its_end() {
    let log = Log::default();
    let mut task: TaskFrame = V.sync_scope(3, || {
        Inheritance::capture(&Gives::new("h", &log)).task_frame()
    });
    assert_eq!(log.take(), ["asked h"]);
    for _ in 0..2 {
        task.enter().unwrap();
        assert_eq!((V.get(), entered()), (Some(3), 1));
        task.leave().unwrap();
        assert_eq!((V.get(), entered()), (None, 0));
    }
    assert_eq!(log.take(), ["resume h", "yield h", "resume h", "yield h"]);
    // Ended while suspended: resumed to be dropped.
    task.end().unwrap();
    assert_eq!(log.take(), ["resume h", "drop h entered"]);
    assert_eq!(entered(), 0);
}

#[test]
fn a_task_frame_never_entered_still_drops_its_hook_entered() {
    let log = Log::default();
    let task = Inheritance::capture(&Gives::new("h", &log)).task_frame();
    log.take();
    drop(task);
    assert_eq!(log.take(), ["resume h", "drop h entered"]);
}

#[test]
fn tuples_ask_in_order_and_nest_their_hooks() {
    let log = Log::default();
    let both = (Gives::new("a", &log), Gives::new("b", &log));
    let child = Inheritance::capture(&both).scope(async {
        yield_once().await;
    });
    let mut child = pin!(child);
    assert_eq!(poll_once(child.as_mut()), Poll::Pending);
    assert_eq!(poll_once(child.as_mut()), Poll::Ready(()));
    assert_eq!(
        log.take(),
        [
            "asked a",
            "asked b",
            "resume a",
            "resume b",
            "yield b",
            "yield a",
            "resume a",
            "resume b",
            "drop a entered",
            "drop b entered"
        ]
    );
}

#[test]
fn nothing_inherited_is_a_plain_frame() {
    let inheritance = V.sync_scope(9, || Inheritance::capture(&()));
    assert!(!inheritance.has_hook());
    assert_eq!(inheritance.snapshot().get(&V), Some(9));
    let got = futures::executor::block_on(inheritance.scope(async {
        yield_once().await;
        V.get()
    }));
    assert_eq!(got, Some(9));
}

#[test]
fn a_hook_that_panics_on_resume_is_dropped_and_the_panic_goes_on_from_the_poll() {
    let log = Log::default();
    let witness = Witness(log.clone());
    let gives = Gives {
        panic_on_resume: true,
        ..Gives::new("h", &log)
    };
    let child = Inheritance::capture(&gives).scope(async move {
        let _w = witness;
        yield_once().await;
    });
    log.take();
    let mut child = Box::pin(child);
    let unwound = catch_unwind(AssertUnwindSafe(|| poll_once(child.as_mut())));
    assert!(unwound.is_err());
    assert_eq!(log.take(), ["drop h SUSPENDED"]);
    // The hook is gone: the future is dropped without it.
    drop(child);
    assert_eq!(log.take(), ["future dropped, entered 0"]);
}

// ===== inheritors registered at run time =====

thread_local! {
    /// Whether the registered inheritors of this binary give hooks on this
    /// thread (other tests of the binary spawn nothing through them, but a
    /// registration is for the whole process).
    static GIVING: Cell<bool> = const { Cell::new(false) };
    /// Whether the hook the first registered inheritor gives panics on
    /// resume.
    static FIRST_PANICS: Cell<bool> = const { Cell::new(false) };
}

struct Registrable {
    name: &'static str,
    log: Mutex<Option<Log>>,
}

impl Inherit for Registrable {
    type Hook = Rec;

    fn child(&self, _: &Snapshot) -> Option<Rec> {
        if !GIVING.with(Cell::get) {
            return None;
        }
        let log = self.log.lock().unwrap().clone()?;
        log.push(format!("asked {}", self.name));
        let mut rec = Rec::suspended(self.name, &log);
        rec.panic_on_resume = self.name == "first" && FIRST_PANICS.with(Cell::get);
        Some(rec)
    }
}

static FIRST: Registrable = Registrable {
    name: "first",
    log: Mutex::new(None),
};
static SECOND: Registrable = Registrable {
    name: "second",
    log: Mutex::new(None),
};

/// The registered inheritors, each logging into its own log (tests that use
/// them run one at a time: they share the registry).
fn registered(log: &Log) -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    *FIRST.log.lock().unwrap() = Some(log.clone());
    *SECOND.log.lock().unwrap() = Some(log.clone());
    register(&FIRST);
    register(&SECOND);
    register(&FIRST); // again: nothing changes
    turn
}

#[test]
fn a_registered_hook_that_panics_is_dropped_the_others_resumed_and_all_dropped_entered() {
    let log = Log::default();
    let _turn = registered(&log);
    GIVING.with(|g| g.set(true));
    FIRST_PANICS.with(|p| p.set(true));
    let inheritance = Inheritance::capture(&Registered);
    GIVING.with(|g| g.set(false));
    FIRST_PANICS.with(|p| p.set(false));
    let mut child = Box::pin(inheritance.scope(async {
        yield_once().await;
    }));
    let err = catch_unwind(AssertUnwindSafe(|| poll_once(child.as_mut()))).unwrap_err();
    assert_eq!(
        err.downcast_ref::<String>().map(String::as_str),
        Some("first panics on resume")
    );
    assert_eq!(
        log.take(),
        [
            "asked first",
            "asked second",
            "drop first SUSPENDED",
            // The others still resume, then the child's inherited hooks go
            // (they are one hook), entered, and the panic goes on.
            "resume second",
            "drop second entered"
        ]
    );
    drop(child);
    assert_eq!(log.take(), Vec::<String>::new());
    assert_eq!(entered(), 0);
}

#[test]
fn registered_inheritors_are_asked_once_each_in_registration_order() {
    let log = Log::default();
    let _turn = registered(&log);
    GIVING.with(|g| g.set(true));
    let inheritance = Inheritance::capture(&Registered);
    GIVING.with(|g| g.set(false));
    assert!(inheritance.has_hook());
    let child = inheritance.scope(async {
        yield_once().await;
    });
    let mut child = pin!(child);
    assert_eq!(poll_once(child.as_mut()), Poll::Pending);
    assert_eq!(poll_once(child.as_mut()), Poll::Ready(()));
    assert_eq!(
        log.take(),
        [
            "asked first",
            "asked second",
            "resume first",
            "resume second",
            "yield second",
            "yield first",
            "resume first",
            "resume second",
            "drop first entered",
            "drop second entered"
        ]
    );
    // Where they give nothing, nothing is carried.
    assert!(!Inheritance::capture(&Registered).has_hook());
}
