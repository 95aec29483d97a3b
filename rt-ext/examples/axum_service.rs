//! An axum service whose request id follows every piece of work the request
//! starts: a middleware binds it with `set`, the handler spawns through each
//! rt-ext spawn path, and every one of them logs the id it sees.
//!
//! ```sh
//! cargo run -p rt-ext --example axum_service --features tower   # 3 requests to itself, then exits
//! cargo run -p rt-ext --example axum_service --features tower -- --serve 127.0.0.1:3000
//! curl -H 'x-request-id: 42' http://127.0.0.1:3000/work          # (in another shell)
//! ```
//!
//! What makes it work:
//! - `#[rt_ext::main]` instead of `#[tokio::main]`: the runtime is an rt-ext
//!   one (and, built with `--cfg tokio_unstable`, frames every task);
//! - `rt_ext::tower::FrameLayer` outermost: axum runs each connection in a
//!   task of its own spawned with plain `tokio::spawn`, and the layer gives
//!   each request a frame there, so the middleware may `set`;
//! - `rt_ext::spawn` and its siblings instead of tokio's: what they start
//!   inherits the request's context.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rt_ext as ctx;

/// The request id: bound by the middleware, inherited by everything the
/// request spawns.
pub(crate) static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");

/// Whether `log` prints (the tests turn it off).
pub(crate) static QUIET: AtomicBool = AtomicBool::new(false);

/// Ids for requests that come without an `x-request-id` header.
static NEXT_ID: AtomicU64 = AtomicU64::new(1_000_000);

/// The app: one route, the request-id middleware, and a frame per request.
pub(crate) fn app() -> Router {
    Router::new()
        .route("/work", get(work))
        .layer(middleware::from_fn(request_id))
        // Outermost: the frame is there before the middleware binds.
        .layer(ctx::tower::FrameLayer::new())
}

/// Reads the request's id (or makes one), binds it for the rest of the
/// request, and echoes it in the response.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or_else(|| NEXT_ID.fetch_add(1, Ordering::Relaxed));
    // Bound until the guard drops at the end of this function, across every
    // await in between, on whatever worker resumes the request.
    let _id = REQUEST_ID.set(id);
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert("x-request-id", HeaderValue::from(id));
    response
}

/// One log line: which piece of work, and the request id it sees.
pub(crate) fn log(path: &str) -> String {
    let id = REQUEST_ID
        .get()
        .map_or_else(|| "none".to_owned(), |id| id.to_string());
    let line = format!("request_id={id} path={path}");
    if !QUIET.load(Ordering::Relaxed) {
        println!("{line}");
    }
    line
}

/// The spawn paths `work` goes through, in the order of its log lines.
pub(crate) const PATHS: [&str; 9] = [
    "handler",
    "ctx::spawn",
    "ctx::spawn_blocking",
    "ctx::Handle::spawn",
    "ctx::JoinSet::spawn",
    "ctx::JoinSet::spawn_blocking",
    "ctx::TaskTracker::spawn",
    "ctx::thread::spawn",
    "ctx::spawn_local",
];

/// Starts work through every rt-ext spawn path and returns what each logged.
async fn work() -> String {
    let mut lines = vec![log("handler")];

    lines.push(ctx::spawn(async { log("ctx::spawn") }).await.unwrap());
    let blocking = ctx::spawn_blocking(|| log("ctx::spawn_blocking"));
    lines.push(blocking.await.unwrap());
    let on_handle = ctx::Handle::current().spawn(async { log("ctx::Handle::spawn") });
    lines.push(on_handle.await.unwrap());

    let mut set = ctx::JoinSet::new();
    set.spawn(async { log("ctx::JoinSet::spawn") });
    set.spawn_blocking(|| log("ctx::JoinSet::spawn_blocking"));
    let mut from_set = set.join_all().await;
    from_set.sort_by_key(|line| line.ends_with("spawn_blocking"));
    lines.extend(from_set);

    let tracker = ctx::TaskTracker::new();
    let tracked = tracker.spawn(async { log("ctx::TaskTracker::spawn") });
    tracker.close();
    tracker.wait().await;
    lines.push(tracked.await.unwrap());

    // An OS thread, which runs `!Send` work on a `LocalSet` of its own.
    let thread = ctx::thread::spawn(|| {
        let mut lines = vec![log("ctx::thread::spawn")];
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        let local = ctx::LocalSet::new();
        let not_send = std::rc::Rc::new("ctx::spawn_local");
        let task = local.run_until(async move {
            ctx::spawn_local(async move { log(&not_send) })
                .await
                .unwrap()
        });
        lines.push(rt.block_on(task));
        lines
    });
    // Joined on the blocking pool, not on a worker.
    let from_thread = ctx::spawn_blocking(move || thread.join().unwrap());
    lines.extend(from_thread.await.unwrap());

    lines.join("\n") + "\n"
}

/// Serves `app()` on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app())
        .with_graceful_shutdown(shutdown)
        .await
}

/// An HTTP client (hyper's, the one reqwest is built on), with a pool.
pub(crate) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A client for [`get_work`].
pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends one `GET /work` with `id` and returns the response body.
pub(crate) async fn get_work(
    client: &HttpClient,
    addr: SocketAddr,
    id: u64,
) -> Result<String, Box<dyn Error + Send + Sync>> {
    let request = hyper::Request::get(format!("http://{addr}/work"))
        .header("x-request-id", id)
        .body(Empty::new())?;
    let response = client.request(request).await?;
    if response.status() != 200 {
        return Err(format!("request {id}: status {}", response.status()).into());
    }
    let body = response.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

#[rt_ext::main]
pub(crate) async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, addr] = args.as_slice() {
        if flag == "--serve" {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            println!(
                "serving http://{}/work until Ctrl-C",
                listener.local_addr()?
            );
            serve(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            return Ok(());
        }
    }
    // A demo that ends by itself: three requests to a server on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = ctx::spawn(serve(listener, async {
        let _ = stopped.await;
    }));
    let client = client();
    let requests: Vec<_> = (1..=3)
        .map(|id| {
            let client = client.clone();
            ctx::spawn(async move { get_work(&client, addr, id).await })
        })
        .collect();
    for (id, request) in (1..=3).zip(requests) {
        let body = request.await??;
        let own = format!("request_id={id} ");
        let saw_own = body.lines().filter(|l| l.starts_with(&own)).count();
        println!(
            "request {id}: {saw_own} of {} pieces of work saw its id",
            PATHS.len()
        );
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
