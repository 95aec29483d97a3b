//! End to end over real HTTP on loopback: a client runtime and a server
//! runtime in one process, hyper on both sides, the tower layers between.
#![cfg(feature = "propagation")]

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rt_ext::propagation::{ClientLayer, Codec, Extracted, ServerLayer};
use rt_ext::{self as ctx, Variable};
use serde::{Deserialize, Serialize};
use tower::{service_fn, Layer as _, ServiceExt as _};

static REQUEST_ID: Variable<String> = Variable::new("request_id");
static TENANT: Variable<String> = Variable::new("tenant");
static ATTEMPT: Variable<u32> = Variable::new("attempt");
/// Bound on the server only, around its accept loop.
static SERVER_NAME: Variable<String> = Variable::new("server_name");
/// Bound by the handler; must never reach the client.
static HANDLER_ONLY: Variable<String> = Variable::new("handler_only");

fn codec() -> Codec {
    Codec::builder()
        .var(&REQUEST_ID)
        .var(&TENANT)
        .var(&ATTEMPT)
        .var(&HANDLER_ONLY)
        .scope_chain()
        .build()
        .unwrap()
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Seen {
    request_id: Option<String>,
    tenant: Option<String>,
    attempt: Option<u32>,
    server_name: Option<String>,
    handler_only_before: Option<String>,
    chain: Vec<String>,
    skipped: usize,
}

fn seen_here(skipped: usize) -> Seen {
    Seen {
        request_id: REQUEST_ID.get(),
        tenant: TENANT.get(),
        attempt: ATTEMPT.get(),
        server_name: SERVER_NAME.get(),
        handler_only_before: HANDLER_ONLY.get(),
        chain: ctx::scope_chain().iter().map(String::from).collect(),
        skipped,
    }
}

async fn handler(request: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let skipped = request
        .extensions()
        .get::<Extracted>()
        .map_or(0, |e| e.skipped().len());
    let (in_handler, in_task) = ctx::named("handler", async move {
        let in_handler = seen_here(skipped);
        // bound here, after the reading: visible to the task, never to the client
        let _mine = HANDLER_ONLY.set("secret".into());
        let _tenant = TENANT.set("overwritten on the server".into());
        let in_task = ctx::spawn(ctx::named("task", async move {
            tokio::task::yield_now().await;
            let mut seen = seen_here(skipped);
            seen.handler_only_before = HANDLER_ONLY.get();
            seen
        }))
        .await
        .unwrap();
        (in_handler, in_task)
    })
    .await;
    let body = serde_json::to_string(&(in_handler, in_task)).unwrap();
    Ok(Response::new(body))
}

/// Starts the server on `rt`: an accept loop in a frame where
/// `SERVER_NAME` is bound, one task per connection.
fn start_server(rt: &ctx::Runtime) -> SocketAddr {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServerLayer::new(codec()).layer(service_fn(handler));
    rt.spawn(SERVER_NAME.scope("server-1".into(), async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(service.clone());
            ctx::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }));
    addr
}

/// One request over a fresh connection, through the client layer.
async fn get(addr: SocketAddr) -> (Response<()>, (Seen, Seen)) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    ctx::spawn(connection);
    let client =
        ClientLayer::new(codec()).layer(service_fn(move |request| sender.send_request(request)));
    let request = Request::builder()
        .uri("/")
        .header("host", "localhost")
        .header("baggage", "vendor=kept")
        .body(String::new())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        Response::from_parts(parts, ()),
        serde_json::from_slice(&body).unwrap(),
    )
}

#[test]
fn handler_and_its_tasks_see_the_clients_context_and_nothing_flows_back() {
    let server_rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addr = start_server(&server_rt);

    let client_rt = ctx::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    client_rt.block_on(ctx::named("client", async {
        let _id = REQUEST_ID.set("req-42".into());
        let _tenant = TENANT.set("acme".into());
        let _attempt = ATTEMPT.set(1);
        let (response, (in_handler, in_task)) = ctx::named("checkout", get(addr)).await;

        let expected_chain = |last: &[&str]| {
            ["client", "checkout", "handler"]
                .iter()
                .chain(last)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            in_handler,
            Seen {
                request_id: Some("req-42".into()),
                tenant: Some("acme".into()),
                attempt: Some(1),
                server_name: Some("server-1".into()),
                handler_only_before: None,
                chain: expected_chain(&[]),
                skipped: 1, // `vendor`, someone else's
            }
        );
        assert_eq!(
            in_task,
            Seen {
                request_id: Some("req-42".into()),
                tenant: Some("overwritten on the server".into()),
                attempt: Some(1),
                server_name: Some("server-1".into()),
                handler_only_before: Some("secret".into()),
                chain: expected_chain(&["task"]),
                skipped: 1,
            }
        );

        // nothing the handler bound came back
        assert!(response.headers().get("baggage").is_none());
        assert_eq!(HANDLER_ONLY.get(), None);
        assert_eq!(TENANT.get().as_deref(), Some("acme"));
        assert_eq!(ctx::scope_chain().to_string(), "client");
    }));

    // a request without context sees only the server's own
    let (_, (in_handler, _)) = client_rt.block_on(get(addr));
    assert_eq!(in_handler.request_id, None);
    assert_eq!(in_handler.tenant, None);
    assert_eq!(
        in_handler.handler_only_before, None,
        "no bleed between requests"
    );
    assert_eq!(in_handler.server_name.as_deref(), Some("server-1"));
    assert_eq!(in_handler.chain, ["handler"]);

    drop(client_rt);
    drop(server_rt);
}
