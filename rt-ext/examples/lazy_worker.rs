//! Long-lived work started lazily, by whichever request comes first: a
//! batcher that collects log lines and flushes them. Started inside that
//! request's context, it would keep the request's id for as long as it runs,
//! and every flush would be logged as that request's. `ctx::detached` starts
//! it from an empty context instead, in one line.
//!
//! ```sh
//! cargo run -p rt-ext --example lazy_worker
//! ```
//!
//! The same holds, and matters more, in runtime-hook mode (`--cfg
//! tokio_unstable`), where a library's own plain `tokio::spawn` inherits
//! too: wrap the library call that starts the work, as `Batcher::start` is
//! wrapped here.

use std::sync::{Mutex, OnceLock};

use rt_ext as ctx;
use tokio::sync::mpsc;

static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");

/// A stand-in for a library's batching client: `start` spawns its worker.
pub(crate) struct Batcher {
    lines: mpsc::UnboundedSender<String>,
}

/// What each flush saw as its request id, for the demo and its test.
pub(crate) static FLUSHES: Mutex<Vec<(usize, Option<u64>)>> = Mutex::new(Vec::new());

impl Batcher {
    fn start() -> Batcher {
        let (lines, mut rx) = mpsc::unbounded_channel::<String>();
        ctx::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                // Logged in the worker's own context, not a request's.
                println!(
                    "flush of {} lines, request_id={:?}",
                    batch.len(),
                    REQUEST_ID.get()
                );
                FLUSHES
                    .lock()
                    .unwrap()
                    .push((batch.len(), REQUEST_ID.get()));
            }
        });
        Batcher { lines }
    }

    fn record(&self, line: String) {
        let _ = self.lines.send(line);
    }
}

static BATCHER: OnceLock<Batcher> = OnceLock::new();

/// The batcher, started on first use outside the caller's context.
fn batcher() -> &'static Batcher {
    BATCHER.get_or_init(|| ctx::detached(Batcher::start))
}

async fn handle(id: u64) {
    let _id = REQUEST_ID.set(id);
    tokio::task::yield_now().await;
    batcher().record(format!("request {:?} handled", REQUEST_ID.get()));
}

#[rt_ext::main]
pub(crate) async fn main() {
    for round in 0..3u64 {
        let requests: Vec<_> = (1..=4)
            .map(|n| ctx::spawn(handle(round * 10 + n)))
            .collect();
        for r in requests {
            r.await.unwrap();
        }
        // Let the worker flush what this round recorded.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
