//! `#[rt_ext::instrument]` takes tracing's arguments and does what
//! `#[tracing::instrument]` does with them: the same functions, written once
//! and instrumented once by each attribute, log the same events (message,
//! fields, level, target) under the same spans (name, fields, level,
//! target), with `err`, `ret`, `skip`, `skip_all`, `fields`, `level`,
//! `name`, `target`, `parent`, methods on every kind of `self`, generic,
//! `impl Trait`-returning and lifetime-bound functions, early `return` and
//! `?`, synchronous functions and `#[async_trait]`-style boxed futures.
#![cfg(all(feature = "tracing", feature = "macros"))]

mod tracing_support;

use rt_ext as ctx;
use tracing_support::{dispatch, Record};

/// The same items in `mod ours`, under `#[rt_ext::instrument]`, and in
/// `mod theirs`, under `#[tracing::instrument]`.
macro_rules! twice {
    ($($item:item)*) => {
        mod ours {
            use super::*;
            use rt_ext::instrument;
            $($item)*
        }
        mod theirs {
            use super::*;
            use tracing::instrument;
            $($item)*
        }
    };
}

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio::task::yield_now;
use tracing::{debug, info, Span};

twice! {
    #[derive(Debug)]
    pub(crate) struct Store {
        pub(crate) name: &'static str,
        pub(crate) hits: u32,
    }

    #[instrument]
    pub(crate) async fn plain(a: u32, b: &str) -> u32 {
        yield_now().await;
        info!("plain");
        a + b.len() as u32
    }

    #[instrument(skip(b), fields(len = b.len(), kind = "bytes", shown = %a))]
    pub(crate) async fn skipped(a: u32, b: Vec<u8>) {
        yield_now().await;
        info!(first = b[0], "skipped");
    }

    #[instrument(skip_all, name = "renamed", level = "debug", target = "custom::target")]
    pub(crate) async fn named(a: u32) -> u32 {
        yield_now().await;
        debug!(a, "named");
        a
    }

    #[instrument(parent = None, fields(late = tracing::field::Empty))]
    pub(crate) async fn root_with_late_field(a: u32) {
        Span::current().record("late", a * 10);
        yield_now().await;
        info!("late");
    }

    #[instrument(err)]
    pub(crate) async fn fails(ok: bool) -> Result<u32, String> {
        if !ok {
            return Err("bad input".into());
        }
        yield_now().await;
        Ok(1)
    }

    #[instrument(err(Debug), ret(Display))]
    pub(crate) async fn question(s: &str) -> Result<u32, std::num::ParseIntError> {
        yield_now().await;
        let n: u32 = s.parse()?;
        Ok(n * 2)
    }

    #[instrument(ret(level = "debug"), err(level = "warn"))]
    pub(crate) async fn boxed_error(n: u32) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
        let parsed: u32 = "7".parse()?; // `?` converts into the declared error
        if n == 0 {
            return Err("zero".into());
        }
        yield_now().await;
        Ok(n + parsed)
    }

    #[instrument(ret)]
    pub(crate) async fn early(n: u32) -> Option<u32> {
        if n > 5 {
            return None;
        }
        yield_now().await;
        Some(n + 1)
    }

    #[instrument]
    pub(crate) async fn coerced(flag: bool) -> Box<dyn fmt::Display + Send> {
        if flag {
            return Box::new(1u8); // coerces to the declared output
        }
        yield_now().await;
        Box::new("two")
    }

    #[instrument(ret)]
    pub(crate) async fn generic<T>(value: T) -> String
    where
        T: fmt::Debug + Clone + Send,
    {
        yield_now().await;
        format!("{:?}", value.clone())
    }

    #[instrument(skip(f))]
    pub(crate) async fn with_closure<F: FnOnce(u32) -> u32 + Send>(f: F, n: u32) -> u32 {
        yield_now().await;
        f(n)
    }

    #[instrument(ret)]
    pub(crate) async fn opaque(n: u32) -> impl fmt::Debug + Send {
        yield_now().await;
        vec![n; 2]
    }

    #[instrument(err)]
    pub(crate) async fn opaque_ok(n: u32) -> Result<impl fmt::Display, String> {
        let half = n.checked_div(2).ok_or("no")?;
        yield_now().await;
        Ok(half)
    }

    #[instrument(ret)]
    pub(crate) async fn first_word<'a>(s: &'a str) -> &'a str {
        yield_now().await;
        s.split(' ').next().unwrap_or(s)
    }

    #[instrument(ret)]
    pub(crate) fn sync_add(a: u32, b: u32) -> u32 {
        info!("sync");
        a + b
    }

    impl Store {
        #[instrument]
        pub(crate) async fn by_ref(&self, key: &str) -> usize {
            yield_now().await;
            info!(store = self.name, "by_ref");
            key.len()
        }

        #[instrument(skip(self), fields(store = self.name))]
        pub(crate) async fn by_mut(&mut self, n: u32) -> u32 {
            yield_now().await;
            self.hits += n;
            info!(hits = self.hits, "by_mut");
            self.hits
        }

        #[instrument(ret)]
        pub(crate) async fn by_value(self) -> &'static str {
            yield_now().await;
            self.name
        }

        #[instrument(skip(self), ret)]
        pub(crate) fn boxed_future(&self, n: u32) -> Pin<Box<dyn Future<Output = u32> + Send + '_>> {
            Box::pin(async move {
                yield_now().await;
                info!(store = self.name, "in the box");
                n + self.hits
            })
        }

        #[instrument(name = "store_new", ret)]
        pub(crate) async fn new(name: &'static str) -> Self {
            yield_now().await;
            Self { name, hits: 0 }
        }
    }
}

/// Calls every function of module `$m` and logs what they return.
macro_rules! exercise {
    ($m:ident) => {
        async {
            {
                let caller = tracing::info_span!("caller");
                let _caller = ctx::tracing::enter(&caller);
                info!(r = $m::plain(1, "ab").await, "returned");
                $m::root_with_late_field(5).await;
            }
            $m::skipped(3, vec![9, 8]).await;
            info!(r = $m::named(4).await, "returned");
            info!(r = ?$m::fails(true).await, "returned");
            info!(r = ?$m::fails(false).await, "returned");
            info!(r = ?$m::question("21").await, "returned");
            info!(r = ?$m::question("x").await.is_err(), "returned");
            info!(r = ?$m::boxed_error(1).await.ok(), "returned");
            info!(r = ?$m::boxed_error(0).await.is_err(), "returned");
            info!(r = ?$m::early(1).await, "returned");
            info!(r = ?$m::early(9).await, "returned");
            info!(r = %$m::coerced(true).await, "returned");
            info!(r = %$m::coerced(false).await, "returned");
            info!(r = $m::generic(("t", 1)).await, "returned");
            info!(r = $m::with_closure(|n| n * 3, 5).await, "returned");
            info!(r = ?$m::opaque(6).await, "returned");
            info!(r = %$m::opaque_ok(14).await.unwrap(), "returned");
            info!(r = $m::first_word("hello world").await, "returned");
            info!(r = $m::sync_add(2, 3), "returned");
            let mut store = $m::Store::new("users").await;
            info!(r = store.by_ref("key").await, "returned");
            info!(r = store.by_mut(2).await, "returned");
            info!(r = store.boxed_future(4).await, "returned");
            info!(r = store.by_value().await, "returned");
        }
    };
}

/// The records of one run, with the module that made them named `m`.
fn run<F: Future<Output = ()>>(module: &str, fut: F) -> Vec<Record> {
    let (dispatch, records) = dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let rt = ctx::Builder::new_current_thread().build().unwrap();
        rt.block_on(fut);
    });
    let own = format!("::{module}");
    records
        .all()
        .into_iter()
        .map(|mut r| {
            r.target = r.target.replace(&own, "::m");
            r.span_meta = r.span_meta.iter().map(|m| m.replace(&own, "::m")).collect();
            r
        })
        .collect()
}

#[test]
fn every_argument_does_what_tracings_does() {
    let ours = run("ours", exercise!(ours));
    let theirs = run("theirs", exercise!(theirs));
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(
            (
                &o.message,
                &o.fields,
                &o.spans,
                &o.level,
                &o.target,
                &o.span_meta
            ),
            (
                &t.message,
                &t.fields,
                &t.spans,
                &t.level,
                &t.target,
                &t.span_meta
            ),
        );
    }

    // And what they are, so that both doing nothing would not pass.
    let find = |message: &str, fields: &str| -> &Record {
        ours.iter()
            .find(|r| r.message == message && r.fields == fields)
            .unwrap_or_else(|| panic!("no {fields:?} in {ours:#?}"))
    };
    let spans = |message: &str, fields: &str| find(message, fields).spans.clone();
    // Arguments as fields (`&str` as a string, the rest with `Debug`), and
    // the span inside the caller's.
    assert_eq!(spans("plain", "plain"), ["plain{a=1 b=ab}", "caller"]);
    // skip, fields (a value, a literal, `%`)
    assert_eq!(
        spans("skipped", "skipped first=9"),
        ["skipped{a=3 len=2 kind=bytes shown=3}"]
    );
    // skip_all, name, level, target
    let named = find("named", "named a=4");
    assert_eq!(named.spans, ["renamed"]);
    assert_eq!(named.span_meta, ["DEBUG custom::target"]);
    // parent = None: a root, though called inside `caller`; a field recorded later
    assert_eq!(spans("late", "late"), ["root_with_late_field{a=5 late=50}"]);
    // err: an ERROR event in the span, with an early `return`
    let error = find("", "error=bad input");
    assert_eq!(error.level, tracing::Level::ERROR);
    assert_eq!(error.spans, ["fails{ok=false}"]);
    // err(Debug), ret(Display) and `?`
    assert_eq!(spans("", "return=42"), ["question{s=21}"]);
    assert_eq!(
        spans("", "error=ParseIntError { kind: InvalidDigit }"),
        ["question{s=x}"]
    );
    // ret and err with their own levels, `?` converting into a boxed error
    assert_eq!(find("", "return=8").level, tracing::Level::DEBUG);
    assert_eq!(find("", "error=zero").level, tracing::Level::WARN);
    // ret with an early return
    assert_eq!(spans("", "return=None"), ["early{n=9}"]);
    assert_eq!(spans("", "return=Some(2)"), ["early{n=1}"]);
    // a `return` coerced to the declared `Box<dyn Display>`
    find("returned", "returned r=1");
    find("returned", "returned r=two");
    // generic, closure argument skipped, impl Trait outputs, lifetimes
    assert_eq!(
        spans("", r#"return="(\"t\", 1)""#),
        [r#"generic{value=("t", 1)}"#]
    );
    find("returned", "returned r=15");
    assert_eq!(spans("", "return=[6, 6]"), ["opaque{n=6}"]);
    find("returned", "returned r=7");
    assert_eq!(
        spans("", r#"return="hello""#),
        ["first_word{s=hello world}"]
    );
    // a synchronous function
    assert_eq!(spans("sync", "sync"), ["sync_add{a=2 b=3}"]);
    assert_eq!(spans("", "return=5"), ["sync_add{a=2 b=3}"]);
    // methods: `Self`, `&self`, `&mut self` with a field of `self`, `self`,
    // and an `#[async_trait]`-style boxed future (instrumented inside)
    assert_eq!(
        spans("", r#"return=Store { name: "users", hits: 0 }"#),
        ["store_new{name=users}"]
    );
    assert_eq!(
        spans("by_ref", "by_ref store=users"),
        [r#"by_ref{self=Store { name: "users", hits: 0 } key=key}"#]
    );
    assert_eq!(
        spans("by_mut", "by_mut hits=2"),
        ["by_mut{n=2 store=users}"]
    );
    assert_eq!(
        spans("in the box", "in the box store=users"),
        ["boxed_future{n=4}"]
    );
    assert_eq!(spans("", "return=6"), ["boxed_future{n=4}"]);
    assert_eq!(
        spans("", r#"return="users""#),
        [r#"by_value{self=Store { name: "users", hits: 2 }}"#]
    );
}
