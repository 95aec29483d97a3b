//! The attributes behind `#[rt_ext::main]`, `#[rt_ext::test]` and
//! `#[rt_ext::instrument]`. Depend on `rt-ext` (its default `macros` feature
//! re-exports them) rather than on this crate.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod entry;
mod instrument;

/// Runs an `async fn main` on an rt-ext runtime: `#[tokio::main]` whose body
/// runs framed, so it may `set` variables and `enter` hooks, and everything
/// it spawns through rt-ext inherits them.
///
/// The arguments and defaults are tokio's:
///
/// | argument | values | default |
/// |---|---|---|
/// | `flavor` | `"multi_thread"`, `"current_thread"` | `"multi_thread"` |
/// | `worker_threads` | a positive integer (`multi_thread` only) | one per core |
/// | `start_paused` | `true`, `false` (`current_thread` only; needs rt-ext's `test-util` feature) | `false` |
/// | `crate` | the path to rt-ext as a string, when it is re-exported | `"::rt_ext"` |
///
/// The function becomes a plain `fn` that builds the runtime with
/// `rt_ext::Builder` (all drivers enabled) and runs the body with
/// `rt_ext::Runtime::block_on`. Built with `--cfg tokio_unstable`, that
/// runtime frames every task, as an `rt_ext::Builder` runtime does: tasks
/// that libraries spawn with plain `tokio::spawn` inherit too.
///
/// A wrong argument is a compile error that points at it.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
///
/// #[rt_ext::main(worker_threads = 2)]
/// async fn main() {
///     let _id = REQUEST_ID.set(7); // a plain #[tokio::main] body would panic here
///     let seen = ctx::spawn(async { REQUEST_ID.get() }).await.unwrap();
///     assert_eq!(seen, Some(7));
/// }
/// ```
///
/// On the current-thread runtime:
///
/// ```
/// #[rt_ext::main(flavor = "current_thread")]
/// async fn main() {
///     assert_eq!(rt_ext::spawn(async { 1 }).await.unwrap(), 1);
/// }
/// ```
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Main, args.into(), item.into()).into()
}

/// Runs an `async fn` test on an rt-ext runtime: `#[tokio::test]` whose body
/// runs framed, so it may `set` variables and `enter` hooks, and everything
/// it spawns through rt-ext inherits them.
///
/// The arguments are those of [`macro@main`], with tokio's default for tests:
/// the `current_thread` flavor. Each test gets a runtime of its own. Built
/// with `--cfg tokio_unstable`, the runtime frames every task (plain
/// `tokio::spawn` inherits too).
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static USER: ctx::Variable<&str> = ctx::Variable::new("user");
///
/// #[rt_ext::test]
/// async fn children_inherit() {
///     let _u = USER.set("ada");
///     assert_eq!(ctx::spawn(async { USER.get() }).await.unwrap(), Some("ada"));
/// }
///
/// #[rt_ext::test(flavor = "multi_thread", worker_threads = 2)]
/// async fn on_two_workers() -> Result<(), Box<dyn std::error::Error>> {
///     let _u = USER.set("grace");
///     assert_eq!(ctx::spawn_blocking(|| USER.get()).await?, Some("grace"));
///     Ok(())
/// }
/// ```
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    entry::expand(entry::Kind::Test, args.into(), item.into()).into()
}

/// tracing's `#[instrument]`, with the body of an `async fn` run in a frame
/// of its own inside the span: span guards taken in it with
/// `rt_ext::tracing::enter` (or in anything it calls) nest inside the span
/// after every await. Switching from `#[tracing::instrument]` is an import
/// change.
///
/// Needs rt-ext's `tracing` feature beside `macros` (a default feature);
/// without `tracing` it is a compile error that says so. The crate using it
/// depends on `tracing` too, as with tracing's attribute (the code it
/// generates names `::tracing`), and on rt-ext under its own name (the
/// code names `::rt_ext`); rt-ext turns on tracing's `attributes` feature
/// itself.
///
/// # Arguments
///
/// Exactly those of `#[tracing::instrument]` (`name`, `target`, `level`,
/// `parent`, `follows_from`, `skip`, `skip_all`, `fields`, `err`, `ret`, in
/// any of their forms), passed to it untouched: the span, its fields and the
/// `err`/`ret` events are tracing's, and so are the errors for a wrong
/// argument, which point at it.
///
/// # What changes, and what does not
///
/// * An `async fn`: the span is entered around each poll as with tracing's
///   attribute; inside it, the body runs as
///   `rt_ext::FutureExt::frame(async move { body }).await`, typed as the
///   function's output (`return`, `?`, `impl Trait` outputs, `self`
///   receivers, generics and lifetimes work as they do in the function).
///   The frame starts from the caller's context, so the body sees the
///   caller's variables; variables it sets and hooks it enters belong to
///   that frame, and end with the call (a `Binding` returned to the caller
///   binds nothing there). As a frame, it also lets the body bind in a task
///   that has none (a plain `tokio::spawn` task).
/// * A synchronous function that returns an async block, bare or in
///   `Box::pin(..)` (as `#[async_trait]` writes an `async fn`): tracing
///   instruments that future, and the future's body gets the frame.
/// * Any other synchronous function: exactly `#[tracing::instrument]`. The
///   span is entered around the call, like `span.in_scope(..)`; a
///   synchronous body cannot await, so it needs no frame.
///
/// The frame costs about 80 instructions per poll over tracing's attribute
/// (713 against 632 per poll of a task that yields in an instrumented fn,
/// under tracing-subscriber's `Registry`; `span_attr_poll` and
/// `span_tracing_attr_poll` in rt-ext's `benches/src/bin/icount.rs`).
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// use tracing::Span;
///
/// #[rt_ext::instrument(skip(rows), fields(count = rows.len()))]
/// async fn render(rows: Vec<u32>) -> Option<tracing::Id> {
///     let chunk = tracing::info_span!("chunk");
///     let _entered = ctx::tracing::enter(&chunk); // across the await below
///     tokio::task::yield_now().await;
///     // `chunk`, nested in `render`; under `#[tracing::instrument]` the
///     // guard's span would be re-entered first, and `render` on top of it.
///     Span::current().id()
/// }
///
/// # let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
/// # let _default = tracing::dispatcher::set_default(&dispatch);
/// ctx::Runtime::new().unwrap().block_on(async {
///     let current = render(vec![1, 2]).await.unwrap();
///     # let name = tracing::dispatcher::get_default(|d| {
///     #     use tracing_subscriber::registry::LookupSpan;
///     #     let registry = d.downcast_ref::<tracing_subscriber::Registry>().unwrap();
///     #     let span = registry.span(&current).unwrap();
///     #     (span.name(), span.parent().unwrap().name())
///     # });
///     # assert_eq!(name, ("chunk", "render"));
/// });
/// ```
///
/// `err`, `ret` and methods, as with tracing's attribute:
///
/// ```
/// struct Store;
///
/// impl Store {
///     #[rt_ext::instrument(skip(self), err, ret(level = "debug"))]
///     async fn get(&self, key: &str) -> Result<usize, String> {
///         if key.is_empty() {
///             return Err("empty key".into()); // an `error` event, in the span
///         }
///         tokio::task::yield_now().await;
///         Ok(key.len()) // a `return` event
///     }
/// }
///
/// rt_ext::Runtime::new().unwrap().block_on(async {
///     assert_eq!(Store.get("abc").await, Ok(3));
///     assert!(Store.get("").await.is_err());
/// });
/// ```
#[proc_macro_attribute]
pub fn instrument(args: TokenStream, item: TokenStream) -> TokenStream {
    instrument::expand(args.into(), item.into()).into()
}

/// What `#[rt_ext::instrument]` expands to without rt-ext's `tracing`
/// feature: the function unchanged, and a compile error at the attribute.
/// Not for direct use.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn instrument_needs_tracing(_args: TokenStream, item: TokenStream) -> TokenStream {
    instrument::needs_tracing(item.into()).into()
}
