//! The attributes behind `#[rt_ext::main]` and `#[rt_ext::test]`. Depend on
//! `rt-ext` (its default `macros` feature re-exports them) rather than on
//! this crate.

#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod entry;

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
