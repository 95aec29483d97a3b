//! `http` headers and tower layers: the `baggage` header on requests.

use std::task::{Context, Poll};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use spawn_hooks::{Framed, Snapshot};
use tower_layer::Layer;
use tower_service::Service;

use super::codec::Codec;
use super::report::{DecodeError, Decoded, Skipped};

/// The W3C header: `baggage`.
///
/// # Examples
///
/// ```
/// assert_eq!(rt_ext::propagation::BAGGAGE, "baggage");
/// ```
pub const BAGGAGE: HeaderName = HeaderName::from_static("baggage");

impl Codec {
    /// Writes the codec's variables bound in `snapshot` into the `baggage`
    /// header. List-members already there under other names (another
    /// library's baggage) are kept, in one header with ours; those under the
    /// codec's names are replaced. Nothing is written if nothing is bound.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
    /// let codec = Codec::builder().var(&TENANT).build().unwrap();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("baggage", "userId=alice,tenant=old".parse().unwrap());
    /// codec.inject(&ctx::Snapshot::empty().with(&TENANT, "acme".into()), &mut headers);
    /// assert_eq!(headers["baggage"], "userId=alice,tenant=acme");
    /// ```
    pub fn inject(&self, snapshot: &Snapshot, headers: &mut HeaderMap) {
        let ours = self.to_baggage(snapshot);
        if ours.is_empty() {
            return;
        }
        let mut value = String::new();
        for existing in headers.get_all(&BAGGAGE) {
            let Ok(existing) = existing.to_str() else {
                continue;
            };
            for member in existing.split(',') {
                let key = member.split(['=', ';']).next().unwrap_or_default();
                let key = key.trim_matches([' ', '\t']);
                if key.is_empty() || self.lookup(key).is_some() {
                    continue;
                }
                // Foreign members go first, while the header stays in bounds.
                if value.len() + member.len() + 1 + ours.len() > self.inner.max_bytes {
                    continue;
                }
                value.push_str(member.trim_matches([' ', '\t']));
                value.push(',');
            }
        }
        value.push_str(&ours);
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(BAGGAGE, value);
        }
    }

    /// Decodes the context carried by the `baggage` headers (all of them,
    /// as one list); see [`from_baggage`](Codec::from_baggage). No header is
    /// an empty context.
    ///
    /// # Errors
    ///
    /// As [`from_baggage`](Codec::from_baggage); a header that is not
    /// visible ASCII counts as a malformed entry, not an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
    /// let codec = Codec::builder().var(&TENANT).build().unwrap();
    /// let mut headers = http::HeaderMap::new();
    /// headers.append("baggage", "a=1".parse().unwrap());
    /// headers.append("baggage", "tenant=acme".parse().unwrap());
    /// assert_eq!(codec.extract(&headers).unwrap().get(&TENANT).as_deref(), Some("acme"));
    /// ```
    pub fn extract(&self, headers: &HeaderMap) -> Result<Snapshot, DecodeError> {
        self.extract_onto(&Snapshot::empty(), headers)
            .map(|decoded| decoded.snapshot)
    }

    /// Decodes the context of the `baggage` headers onto `base`, with the
    /// report of skipped entries.
    ///
    /// # Errors
    ///
    /// As [`extract`](Codec::extract).
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
    /// static LOCAL: ctx::Variable<u8> = ctx::Variable::new("local");
    /// let codec = Codec::builder().var(&TENANT).build().unwrap();
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("baggage", "tenant=acme".parse().unwrap());
    /// let base = ctx::Snapshot::empty().with(&LOCAL, 1);
    /// let decoded = codec.extract_onto(&base, &headers).unwrap();
    /// assert_eq!(decoded.snapshot().get(&LOCAL), Some(1));
    /// assert_eq!(decoded.snapshot().get(&TENANT).as_deref(), Some("acme"));
    /// ```
    pub fn extract_onto(
        &self,
        base: &Snapshot,
        headers: &HeaderMap,
    ) -> Result<Decoded, DecodeError> {
        let max = self.inner.max_bytes;
        let mut parts = Vec::new();
        let mut len = 0usize;
        let mut unreadable = 0;
        for value in headers.get_all(&BAGGAGE) {
            // Checked as they come, so a flood of headers allocates nothing.
            len = len.saturating_add(value.len() + 1);
            if len > max + 1 {
                return Err(DecodeError::TooLarge { len: len - 1, max });
            }
            match value.to_str() {
                Ok(value) => parts.push(value),
                Err(_) => unreadable += 1,
            }
        }
        let mut decoded = self.decode_baggage_parts(base, &parts)?;
        for _ in 0..unreadable {
            decoded.skipped.push(Skipped {
                name: None,
                reason: super::SkipReason::Malformed("a baggage header is not visible ASCII"),
            });
        }
        Ok(decoded)
    }
}

// ===== server =====

/// A tower layer for servers: each request is served inside the context its
/// `baggage` header carries, so the handler, and every task it spawns with
/// [`crate::spawn`], sees the caller's values.
///
/// The request's context is the context current where the service is
/// called, plus the decoded entries. What the handler binds stays on the
/// server: nothing is written into the response. The decode report
/// ([`Extracted`]) is put in the request's extensions.
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::{Codec, ServerLayer}};
/// use tower::{service_fn, Layer as _, ServiceExt as _};
///
/// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
/// let codec = Codec::builder().var(&TENANT).build().unwrap();
///
/// let handler = service_fn(|_req: http::Request<()>| async {
///     let from_task = ctx::spawn(async { TENANT.get() }).await.unwrap();
///     Ok::<_, std::convert::Infallible>(from_task)
/// });
/// let service = ServerLayer::new(codec).layer(handler);
///
/// let request = http::Request::builder().header("baggage", "tenant=acme").body(()).unwrap();
/// let rt = ctx::Runtime::new().unwrap();
/// let seen = rt.block_on(service.oneshot(request)).unwrap();
/// assert_eq!(seen.as_deref(), Some("acme"));
/// ```
#[derive(Clone, Debug)]
pub struct ServerLayer {
    codec: Codec,
}

impl ServerLayer {
    /// A layer that decodes requests' context with `codec`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::{Codec, ServerLayer};
    /// let layer = ServerLayer::new(Codec::builder().scope_chain().build().unwrap());
    /// # let _ = layer;
    /// ```
    pub fn new(codec: Codec) -> ServerLayer {
        ServerLayer { codec }
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = Server<S>;

    fn layer(&self, inner: S) -> Server<S> {
        Server {
            inner,
            codec: self.codec.clone(),
        }
    }
}

/// The service made by [`ServerLayer`].
///
/// # Examples
///
/// ```
/// use rt_ext::propagation::{Codec, Server, ServerLayer};
/// use tower::Layer as _;
/// let service: Server<_> = ServerLayer::new(Codec::builder().build().unwrap())
///     .layer(tower::service_fn(|_: http::Request<()>| async { Ok::<_, ()>(()) }));
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct Server<S> {
    inner: S,
    codec: Codec,
}

/// What decoding a request's context skipped or refused, in the request's
/// extensions (see [`ServerLayer`]).
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::{Codec, Extracted, ServerLayer}};
/// use tower::{service_fn, Layer as _, ServiceExt as _};
///
/// let service = ServerLayer::new(Codec::builder().build().unwrap()).layer(service_fn(
///     |req: http::Request<()>| async move {
///         let report = req.extensions().get::<Extracted>().unwrap();
///         Ok::<_, ()>((report.skipped().len(), report.error().is_some()))
///     },
/// ));
/// let request = http::Request::builder().header("baggage", "other=1").body(()).unwrap();
/// let rt = ctx::Runtime::new().unwrap();
/// assert_eq!(rt.block_on(service.oneshot(request)), Ok((1, false)));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Extracted {
    skipped: Vec<Skipped>,
    error: Option<DecodeError>,
}

impl Extracted {
    /// The entries skipped (unknown ones included).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(rt_ext::propagation::Extracted::default().skipped().is_empty());
    /// ```
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Why the whole header was refused, if it was; the request is then
    /// served in the context current where the service was called.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(rt_ext::propagation::Extracted::default().error().is_none());
    /// ```
    pub fn error(&self) -> Option<&DecodeError> {
        self.error.as_ref()
    }
}

impl<S, B> Service<http::Request<B>> for Server<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Framed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let base = Snapshot::capture();
        let (snapshot, report) = match self.codec.extract_onto(&base, request.headers()) {
            Ok(decoded) => (
                decoded.snapshot,
                Extracted {
                    skipped: decoded.skipped,
                    error: None,
                },
            ),
            Err(error) => (
                base,
                Extracted {
                    skipped: Vec::new(),
                    error: Some(error),
                },
            ),
        };
        request.extensions_mut().insert(report);
        // The inner `call` may start work before returning its future: it
        // runs in the request's context too.
        let future = snapshot.run(|| self.inner.call(request));
        snapshot.scope(future)
    }
}

// ===== client =====

/// A tower layer for clients: each outgoing request carries the context
/// current where the service is called, in its `baggage` header.
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::{ClientLayer, Codec}};
/// use tower::{service_fn, Layer as _, ServiceExt as _};
///
/// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
/// let codec = Codec::builder().var(&TENANT).build().unwrap();
/// // a stand-in for an HTTP client: answers with the header it was sent
/// let send = service_fn(|req: http::Request<()>| async move {
///     Ok::<_, ()>(req.headers().get("baggage").cloned())
/// });
/// let client = ClientLayer::new(codec).layer(send);
/// let rt = ctx::Runtime::new().unwrap();
/// let sent = rt.block_on(TENANT.scope("acme".into(), client.oneshot(http::Request::new(()))));
/// assert_eq!(sent.unwrap().unwrap(), "tenant=acme");
/// ```
#[derive(Clone, Debug)]
pub struct ClientLayer {
    codec: Codec,
}

impl ClientLayer {
    /// A layer that writes the current context into requests with `codec`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::{ClientLayer, Codec};
    /// let layer = ClientLayer::new(Codec::builder().scope_chain().build().unwrap());
    /// # let _ = layer;
    /// ```
    pub fn new(codec: Codec) -> ClientLayer {
        ClientLayer { codec }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = Client<S>;

    fn layer(&self, inner: S) -> Client<S> {
        Client {
            inner,
            codec: self.codec.clone(),
        }
    }
}

/// The service made by [`ClientLayer`].
///
/// # Examples
///
/// ```
/// use rt_ext::propagation::{Client, ClientLayer, Codec};
/// use tower::Layer as _;
/// let service: Client<_> = ClientLayer::new(Codec::builder().build().unwrap())
///     .layer(tower::service_fn(|_: http::Request<()>| async { Ok::<_, ()>(()) }));
/// # let _ = service;
/// ```
#[derive(Clone, Debug)]
pub struct Client<S> {
    inner: S,
    codec: Codec,
}

impl<S, B> Service<http::Request<B>> for Client<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> S::Future {
        self.codec
            .inject(&Snapshot::capture(), request.headers_mut());
        self.inner.call(request)
    }
}
