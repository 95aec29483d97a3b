//! A tour of rt-ext: context that follows the execution, and hooks that keep
//! a guard right across awaits.
//!
//! Run it with `cargo run -p rt-ext --example tour`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rt_ext::{self as ctx, FutureExt as _};

/// Two context variables. A `Variable` is a key; each task sees its own value.
static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
static USER: ctx::Variable<&'static str> = ctx::Variable::new("user");

fn worker() -> String {
    let t = thread::current();
    t.name()
        .map(String::from)
        .unwrap_or_else(|| format!("{:?}", t.id()))
}

/// A hook standing in for a tracing span guard: "entered" while its task
/// runs on a thread, "exited" whenever the task is suspended.
struct SpanLike {
    name: &'static str,
}

impl ctx::Lifecycle for SpanLike {
    fn on_yield(&mut self) {
        println!(
            "    [{}] exit  on {} (request {:?})",
            self.name,
            worker(),
            REQUEST_ID.get()
        );
    }
    fn on_resume(&mut self) {
        println!(
            "    [{}] enter on {} (request {:?})",
            self.name,
            worker(),
            REQUEST_ID.get()
        );
    }
}

fn main() {
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("worker")
        .thread_name_fn(|| {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            format!("worker-{}", N.fetch_add(1, Ordering::Relaxed))
        })
        .enable_all()
        .build()
        .expect("a runtime");

    rt.block_on(async {
        println!("1. Inheritance: spawned work starts with the spawner's context");
        let _id = REQUEST_ID.set(42);
        let _user = USER.set("ada");
        let task = ctx::spawn(async { (REQUEST_ID.get(), USER.get()) });
        println!("   ctx::spawn          sees {:?}", task.await.unwrap());
        let blocking = ctx::spawn_blocking(|| (REQUEST_ID.get(), USER.get()));
        println!("   ctx::spawn_blocking sees {:?}", blocking.await.unwrap());
        let os_thread = ctx::thread::spawn(|| (REQUEST_ID.get(), USER.get()));
        println!("   ctx::thread::spawn  sees {:?}", os_thread.join().unwrap());
        let nested = ctx::spawn(async { ctx::spawn(async { USER.get() }).await.unwrap() });
        println!("   a grandchild        sees {:?}", nested.await.unwrap());

        println!("\n2. Isolation: a child's bindings never reach its parent");
        let child = ctx::spawn(async {
            let _mine = USER.set("grace");
            USER.get()
        });
        println!("   the child bound    {:?}", child.await.unwrap());
        println!("   the parent still has {:?}", USER.get());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let late = ctx::spawn(async move {
            rx.await.unwrap();
            USER.get()
        });
        {
            let _later = USER.set("linus");
            tx.send(()).unwrap();
            println!(
                "   the parent rebinds to {:?} after spawning; the child still sees {:?}",
                USER.get(),
                late.await.unwrap()
            );
        }

        println!("\n3. Snapshots: capture now, restore later, anywhere");
        let snapshot = ctx::Snapshot::capture();
        let _other = REQUEST_ID.set(7);
        println!("   now: request {:?}", REQUEST_ID.get());
        println!(
            "   in the snapshot: request {:?}",
            snapshot.run(|| REQUEST_ID.get())
        );
        let callback = snapshot.wrap(|what: &str| format!("{what} for request {:?}", REQUEST_ID.get()));
        let from_thread = thread::spawn(move || callback("a callback run on a plain thread"));
        println!("   {}", from_thread.join().unwrap());

        println!("\n4. Hooks: exit on every suspension, re-enter on resume, on whatever worker");
        // Neighbours that keep blocking their worker now and then, so the
        // tasks below get stolen by the other worker.
        let stop = Arc::new(AtomicBool::new(false));
        let neighbours: Vec<_> = (0..2)
            .map(|_| {
                let s = stop.clone();
                ctx::spawn(async move {
                    while !s.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_millis(1)); // hogs its worker
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let mut tasks = Vec::new();
        for (name, id) in [("span-a", 100), ("span-b", 200)] {
            tasks.push(ctx::spawn(async move {
                let _id = REQUEST_ID.set(id);
                let _span = ctx::enter(SpanLike { name });
                let mut moved = 0;
                for step in 0..5 {
                    let before = worker();
                    // Back in its worker's queue, behind a neighbour that
                    // blocks that worker: the idle worker steals the task.
                    tokio::task::yield_now().await;
                    let after = worker();
                    moved += usize::from(before != after);
                    println!("    [{name}] step {step}: suspended on {before}, resumed on {after}");
                }
                moved
            }));
        }
        let mut migrations = 0;
        for t in tasks {
            migrations += t.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for n in neighbours {
            n.await.unwrap();
        }
        println!("   the tasks changed worker {migrations} time(s); every exit/enter ran on the polling worker");

        println!("\n5. Frames: branches of a join! share their task's frame unless framed");
        let left = async {
            let _b = USER.set("left");
            tokio::task::yield_now().await;
            USER.get()
        };
        let right = async {
            tokio::task::yield_now().await;
            USER.get()
        };
        let (l, r) = tokio::join!(left.frame(), right.frame());
        println!("   framed branches see {l:?} and {r:?}");
    });
    println!(
        "\nOutside the runtime, the main thread's context is untouched: {:?}",
        USER.get()
    );
}
