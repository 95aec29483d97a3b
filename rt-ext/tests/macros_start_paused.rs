//! `#[rt_ext::test(start_paused = true)]` (with the `test-util` feature):
//! tokio's paused clock, with the body framed as in any rt-ext test.

use std::time::{Duration, Instant};

use rt_ext as ctx;

static REQUEST: ctx::Variable<u64> = ctx::Variable::new("request");

#[rt_ext::test(start_paused = true)]
async fn a_paused_clock_skips_sleeps_and_the_body_binds() {
    let _r = REQUEST.set(9);
    let wall = Instant::now();
    let virtual_start = tokio::time::Instant::now();
    let child = ctx::spawn(async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        REQUEST.get()
    });
    assert_eq!(child.await.unwrap(), Some(9));
    assert!(virtual_start.elapsed() >= Duration::from_secs(3600));
    assert!(
        wall.elapsed() < Duration::from_secs(60),
        "the clock was not paused"
    );
}

#[rt_ext::test(start_paused = false)]
async fn an_unpaused_clock_runs_in_real_time() {
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(wall.elapsed() >= Duration::from_millis(20));
}
