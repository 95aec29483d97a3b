//! `rt_ext::tower::FrameLayer` around an axum app served by `axum::serve` on
//! a plain tokio runtime (connection tasks spawned with plain `tokio::spawn`,
//! unframed): a `from_fn` middleware binds each request's id with `set`;
//! 1,000 requests over 4 keep-alive connections, overlapping, each see their
//! own id only, in the middleware, the handler and a spawned task, and never
//! a binding left by the previous request on the connection.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rt_ext as ctx;

static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");

const CONNECTIONS: u64 = 4;
const PER_CONNECTION: u64 = 250;

#[derive(Clone, Default)]
struct Stats {
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
    peers: Arc<Mutex<HashSet<SocketAddr>>>,
}

/// The middleware a user writes: read the id, bind it, call the rest.
async fn request_id(State(stats): State<Stats>, request: Request, next: Next) -> Response {
    let left_over = REQUEST_ID.get();
    let id: u64 = request.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        stats.peers.lock().unwrap().insert(*peer);
    }
    let _id = REQUEST_ID.set(id);
    let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stats.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let mut response = next.run(request).await;
    stats.in_flight.fetch_sub(1, Ordering::SeqCst);
    let after = REQUEST_ID.get();
    let headers = response.headers_mut();
    headers.insert("x-left-over", format!("{left_over:?}").parse().unwrap());
    headers.insert("x-after", format!("{after:?}").parse().unwrap());
    response
}

async fn handler() -> String {
    // Suspend so that requests on other connections run meanwhile.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let in_handler = REQUEST_ID.get();
    let in_task = ctx::spawn(async {
        tokio::task::yield_now().await;
        REQUEST_ID.get()
    })
    .await
    .unwrap();
    format!("{in_handler:?} {in_task:?}")
}

async fn client(addr: SocketAddr, connection: u64) -> Vec<(u64, String, String, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(conn);
    let mut seen = Vec::new();
    for n in 0..PER_CONNECTION {
        let id = connection * 10_000 + n;
        sender.ready().await.unwrap();
        let request = hyper::Request::get("/")
            .header("host", "localhost")
            .header("x-request-id", id.to_string())
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200, "request {id}");
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
        let (left_over, after) = (header("x-left-over"), header("x-after"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        seen.push((
            id,
            String::from_utf8(body.to_vec()).unwrap(),
            left_over,
            after,
        ));
    }
    drop(sender);
    driver.await.unwrap().unwrap();
    seen
}

#[test]
fn a_binding_middleware_serves_keep_alive_requests_each_in_its_own_context() {
    // A plain tokio runtime: the connection tasks `axum::serve` spawns are
    // unframed, and only the layer gives each request a frame.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats = Stats::default();
    let app = Router::new()
        .route("/", get(handler))
        .layer(middleware::from_fn_with_state(stats.clone(), request_id))
        .layer(ctx::tower::FrameLayer::new());
    let results = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        let server = tokio::spawn(async move { serve.await });
        let clients = (0..CONNECTIONS).map(|c| tokio::spawn(client(addr, c)));
        let all = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(clients))
            .await
            .expect("the requests did not finish in 60 s");
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server did not stop")
            .unwrap()
            .unwrap();
        all.into_iter().flat_map(|r| r.unwrap()).collect::<Vec<_>>()
    });

    assert_eq!(results.len() as u64, CONNECTIONS * PER_CONNECTION);
    for (id, body, left_over, after) in &results {
        assert_eq!(body, &format!("Some({id}) Some({id})"), "request {id}");
        assert_eq!(left_over, "None", "request {id} saw an earlier binding");
        assert_eq!(after, &format!("Some({id})"), "request {id}");
    }
    let peers = stats.peers.lock().unwrap().len();
    assert_eq!(
        peers as u64, CONNECTIONS,
        "the connections were not kept alive"
    );
    let most = stats.most_in_flight.load(Ordering::SeqCst);
    assert!(most > 1, "the requests never overlapped ({most} at most)");
}

/// A hook entered while serving a request: on the connection's task,
/// requests served one after the other each enter their own, it alternates
/// across the request's awaits, and it is gone (dropped entered) when the
/// request ends, before the next request on the same service starts.
#[test]
fn a_hook_entered_in_a_request_lives_and_ends_with_it() {
    use std::sync::atomic::AtomicBool;
    use tower::{service_fn, Layer as _, Service as _, ServiceExt as _};

    struct Request {
        events: Arc<Mutex<Vec<(u64, &'static str)>>>,
        id: u64,
        entered: bool,
    }
    impl ctx::Lifecycle for Request {
        fn on_yield(&mut self) {
            assert!(self.entered, "on_yield twice");
            self.entered = false;
            self.events.lock().unwrap().push((self.id, "yield"));
        }
        fn on_resume(&mut self) {
            assert!(!self.entered, "on_resume twice");
            self.entered = true;
            self.events.lock().unwrap().push((self.id, "resume"));
        }
    }
    impl Drop for Request {
        fn drop(&mut self) {
            let what = if self.entered {
                "dropped entered"
            } else {
                "dropped"
            };
            self.events.lock().unwrap().push((self.id, what));
        }
    }

    let events = Arc::new(Mutex::new(Vec::new()));
    let in_request = Arc::new(AtomicBool::new(false));
    let (e, busy) = (events.clone(), in_request.clone());
    let service = ctx::tower::FrameLayer::new().layer(service_fn(move |id: u64| {
        let (events, busy) = (e.clone(), busy.clone());
        async move {
            assert!(!busy.swap(true, Ordering::SeqCst), "requests overlapped");
            let _hook = ctx::enter(Request {
                events,
                id,
                entered: true,
            });
            let _id = REQUEST_ID.set(id);
            for _ in 0..2 {
                tokio::task::yield_now().await;
            }
            busy.store(false, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(REQUEST_ID.get())
        }
    }));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // One plain task serving requests in turn, as a keep-alive connection.
    let connection = async move {
        let mut service = service;
        let mut seen = Vec::new();
        for id in 1..=3 {
            let answer = service.ready().await.unwrap().call(id).await.unwrap();
            seen.push(answer);
        }
        seen
    };
    let served = rt
        .block_on(async { tokio::spawn(connection).await })
        .unwrap();
    assert_eq!(served, [Some(1), Some(2), Some(3)]);
    let events = events.lock().unwrap().clone();
    let mut expected = Vec::new();
    for id in 1..=3 {
        expected.extend([
            (id, "yield"),
            (id, "resume"),
            (id, "yield"),
            (id, "resume"),
            (id, "dropped entered"),
        ]);
    }
    assert_eq!(events, expected);
}
