//! Tower middleware (feature `tower`): [`FrameLayer`] serves every request
//! in a frame of its own.
//!
//! A server spawns a task per connection with plain `tokio::spawn` (hyper,
//! axum, tonic all do) and serves the connection's requests one after the
//! other, or several at once, inside that task. Such a task is unframed (see
//! the crate docs), so a middleware or handler that calls
//! [`Variable::set`](crate::Variable::set) would panic; and even in a framed
//! task, a binding made while serving one request would still be there for
//! the next request on the same connection. Wrapped in [`FrameLayer`], each
//! call's future runs in a frame that starts from the context current where
//! the service was called, so middleware and handlers may `set` and `enter`,
//! and nothing bound for one request is seen by another.
//!
//! `rt_ext::propagation::ServerLayer` frames each request the same way (from
//! the context it decodes): it does not need `FrameLayer` in addition.

use std::task::{Context, Poll};

use spawn_hooks::{Framed, Snapshot};
use tower_layer::Layer;
use tower_service::Service;

// ===== FrameLayer =====

/// A tower [`Layer`] that runs each request in a frame of its own: with it,
/// an axum `from_fn` middleware or a handler may bind variables with `set`,
/// and no binding outlives its request.
///
/// The frame starts from the context current where the service is called
/// (normally the connection task's: empty, unless the runtime frames every
/// task or the server was started inside a context), so put the layer
/// outermost, around what binds.
///
/// # Examples
///
/// With axum, around a middleware that binds the request id:
///
/// ```
/// use axum::{extract::Request, middleware::{self, Next}, response::Response, routing::get, Router};
/// use rt_ext as ctx;
///
/// static REQUEST_ID: ctx::Variable<String> = ctx::Variable::new("request_id");
///
/// async fn request_id(request: Request, next: Next) -> Response {
///     let id = request.headers().get("x-request-id")
///         .and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned();
///     let _id = REQUEST_ID.set(id); // bound for this request only, across awaits
///     next.run(request).await
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { REQUEST_ID.get().unwrap_or_default() }))
///     .layer(middleware::from_fn(request_id))
///     .layer(ctx::tower::FrameLayer::new()); // outermost
/// # let _ = app;
/// ```
///
/// With any tower service:
///
/// ```
/// use rt_ext as ctx;
/// use tower::{service_fn, Layer as _, ServiceExt as _};
///
/// static USER: ctx::Variable<u32> = ctx::Variable::new("user");
///
/// let service = ctx::tower::FrameLayer::new().layer(service_fn(|user: u32| async move {
///     let _u = USER.set(user); // would panic in an unframed task without the layer
///     tokio::task::yield_now().await;
///     Ok::<_, std::convert::Infallible>(USER.get())
/// }));
/// let rt = tokio::runtime::Runtime::new().unwrap(); // a plain tokio runtime
/// let seen = rt.block_on(async move { tokio::spawn(service.oneshot(7)).await.unwrap() });
/// assert_eq!(seen, Ok(Some(7)));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameLayer {
    _private: (),
}

impl FrameLayer {
    /// The layer.
    ///
    /// # Examples
    ///
    /// ```
    /// let layer = rt_ext::tower::FrameLayer::new();
    /// # let _ = layer;
    /// ```
    pub fn new() -> FrameLayer {
        FrameLayer { _private: () }
    }
}

impl<S> Layer<S> for FrameLayer {
    type Service = FrameService<S>;

    fn layer(&self, inner: S) -> FrameService<S> {
        FrameService { inner }
    }
}

// ===== FrameService =====

/// The service made by [`FrameLayer`]: calls `S`, with the call and its
/// future in a frame of their own.
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, tower::{FrameLayer, FrameService}};
/// use tower::{Layer as _, ServiceExt as _};
///
/// static TENANT: ctx::Variable<&str> = ctx::Variable::new("tenant");
///
/// // The frame starts from the caller's context, and the caller never sees
/// // what the request binds.
/// let service: FrameService<_> = FrameLayer::new().layer(tower::service_fn(|_: ()| async {
///     let outer = TENANT.get();
///     let _t = TENANT.set("inner");
///     Ok::<_, ()>((outer, TENANT.get()))
/// }));
/// ctx::Runtime::new().unwrap().block_on(async {
///     let _t = TENANT.set("outer");
///     assert_eq!(service.oneshot(()).await, Ok((Some("outer"), Some("inner"))));
///     assert_eq!(TENANT.get(), Some("outer"));
/// });
/// ```
#[derive(Clone, Debug)]
pub struct FrameService<S> {
    inner: S,
}

impl<S> FrameService<S> {
    /// The wrapped service.
    ///
    /// # Examples
    ///
    /// ```
    /// use tower::Layer as _;
    /// let service = rt_ext::tower::FrameLayer::new().layer(5u8);
    /// assert_eq!(*service.get_ref(), 5);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    ///
    /// # Examples
    ///
    /// ```
    /// use tower::Layer as _;
    /// let mut service = rt_ext::tower::FrameLayer::new().layer(5u8);
    /// *service.get_mut() += 1;
    /// assert_eq!(*service.get_ref(), 6);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    ///
    /// # Examples
    ///
    /// ```
    /// use tower::Layer as _;
    /// let service = rt_ext::tower::FrameLayer::new().layer(5u8);
    /// assert_eq!(service.into_inner(), 5);
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, R> Service<R> for FrameService<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Framed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    // Inlined where the service is called, which LLVM stopped doing on its
    // own when `Framed`'s poll grew: 279 -> 258 instructions a request
    // (`serve_frame`, benches/icount.sh).
    #[inline]
    fn call(&mut self, request: R) -> Framed<S::Future> {
        let snapshot = Snapshot::capture();
        // The inner `call` may start work before it returns its future (and
        // bind there): it runs in a frame from the same context.
        let future = snapshot.run(|| self.inner.call(request));
        snapshot.scope(future)
    }
}
