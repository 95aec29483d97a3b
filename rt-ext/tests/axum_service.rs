//! The example service (`examples/axum_service.rs`) on loopback: 200
//! concurrent requests with distinct ids, through a real HTTP client; each
//! id is seen by every piece of work of its own request (the handler and
//! each rt-ext spawn path) and by nothing of another's; the requests
//! overlapped. And the example's own `main` runs and ends by itself.

#[allow(dead_code)]
#[path = "../examples/axum_service.rs"]
mod axum_service;
mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};

use axum_service::{PATHS, QUIET};
use support::http::{runtime, send_concurrently, InFlight, Server};

const REQUESTS: u64 = 200;

/// Checks one response body: a line per path, each with the request's id.
fn check_body(id: u64, body: &str) {
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), PATHS.len(), "request {id}: {body}");
    for (line, path) in lines.iter().zip(PATHS) {
        assert_eq!(
            *line,
            format!("request_id={id} path={path}"),
            "request {id}, {path}: {body}"
        );
    }
}

#[test]
fn two_hundred_concurrent_requests_each_see_only_their_own_id() {
    QUIET.store(true, Ordering::Relaxed);
    // What `#[rt_ext::main]` builds: an rt-ext multi-thread runtime.
    let rt = runtime();
    let in_flight = InFlight::default();
    let counted = in_flight.clone();
    // Outermost, around the example's app: counts requests being served.
    let app =
        axum_service::app().layer(middleware::from_fn(move |request: Request, next: Next| {
            let counted = counted.clone();
            async move { counted.count(next.run(request)).await }
        }));
    rt.block_on(async {
        let server = Server::start(app).await;
        let (client, addr) = (axum_service::client(), server.addr);
        let all = send_concurrently(REQUESTS, |n| {
            let client = client.clone();
            let id = 7_000 + n;
            async move { (id, axum_service::get_work(&client, addr, id).await) }
        })
        .await;
        for (id, body) in &all {
            let body = body
                .as_ref()
                .unwrap_or_else(|e| panic!("request {id}: {e}"));
            check_body(*id, body);
        }
        server.stop().await;
    });
    let most = in_flight.most();
    assert!(most > 1, "the requests never overlapped ({most} at most)");
}

#[test]
fn the_example_main_serves_its_demo_requests_and_exits() {
    QUIET.store(true, Ordering::Relaxed);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(axum_service::main().map_err(|e| e.to_string()));
    });
    let result = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the example did not end within 60 s");
    assert_eq!(result, Ok(()));
}
