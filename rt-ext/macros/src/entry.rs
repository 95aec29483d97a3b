//! `#[rt_ext::main]` and `#[rt_ext::test]`: their arguments, the checks on
//! the function they decorate, and the code they expand to.
//!
//! The arguments are tokio's (`flavor`, `worker_threads`, `start_paused`,
//! `crate`) with tokio's defaults: a multi-thread runtime for `main`, a
//! current-thread runtime for `test`. Every error is reported at the
//! argument (or the part of the function) that causes it, and the function is
//! still expanded, so that an editor keeps its completions while the error
//! is fixed.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, ItemFn, Lit, Meta, MetaNameValue, Path, ReturnType, Token};

// ===== arguments =====

/// Which attribute is being expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Kind::Main => "rt_ext::main",
            Kind::Test => "rt_ext::test",
        }
    }

    /// tokio's defaults: a server wants every core, a test wants determinism.
    fn default_flavor(self) -> Flavor {
        match self {
            Kind::Main => Flavor::MultiThread,
            Kind::Test => Flavor::CurrentThread,
        }
    }
}

/// The runtime flavor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread,
}

/// The arguments of one attribute, checked against each other.
pub(crate) struct Config {
    pub(crate) flavor: Flavor,
    pub(crate) worker_threads: Option<usize>,
    pub(crate) start_paused: Option<bool>,
    /// The path to the rt-ext crate (`crate = "..."`), `::rt_ext` by default.
    pub(crate) crate_path: Path,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("flavor", &self.flavor)
            .field("worker_threads", &self.worker_threads)
            .field("start_paused", &self.start_paused)
            .field("crate_path", &self.crate_path.to_token_stream().to_string())
            .finish()
    }
}

impl Config {
    /// What the function expands to when its arguments are wrong: the error
    /// is reported, and the function still type-checks as it would.
    fn fallback(kind: Kind) -> Config {
        Config {
            flavor: kind.default_flavor(),
            worker_threads: None,
            start_paused: None,
            crate_path: syn::parse_quote!(::rt_ext),
        }
    }
}

const ARGUMENTS: &str = "`flavor`, `worker_threads`, `start_paused` and `crate`";

/// Parses the arguments of `#[rt_ext::main(...)]` or `#[rt_ext::test(...)]`.
pub(crate) fn parse_config(kind: Kind, args: TokenStream) -> syn::Result<Config> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    let mut flavor: Option<(Flavor, Span)> = None;
    let mut worker_threads: Option<(usize, Span)> = None;
    let mut start_paused: Option<(bool, Span)> = None;
    let mut crate_path: Option<Path> = None;

    for meta in metas {
        let arg = match meta {
            Meta::NameValue(arg) => arg,
            Meta::Path(path) => return Err(bare_word(kind, &path)),
            Meta::List(list) => {
                return Err(syn::Error::new_spanned(
                    list,
                    format!("expected `name = value`; the arguments are {ARGUMENTS}"),
                ))
            }
        };
        let name = arg_name(&arg)?;
        let lit = match &arg.value {
            Expr::Lit(ExprLit { lit, .. }) => lit,
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    format!("the value of `{name}` must be a literal"),
                ))
            }
        };
        let repeated =
            || syn::Error::new_spanned(&arg.path, format!("`{name}` is given more than once"));
        match name.as_str() {
            "flavor" => {
                if flavor.is_some() {
                    return Err(repeated());
                }
                flavor = Some((parse_flavor(kind, lit)?, lit.span()));
            }
            "worker_threads" => {
                if worker_threads.is_some() {
                    return Err(repeated());
                }
                worker_threads = Some((parse_worker_threads(lit)?, lit.span()));
            }
            "start_paused" => {
                if start_paused.is_some() {
                    return Err(repeated());
                }
                let Lit::Bool(b) = lit else {
                    return Err(syn::Error::new_spanned(
                        lit,
                        "`start_paused` takes `true` or `false`",
                    ));
                };
                start_paused = Some((b.value, lit.span()));
            }
            "crate" => {
                if crate_path.is_some() {
                    return Err(repeated());
                }
                crate_path = Some(parse_crate_path(lit)?);
            }
            "unhandled_panic" | "name" => {
                return Err(syn::Error::new_spanned(
                    &arg,
                    format!(
                        "`{name}` sets one of tokio's unstable runtime options, which \
                         `rt_ext::Builder` does not offer; build the runtime with \
                         `rt_ext::Builder` by hand instead"
                    ),
                ))
            }
            "core_threads" => {
                return Err(syn::Error::new_spanned(
                    &arg.path,
                    "`core_threads` is now called `worker_threads`",
                ))
            }
            other => {
                return Err(syn::Error::new_spanned(
                    &arg.path,
                    format!("unknown argument `{other}`; the arguments are {ARGUMENTS}"),
                ))
            }
        }
    }

    let chosen = flavor.map_or(kind.default_flavor(), |(f, _)| f);
    // The hint to add a flavor only when none was given: an explicit one
    // contradicting another argument is the user's choice to revisit.
    let how = |wanted: &str| match flavor {
        Some(_) => String::new(),
        None => format!(
            " (the default of `#[{}]` is `{}`): add `flavor = \"{wanted}\"`",
            kind.attribute(),
            flavor_name(kind.default_flavor()),
        ),
    };
    if let (Some((_, span)), Flavor::CurrentThread) = (worker_threads, chosen) {
        return Err(syn::Error::new(
            span,
            format!(
                "`worker_threads` needs the `multi_thread` flavor{}",
                how("multi_thread")
            ),
        ));
    }
    if let (Some((_, span)), Flavor::MultiThread) = (start_paused, chosen) {
        return Err(syn::Error::new(
            span,
            format!(
                "`start_paused` needs the `current_thread` flavor, the only one whose clock \
                 tokio can pause{}",
                how("current_thread")
            ),
        ));
    }

    Ok(Config {
        flavor: chosen,
        worker_threads: worker_threads.map(|(n, _)| n),
        start_paused: start_paused.map(|(p, _)| p),
        crate_path: crate_path.unwrap_or_else(|| syn::parse_quote!(::rt_ext)),
    })
}

fn flavor_name(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::CurrentThread => "current_thread",
        Flavor::MultiThread => "multi_thread",
    }
}

/// The name of a `name = value` argument: one identifier (`crate` included).
fn arg_name(arg: &MetaNameValue) -> syn::Result<String> {
    match arg.path.get_ident() {
        Some(ident) => Ok(ident.to_string()),
        None => Err(syn::Error::new_spanned(
            &arg.path,
            format!("expected one of {ARGUMENTS}, not a path"),
        )),
    }
}

/// An argument without a value: a flavor written as a word, or an argument
/// whose value is missing.
fn bare_word(kind: Kind, path: &Path) -> syn::Error {
    let word = path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| path.to_token_stream().to_string());
    let msg = match word.as_str() {
        "multi_thread" | "current_thread" => format!(
            "set the flavor with `#[{}(flavor = \"{word}\")]`",
            kind.attribute()
        ),
        "flavor" | "worker_threads" | "start_paused" | "crate" => {
            format!("`{word}` needs a value: `{word} = ...`")
        }
        _ => format!("unknown argument `{word}`; the arguments are {ARGUMENTS}"),
    };
    syn::Error::new_spanned(path, msg)
}

fn parse_flavor(kind: Kind, lit: &Lit) -> syn::Result<Flavor> {
    let Lit::Str(s) = lit else {
        return Err(syn::Error::new_spanned(
            lit,
            "`flavor` takes a string: \"current_thread\" or \"multi_thread\"",
        ));
    };
    match s.value().as_str() {
        "current_thread" => Ok(Flavor::CurrentThread),
        "multi_thread" => Ok(Flavor::MultiThread),
        "local" => Err(syn::Error::new_spanned(
            lit,
            format!(
                "the `local` flavor (tokio's unstable `LocalRuntime`) is not supported by \
                 `#[{}]`; use `flavor = \"current_thread\"` and run `!Send` tasks on an \
                 `rt_ext::LocalSet`",
                kind.attribute()
            ),
        )),
        "single_thread" | "basic_scheduler" => Err(syn::Error::new_spanned(
            lit,
            "this flavor is called `current_thread`",
        )),
        "threaded_scheduler" => Err(syn::Error::new_spanned(
            lit,
            "this flavor is called `multi_thread`",
        )),
        other => Err(syn::Error::new_spanned(
            lit,
            format!(
                "unknown flavor `{other}`; the flavors are `current_thread` and `multi_thread`"
            ),
        )),
    }
}

fn parse_worker_threads(lit: &Lit) -> syn::Result<usize> {
    let Lit::Int(int) = lit else {
        return Err(syn::Error::new_spanned(
            lit,
            "`worker_threads` takes a positive integer",
        ));
    };
    match int.base10_parse::<usize>() {
        Ok(0) => Err(syn::Error::new_spanned(
            lit,
            "`worker_threads` must be at least 1",
        )),
        Ok(n) => Ok(n),
        Err(e) => Err(syn::Error::new_spanned(
            lit,
            format!("`worker_threads` takes a positive integer: {e}"),
        )),
    }
}

fn parse_crate_path(lit: &Lit) -> syn::Result<Path> {
    let Lit::Str(s) = lit else {
        return Err(syn::Error::new_spanned(
            lit,
            "`crate` takes the path to rt-ext as a string, such as \"::my_facade::rt_ext\"",
        ));
    };
    s.parse::<Path>().map_err(|_| {
        syn::Error::new_spanned(lit, format!("`crate`: \"{}\" is not a path", s.value()))
    })
}

// ===== the function =====

/// Checks the decorated function: what tokio refuses, refused here too.
fn check_fn(kind: Kind, item: &ItemFn) -> syn::Result<()> {
    if item.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            item.sig.fn_token.span,
            format!(
                "`#[{}]` goes on an `async fn`: the `async` keyword is missing",
                kind.attribute()
            ),
        ));
    }
    match kind {
        Kind::Main if item.sig.ident == "main" && !item.sig.inputs.is_empty() => {
            Err(syn::Error::new_spanned(
                &item.sig.inputs,
                "the `main` function cannot take arguments",
            ))
        }
        Kind::Test if !item.sig.inputs.is_empty() => Err(syn::Error::new_spanned(
            &item.sig.inputs,
            "a test function cannot take arguments",
        )),
        Kind::Test => match item.attrs.iter().find(|a| is_test_attribute(a)) {
            Some(attr) => Err(syn::Error::new_spanned(
                attr,
                "`#[rt_ext::test]` already makes this a test: remove this attribute",
            )),
            None => Ok(()),
        },
        Kind::Main => Ok(()),
    }
}

/// `#[test]`, or a path to it through `core` or `std` (`#[::core::prelude::v1::test]`).
fn is_test_attribute(attr: &Attribute) -> bool {
    let Meta::Path(path) = &attr.meta else {
        return false;
    };
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [only] => only == "test" && path.leading_colon.is_none(),
        [root, prelude, _, test] => {
            (root == "core" || root == "std") && prelude == "prelude" && test == "test"
        }
        _ => false,
    }
}

/// Whether a return type names an `impl Trait` or `!`, which cannot stand as
/// the output of a `dyn Future`.
fn unnameable(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "impl",
        TokenTree::Punct(p) => p.as_char() == '!',
        TokenTree::Group(g) => unnameable(g.stream()),
        TokenTree::Literal(_) => false,
    })
}

// ===== expansion =====

/// Expands the attribute `kind` with arguments `args` on `item`.
pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let item: ItemFn = match syn::parse2(item.clone()) {
        Ok(item) => item,
        // Not a function: hand the tokens back with the error, so that the
        // compiler reports the error rather than a missing item.
        Err(e) => {
            let mut tokens = item;
            tokens.extend(e.into_compile_error());
            return tokens;
        }
    };
    let checked = check_fn(kind, &item).and_then(|()| parse_config(kind, args));
    match checked {
        Ok(config) => generate(kind, &config, item),
        Err(e) => {
            let mut tokens = generate(kind, &Config::fallback(kind), item);
            tokens.extend(e.into_compile_error());
            tokens
        }
    }
}

/// The function, synchronous now, building an rt-ext runtime and running
/// the body on it with `Runtime::block_on`, which frames the body.
fn generate(kind: Kind, config: &Config, item: ItemFn) -> TokenStream {
    let ItemFn {
        mut attrs,
        vis,
        mut sig,
        block,
    } = item;
    sig.asyncness = None;
    // The body's inner attributes (`#![allow(..)]`) go on the function: an
    // async block cannot hold them.
    for attr in &mut attrs {
        attr.style = syn::AttrStyle::Outer;
    }
    let krate = &config.crate_path;
    let mut builder = match config.flavor {
        Flavor::CurrentThread => quote!(#krate::Builder::new_current_thread()),
        Flavor::MultiThread => quote!(#krate::Builder::new_multi_thread()),
    };
    if let Some(n) = config.worker_threads {
        builder = quote!(#builder.worker_threads(#n));
    }
    if let Some(paused) = config.start_paused {
        builder = quote!(#builder.start_paused(#paused));
    }
    let test_attr = match kind {
        Kind::Test => quote!(#[::core::prelude::v1::test]),
        Kind::Main => quote!(),
    };
    // A body of a nameable output type runs as a `Pin<&mut dyn Future>`: a
    // wrong return type is then reported at the body, and every test of a
    // crate shares one `block_on` instance instead of one each.
    let pinned = match &sig.output {
        ReturnType::Default => Some(quote!(())),
        ReturnType::Type(_, ty) if !unnameable(ty.to_token_stream()) => Some(quote!(#ty)),
        ReturnType::Type(..) => None,
    };
    let body = match pinned {
        Some(output) => quote! {
            let body = ::core::pin::pin!(body);
            let body: ::core::pin::Pin<&mut dyn ::core::future::Future<Output = #output>> = body;
        },
        None => quote!(),
    };
    quote! {
        #(#attrs)*
        #test_attr
        #vis #sig {
            let body = async #block;
            #body
            #[allow(clippy::expect_used, clippy::needless_return)]
            {
                return #builder
                    .enable_all()
                    .build()
                    .expect("failed to build the rt-ext runtime")
                    .block_on(body);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: Kind, args: &str) -> syn::Result<Config> {
        parse_config(kind, args.parse().expect("tokens"))
    }

    /// The error for `args`, and the text its span covers in `args`.
    fn error_at(kind: Kind, args: &str) -> (String, String) {
        let err = parse(kind, args).expect_err("an error");
        let span = err.span();
        let (start, end) = (span.start(), span.end());
        assert_eq!(start.line, 1);
        assert_eq!(end.line, 1);
        let pointed = args
            .chars()
            .skip(start.column)
            .take(end.column - start.column)
            .collect();
        (err.to_string(), pointed)
    }

    #[test]
    fn defaults_are_tokios() {
        let main = parse(Kind::Main, "").unwrap();
        assert_eq!(main.flavor, Flavor::MultiThread);
        assert_eq!(main.worker_threads, None);
        assert_eq!(main.start_paused, None);
        assert_eq!(main.crate_path.to_token_stream().to_string(), ":: rt_ext");
        assert_eq!(parse(Kind::Test, "").unwrap().flavor, Flavor::CurrentThread);
    }

    #[test]
    fn every_argument_is_read() {
        let c = parse(
            Kind::Test,
            r#"flavor = "multi_thread", worker_threads = 3, crate = "my::ctx""#,
        )
        .unwrap();
        assert_eq!(c.flavor, Flavor::MultiThread);
        assert_eq!(c.worker_threads, Some(3));
        assert_eq!(c.crate_path.to_token_stream().to_string(), "my :: ctx");
        let c = parse(
            Kind::Main,
            r#"flavor = "current_thread", start_paused = true,"#,
        )
        .unwrap();
        assert_eq!(
            (c.flavor, c.start_paused),
            (Flavor::CurrentThread, Some(true))
        );
        assert_eq!(
            parse(Kind::Test, "start_paused = false")
                .unwrap()
                .start_paused,
            Some(false)
        );
    }

    #[test]
    fn an_unknown_flavor_is_reported_at_its_value() {
        let (msg, at) = error_at(Kind::Main, r#"flavor = "threaded""#);
        assert!(msg.contains("unknown flavor `threaded`"), "{msg}");
        assert_eq!(at, r#""threaded""#);
        let (msg, at) = error_at(Kind::Main, r#"worker_threads = 2, flavor = "local""#);
        assert!(msg.contains("rt_ext::LocalSet"), "{msg}");
        assert_eq!(at, r#""local""#);
        let (msg, at) = error_at(Kind::Test, "flavor = 1");
        assert!(msg.contains("takes a string"), "{msg}");
        assert_eq!(at, "1");
    }

    #[test]
    fn zero_or_non_integer_workers_are_reported_at_the_value() {
        let (msg, at) = error_at(Kind::Main, "worker_threads = 0");
        assert!(msg.contains("at least 1"), "{msg}");
        assert_eq!(at, "0");
        let (msg, at) = error_at(Kind::Main, r#"worker_threads = "4""#);
        assert!(msg.contains("positive integer"), "{msg}");
        assert_eq!(at, r#""4""#);
        let (msg, at) = error_at(Kind::Main, "worker_threads = -1");
        assert!(msg.contains("positive integer"), "{msg}");
        assert_eq!(at, "-1");
        let (msg, at) = error_at(Kind::Main, "worker_threads = 1 + 1");
        assert!(msg.contains("must be a literal"), "{msg}");
        assert_eq!(at, "1 + 1");
    }

    #[test]
    fn flavor_conflicts_are_reported_at_the_conflicting_argument() {
        let (msg, at) = error_at(Kind::Test, "worker_threads = 4");
        assert!(msg.contains(r#"add `flavor = "multi_thread"`"#), "{msg}");
        assert_eq!(at, "4");
        let (msg, at) = error_at(
            Kind::Main,
            r#"flavor = "current_thread", worker_threads = 2"#,
        );
        assert!(msg.contains("needs the `multi_thread` flavor"), "{msg}");
        assert!(
            !msg.contains("add `flavor"),
            "the flavor is explicit: {msg}"
        );
        assert_eq!(at, "2");
        let (msg, at) = error_at(Kind::Main, "start_paused = true");
        assert!(msg.contains(r#"add `flavor = "current_thread"`"#), "{msg}");
        assert_eq!(at, "true");
        let (msg, at) = error_at(Kind::Test, "start_paused = 1");
        assert!(msg.contains("`true` or `false`"), "{msg}");
        assert_eq!(at, "1");
    }

    #[test]
    fn unknown_repeated_and_valueless_arguments_are_reported_at_their_name() {
        let (msg, at) = error_at(Kind::Main, "flavour = \"multi_thread\"");
        assert!(msg.contains("unknown argument `flavour`"), "{msg}");
        assert_eq!(at, "flavour");
        let (msg, at) = error_at(Kind::Main, "worker_threads = 1, worker_threads = 2");
        assert!(msg.contains("more than once"), "{msg}");
        assert_eq!(at, "worker_threads");
        let (msg, at) = error_at(Kind::Test, "crate");
        assert!(msg.contains("needs a value"), "{msg}");
        assert_eq!(at, "crate");
        let (msg, at) = error_at(Kind::Test, "multi_thread");
        assert!(
            msg.contains(r#"#[rt_ext::test(flavor = "multi_thread")]"#),
            "{msg}"
        );
        assert_eq!(at, "multi_thread");
        let (msg, at) = error_at(Kind::Main, "core_threads = 2");
        assert!(msg.contains("worker_threads"), "{msg}");
        assert_eq!(at, "core_threads");
        let (msg, at) = error_at(Kind::Main, "unhandled_panic = \"shutdown_runtime\"");
        assert!(msg.contains("unstable runtime options"), "{msg}");
        assert!(at.starts_with("unhandled_panic"), "{at}");
    }

    #[test]
    fn a_crate_path_that_does_not_parse_is_reported_at_its_value() {
        let (msg, at) = error_at(Kind::Main, r#"crate = "not a path""#);
        assert!(msg.contains("is not a path"), "{msg}");
        assert_eq!(at, r#""not a path""#);
        let (msg, _) = error_at(Kind::Main, "crate = rt_ext");
        assert!(msg.contains("must be a literal"), "{msg}");
    }

    #[test]
    fn malformed_argument_lists_are_errors_not_panics() {
        for args in [
            "=",
            "flavor =",
            ", ,",
            "flavor(1)",
            "a::b = 1",
            "flavor = \"x\" y",
        ] {
            assert!(parse(Kind::Main, args).is_err(), "{args}");
        }
    }

    fn expanded(kind: Kind, args: &str, item: &str) -> String {
        expand(kind, args.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn the_body_runs_on_an_rt_ext_runtime() {
        let out = expanded(
            Kind::Main,
            "worker_threads = 2",
            "async fn main() { work().await }",
        );
        assert!(out.starts_with("fn main ()"), "{out}");
        assert!(
            out.contains(":: rt_ext :: Builder :: new_multi_thread () . worker_threads (2usize)"),
            "{out}"
        );
        assert!(out.contains(". block_on (body)"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");

        let out = expanded(
            Kind::Test,
            r#"start_paused = true, crate = "ctx""#,
            "async fn t() -> Result<(), E> { Ok(()) }",
        );
        assert!(
            out.starts_with("# [:: core :: prelude :: v1 :: test] fn t ()"),
            "{out}"
        );
        assert!(
            out.contains("ctx :: Builder :: new_current_thread () . start_paused (true)"),
            "{out}"
        );
        assert!(out.contains("Output = Result < () , E >"), "{out}");
    }

    #[test]
    fn an_unnameable_output_is_not_pinned_as_dyn() {
        let out = expanded(Kind::Main, "", "async fn main() -> impl Termination { () }");
        assert!(!out.contains("dyn"), "{out}");
        let out = expanded(Kind::Main, "", "async fn main() -> ! { loop {} }");
        assert!(!out.contains("dyn"), "{out}");
    }

    #[test]
    fn a_bad_function_is_reported_and_still_expanded() {
        let out = expanded(Kind::Main, "", "fn main() {}");
        assert!(out.contains("the `async` keyword is missing"), "{out}");
        assert!(out.contains("fn main ()"), "{out}");
        let out = expanded(Kind::Test, "", "#[test] async fn t() {}");
        assert!(out.contains("already makes this a test"), "{out}");
        let out = expanded(Kind::Test, "", "async fn t(x: u8) {}");
        assert!(out.contains("cannot take arguments"), "{out}");
        let out = expanded(Kind::Main, "", "async fn main(x: u8) {}");
        assert!(out.contains("cannot take arguments"), "{out}");
        let out = expanded(Kind::Main, "flavor = 2", "async fn main() {}");
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("new_multi_thread"), "{out}");
        let out = expanded(Kind::Main, "", "struct NotAFn;");
        assert!(out.contains("compile_error"), "{out}");
    }

    #[test]
    fn inner_attributes_move_to_the_function() {
        let out = expanded(
            Kind::Test,
            "",
            "async fn t() { #![allow(unused)] let x = 1; }",
        );
        assert!(out.starts_with("# [allow (unused)]"), "{out}");
    }
}
