//! Named scopes: the chain follows spawns, never flows back to the parent,
//! is undone by its guard, and stays bounded.
#![cfg(feature = "propagation")]

use rt_ext::{self as ctx, FutureExt as _, ScopeChain, MAX_SCOPE_CHAIN};

fn names(chain: &ScopeChain) -> Vec<String> {
    chain.iter().map(String::from).collect()
}

#[test]
fn spawned_work_inherits_the_chain_and_adds_to_its_own() {
    let rt = ctx::Runtime::new().unwrap();
    rt.block_on(ctx::named("request", async {
        let task = ctx::spawn(ctx::named("task", async { ctx::scope_chain() }));
        let blocking = ctx::spawn_blocking(ctx::scope_chain);
        let thread = ctx::thread::spawn(ctx::scope_chain);
        assert_eq!(names(&task.await.unwrap()), ["request", "task"]);
        assert_eq!(names(&blocking.await.unwrap()), ["request"]);
        assert_eq!(names(&thread.join().unwrap()), ["request"]);
        // the child's name never reaches the parent
        assert_eq!(names(&ctx::scope_chain()), ["request"]);
    }));
}

#[test]
fn the_guard_form_lasts_across_awaits_until_dropped() {
    let rt = ctx::Runtime::new().unwrap();
    rt.block_on(async {
        let outer = ctx::push_scope("outer");
        let inner = ctx::push_scope("inner");
        tokio::task::yield_now().await;
        assert_eq!(ctx::scope_chain().to_string(), "outer > inner");
        let seen = ctx::spawn(async { ctx::scope_chain() }).await.unwrap();
        assert_eq!(seen.to_string(), "outer > inner");
        drop(inner);
        assert_eq!(ctx::scope_chain().to_string(), "outer");
        drop(outer);
        assert!(ctx::scope_chain().is_empty());
    });
}

#[test]
fn branches_with_their_own_frames_have_their_own_names() {
    let rt = ctx::Runtime::new().unwrap();
    rt.block_on(ctx::named("join", async {
        let left = ctx::named("left", async {
            tokio::task::yield_now().await;
            ctx::scope_chain()
        });
        let right = async {
            let _s = ctx::push_scope("right");
            tokio::task::yield_now().await;
            ctx::scope_chain()
        }
        .frame();
        let (l, r) = tokio::join!(left, right);
        assert_eq!(l.to_string(), "join > left");
        assert_eq!(r.to_string(), "join > right");
    }));
}

#[test]
fn unframed_code_gets_an_error_not_a_leak() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        assert!(ctx::try_push_scope("refused").is_err());
        // `named` makes its own frame, so it works anywhere
        let chain = ctx::named("framed", async { ctx::scope_chain() }).await;
        assert_eq!(chain.to_string(), "framed");
        assert!(ctx::scope_chain().is_empty());
    });
}

#[test]
fn deep_nesting_keeps_the_newest_names() {
    fn nest(
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ScopeChain> + Send>> {
        Box::pin(async move {
            if depth == 0 {
                ctx::scope_chain()
            } else {
                ctx::named(format!("level{depth}"), nest(depth - 1)).await
            }
        })
    }
    let rt = ctx::Runtime::new().unwrap();
    let chain = rt.block_on(nest(100));
    assert_eq!(chain.len(), MAX_SCOPE_CHAIN);
    assert_eq!(chain.iter().next(), Some("level32"));
    assert_eq!(chain.last(), Some("level1"));
}
