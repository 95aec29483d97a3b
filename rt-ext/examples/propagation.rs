//! Two services on loopback: a client sets a request id and a tenant, and
//! the server's handler, and a task it spawns, see them, with a scope chain
//! that runs from the client into the server.
//!
//! ```sh
//! cargo run -p rt-ext --example propagation --features propagation
//! ```
//!
//! Both sides use hyper with the tower layers of `ctx::propagation`: the
//! client's `ClientLayer` writes the context into the `baggage` header, the
//! server's `ServerLayer` serves each request inside the context it carries.

use std::convert::Infallible;

use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rt_ext::propagation::{ClientLayer, Codec, ServerLayer};
use rt_ext::{self as ctx, Variable};
use tower::{service_fn, Layer as _, ServiceExt as _};

static REQUEST_ID: Variable<String> = Variable::new("request_id");
static TENANT: Variable<String> = Variable::new("tenant");

/// Both sides list the same variables; anything else stays local.
fn codec() -> Codec {
    Codec::builder()
        .var(&REQUEST_ID)
        .var(&TENANT)
        .scope_chain()
        .build()
        .expect("distinct, valid names")
}

fn describe(place: &str) -> String {
    format!(
        "{place:>14}: request_id={:?} tenant={:?} scopes=[{}]",
        REQUEST_ID.get().unwrap_or_default(),
        TENANT.get().unwrap_or_default(),
        ctx::scope_chain()
    )
}

async fn handler(_request: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let lines = ctx::named("orders-api", async {
        let in_handler = describe("server handler");
        let in_task = ctx::spawn(ctx::named("audit", async { describe("server task") }))
            .await
            .expect("the audit task does not panic");
        format!("{in_handler}\n{in_task}")
    })
    .await;
    Ok(Response::new(lines))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ===== the server: its own runtime, loopback only, port chosen by the OS =====
    let server_rt = ctx::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listener = server_rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let service = ServerLayer::new(codec()).layer(service_fn(handler));
    server_rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            ctx::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });

    // ===== the client: another runtime, one request =====
    let client_rt = ctx::Builder::new_current_thread().enable_all().build()?;
    let reply = client_rt.block_on(ctx::named("storefront", async {
        let _id = REQUEST_ID.set("req-7f3a".into());
        let _tenant = TENANT.set("acme".into());
        println!("{}", describe("client"));

        ctx::named("checkout", async {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            ctx::spawn(connection);
            let client = ClientLayer::new(codec())
                .layer(service_fn(move |request| sender.send_request(request)));
            let request = Request::builder()
                .uri("/orders")
                .header("host", "localhost")
                .body(String::new())?;
            let response =
                tokio::time::timeout(std::time::Duration::from_secs(10), client.oneshot(request))
                    .await??;
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error>>(String::from_utf8(body.to_vec())?)
        })
        .await
    }))?;
    println!("{reply}");

    // Dropping the runtimes ends the accept loop and the connections.
    drop(client_rt);
    drop(server_rt);
    Ok(())
}
