//! Futures that hold a `Binding` or a `HookGuard` across an await are `Send`,
//! so they can be spawned on a multi-thread runtime.

use rt_ext::{self as ctx, Lifecycle};

static V: ctx::Variable<u32> = ctx::Variable::new("v");

struct Noop;
impl Lifecycle for Noop {
    fn on_yield(&mut self) {}
    fn on_resume(&mut self) {}
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[test]
fn futures_holding_guards_across_awaits_are_send() {
    let rt = ctx::Runtime::new().unwrap();
    let out = rt.block_on(async {
        let task = assert_send(async {
            let binding = V.set(1);
            let hook = ctx::enter(Noop);
            tokio::task::yield_now().await;
            let seen = V.get();
            drop(hook);
            drop(binding);
            seen
        });
        ctx::spawn(task).await.unwrap()
    });
    assert_eq!(out, Some(1));
    // The guards, the framed future and the snapshot themselves.
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send::<ctx::Binding>();
    send::<ctx::HookGuard>();
    send::<ctx::Framed<std::future::Ready<()>>>();
    send_sync::<ctx::Snapshot>();
    send_sync::<ctx::Variable<std::cell::Cell<u8>>>();
}
