//! The example service (`examples/axum_service.rs`) on loopback: 200
//! concurrent requests with distinct ids, through a real HTTP client; each
//! id is seen by every piece of work of its own request (the handler and
//! each rt-ext spawn path) and by nothing of another's; the requests
//! overlapped. And the example's own `main` runs and ends by itself.

#[allow(dead_code)]
#[path = "../examples/axum_service.rs"]
mod axum_service;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use rt_ext as ctx;

use axum_service::{PATHS, QUIET};

const REQUESTS: u64 = 200;

#[derive(Clone, Default)]
struct InFlight {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

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
    let rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let in_flight = InFlight::default();
    let counted = in_flight.clone();
    // Outermost, around the example's app: counts requests being served.
    let app =
        axum_service::app().layer(middleware::from_fn(move |request: Request, next: Next| {
            let counted = counted.clone();
            async move {
                let now = counted.now.fetch_add(1, Ordering::SeqCst) + 1;
                counted.most.fetch_max(now, Ordering::SeqCst);
                let response: Response = next.run(request).await;
                counted.now.fetch_sub(1, Ordering::SeqCst);
                response
            }
        }));
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = ctx::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        let client = axum_service::client();
        let requests: Vec<_> = (0..REQUESTS)
            .map(|n| {
                let client = client.clone();
                let id = 7_000 + n;
                ctx::spawn(async move { (id, axum_service::get_work(&client, addr, id).await) })
            })
            .collect();
        let all = tokio::time::timeout(Duration::from_secs(60), async {
            let mut all = Vec::new();
            for r in requests {
                all.push(r.await.unwrap());
            }
            all
        })
        .await
        .expect("200 requests did not finish in 60 s");
        for (id, body) in &all {
            let body = body
                .as_ref()
                .unwrap_or_else(|e| panic!("request {id}: {e}"));
            check_body(*id, body);
        }
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server did not stop")
            .unwrap()
            .unwrap();
    });
    let most = in_flight.most.load(Ordering::SeqCst);
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
