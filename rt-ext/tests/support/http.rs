//! An axum server on loopback and hyper clients against it, for the tests
//! that serve requests over a real connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::{connect::HttpConnector, Client as Legacy};
use hyper_util::rt::TokioExecutor;
use rt_ext as ctx;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An rt-ext multi-thread runtime with two workers and every driver.
pub fn runtime() -> ctx::Runtime {
    ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

// ===== the server =====

/// A router served on `127.0.0.1` until [`Server::stop`].
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `127.0.0.1:0` and serves `router` there, with graceful
    /// shutdown, in a task spawned with `ctx::spawn`.
    pub async fn start(router: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = ctx::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Server { addr, stop, task }
    }

    /// Shuts the server down; panics unless it stops cleanly within 10 s.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server did not stop")
            .unwrap()
            .unwrap();
    }
}

/// Counts the requests being served at once, and the most ever.
#[derive(Clone, Default)]
pub struct InFlight {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

impl InFlight {
    /// Runs `serve` counted as one request in flight.
    pub async fn count<F: Future>(&self, serve: F) -> F::Output {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let output = serve.await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        output
    }

    /// The most requests that were ever in flight at once.
    pub fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

// ===== the clients =====

/// hyper's client, the one reqwest is built on, with a pool.
pub type Client = Legacy<HttpConnector, Empty<Bytes>>;

/// A new [`Client`].
pub fn client() -> Client {
    Legacy::builder(TokioExecutor::new()).build_http()
}

/// Sends `GET http://{addr}{path}` with `headers`; returns the status and
/// the body.
pub async fn http_get(
    client: &Client,
    addr: SocketAddr,
    path: &str,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let mut request = hyper::Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    *request.headers_mut() = headers;
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Starts `request(n)` for each `n` in `0..count`, each in a task of its
/// own spawned with `ctx::spawn` (so all are in flight at once, each in the
/// caller's context), and returns what they gave in the order of `n`;
/// panics if they have not all finished within 60 s.
pub async fn send_concurrently<T, F>(count: u64, mut request: impl FnMut(u64) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..count).map(|n| ctx::spawn(request(n))).collect();
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut all = Vec::with_capacity(tasks.len());
        for task in tasks {
            all.push(task.await.unwrap());
        }
        all
    })
    .await
    .unwrap_or_else(|_| panic!("{count} requests did not finish in 60 s"))
}
