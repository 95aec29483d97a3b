//! `#[rt_ext::instrument]`: tracing's `#[instrument]`, with the future it
//! instruments given a frame of its own inside the span.
//!
//! The arguments go to tracing's attribute untouched (so do its errors,
//! which point into them); this attribute only rewrites the body:
//!
//! * an `async fn` body `{ body }` becomes
//!   `{ ::rt_ext::FutureExt::frame(async move { body }).await }`, with a
//!   first, never-taken `return` of the declared output type, so that the
//!   inner block's type is the function's (`?`, `return`, `.into()` and
//!   coercions at a `return` infer as they do in the function itself);
//! * a synchronous function whose tail is an async block, bare or in a
//!   `Box::pin(..)` (what `#[async_trait]` makes of an `async fn`), gets
//!   the same frame inside that block: tracing instruments that block;
//! * any other synchronous function is left as it is: tracing enters the
//!   span around the call, and a synchronous body cannot await anyway.
//!
//! tracing's attribute then wraps the (new) body in its instrumented
//! future, so the frame is polled inside the span: guards taken in the body
//! re-enter after the span on every resume. Values the body produces are
//! unchanged, so `ret` and `err` see what they would have seen.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Attribute, Block, Expr, ExprAsync, ReturnType, Signature, Stmt, Type, Visibility};

/// A function whose body is kept as tokens after its inner attributes: a
/// body that does not parse (yet, in an editor) still expands, and the
/// compiler reports what is wrong in it where it is.
struct LooseFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    inner_attrs: Vec<Attribute>,
    body: TokenStream,
}

impl Parse for LooseFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let content;
        syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let body = content.parse()?;
        Ok(LooseFn {
            attrs,
            vis,
            sig,
            inner_attrs,
            body,
        })
    }
}

/// Expands `#[rt_ext::instrument(args)]` on `item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    // The attribute that does the instrumenting: tracing's, through
    // rt-ext (which turns it into a compile error without its `tracing`
    // feature). Spanned at this attribute, so that errors about it point
    // here.
    let tracing_attr = quote_spanned!(Span::call_site()=>
        #[::rt_ext::__private::instrument(#args)]
    );
    let Ok(func) = syn::parse2::<LooseFn>(item.clone()) else {
        // Not a function: tracing's attribute reports it, at the item.
        return quote!(#tracing_attr #item);
    };
    let duplicate = func
        .attrs
        .iter()
        .find(|a| {
            a.path()
                .segments
                .last()
                .is_some_and(|s| s.ident == "instrument")
        })
        .map(|a| {
            syn::Error::new_spanned(
                a,
                "this function is already instrumented by `#[rt_ext::instrument]`: \
                 remove this attribute",
            )
            .into_compile_error()
        });
    let LooseFn {
        attrs,
        vis,
        sig,
        inner_attrs,
        body,
    } = func;
    let body = if sig.asyncness.is_some() {
        frame_async_body(&sig, body)
    } else {
        frame_returned_future(body)
    };
    quote! {
        #tracing_attr
        #(#attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #body
        }
        #duplicate
    }
}

/// The body of an `async fn`, run in a frame of its own.
fn frame_async_body(sig: &Signature, body: TokenStream) -> TokenStream {
    // The output type, with `impl Trait` (and `!`) left to inference: the
    // first `return` the compiler sees in the block fixes its type, before
    // any `return` or `?` of the body.
    let (output, at) = match &sig.output {
        ReturnType::Default => (quote!(()), sig.ident.span()),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            InferOpaque.visit_type_mut(&mut ty);
            let at = ty.span();
            (ty.into_token_stream(), at)
        }
    };
    let typed_output = quote_spanned! {at=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::needless_return,
            clippy::unit_arg
        )]
        if false {
            return ::core::convert::identity::<#output>(loop {});
        }
    };
    quote! {
        ::rt_ext::FutureExt::frame(async move {
            #typed_output
            #body
        })
        .await
    }
}

/// A synchronous body whose tail is the future the function returns (an
/// async block, bare or pinned in a box, as `#[async_trait]` writes it):
/// that future's block runs in a frame of its own. Any other body is
/// returned as it is.
fn frame_returned_future(body: TokenStream) -> TokenStream {
    let Ok(mut block) = syn::parse2::<Block>(quote!({ #body })) else {
        return body;
    };
    let Some(Stmt::Expr(tail, None)) = block.stmts.last_mut() else {
        return body;
    };
    let Some(future) = returned_async_block(tail) else {
        return body;
    };
    let inner = &future.block;
    // The inner block captures as the outer one does: by move from a
    // `move` block, by the inferred mode from a plain one.
    let capture = &future.capture;
    future.block = syn::parse_quote!({
        ::rt_ext::FutureExt::frame(async #capture #inner).await
    });
    let stmts = &block.stmts;
    quote!(#(#stmts)*)
}

/// The async block that `tail` is or that it pins in a box.
fn returned_async_block(tail: &mut Expr) -> Option<&mut ExprAsync> {
    match tail {
        Expr::Async(future) => Some(future),
        Expr::Call(call) if call.args.len() == 1 => {
            let Expr::Path(func) = &*call.func else {
                return None;
            };
            let segments: Vec<_> = func.path.segments.iter().map(|s| &s.ident).collect();
            let pins_a_box =
                matches!(segments.as_slice(), [.., b, p] if *b == "Box" && *p == "pin");
            match call.args.first_mut() {
                Some(Expr::Async(future)) if pins_a_box => Some(future),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Replaces `impl Trait` and `!` with `_`, which a type argument may hold.
struct InferOpaque;

impl VisitMut for InferOpaque {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        match ty {
            Type::ImplTrait(_) | Type::Never(_) => {
                *ty = Type::Infer(syn::TypeInfer {
                    underscore_token: syn::Token![_](ty.span()),
                });
            }
            _ => syn::visit_mut::visit_type_mut(self, ty),
        }
    }
}

/// What `rt_ext::__private::instrument` is without rt-ext's `tracing`
/// feature: the function as it is, and an error at the attribute.
pub(crate) fn needs_tracing(item: TokenStream) -> TokenStream {
    let error = syn::Error::new(
        Span::call_site(),
        "`#[rt_ext::instrument]` needs rt-ext's `tracing` feature: \
         `rt-ext = { version = \"0.1\", features = [\"tracing\"] }`",
    )
    .into_compile_error();
    quote!(#item #error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(args: &str, item: &str) -> String {
        expand(args.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    #[test]
    fn the_arguments_go_to_tracing_untouched() {
        let out = expanded(
            r#"skip(a), fields(b = %a.len()), err(Debug), ret, level = "debug", name = "n""#,
            "async fn f(a: String) -> Result<u8, E> { Ok(1) }",
        );
        assert!(
            out.starts_with(
                "# [:: rt_ext :: __private :: instrument (skip (a) , fields (b = % a . len ()) , \
                 err (Debug) , ret , level = \"debug\" , name = \"n\")]"
            ),
            "{out}"
        );
    }

    #[test]
    fn an_async_body_gets_a_frame_of_its_own_typed_as_the_function() {
        let out = expanded(
            "",
            "pub async fn f(&self, x: u8) -> Result<u8, E> { g(x)?; Ok(x) }",
        );
        assert!(
            out.contains(
                "pub async fn f (& self , x : u8) -> Result < u8 , E > { \
                 :: rt_ext :: FutureExt :: frame (async move {"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "return :: core :: convert :: identity :: < Result < u8 , E > > (loop { }) ;"
            ),
            "{out}"
        );
        assert!(out.contains("g (x) ?"), "{out}");
        assert!(out.ends_with("Ok (x) }) . await }"), "{out}");
    }

    #[test]
    fn opaque_and_never_types_are_left_to_inference() {
        let out = expanded("", "async fn f() -> Result<impl Display, Box<!>> { Ok(1) }");
        assert!(
            out.contains("identity :: < Result < _ , Box < _ > > >"),
            "{out}"
        );
        let out = expanded("", "async fn f() { }");
        assert!(out.contains("identity :: < () >"), "{out}");
    }

    #[test]
    fn inner_attributes_stay_at_the_top_of_the_function() {
        let out = expanded("", "async fn f() { #![allow(unused)] let x = 1; }");
        assert!(
            out.contains("async fn f () { # ! [allow (unused)] :: rt_ext :: FutureExt :: frame"),
            "{out}"
        );
    }

    #[test]
    fn a_sync_function_is_left_to_tracing() {
        let item = "fn f(x: u8) -> u8 { let y = x; y + 1 }";
        let out = expanded("level = \"info\"", item);
        let untouched: TokenStream = item.parse().unwrap();
        assert!(out.ends_with(&untouched.to_string()), "{out}");
        assert!(!out.contains("frame"), "{out}");
        // A tail that is not an async block, or is one behind another call.
        for item in [
            "fn f() -> Pin<Box<dyn Future<Output = ()>>> { Box::new(async {}) }",
            "fn f() -> Fut { wrap(async move {}) }",
            "fn f() -> Fut { let x = async {}; x }",
            "fn f() { async {}; }",
        ] {
            assert!(!expanded("", item).contains("frame"), "{item}");
        }
    }

    #[test]
    fn a_returned_async_block_gets_the_frame_as_async_trait_writes_it() {
        let out = expanded(
            "",
            "fn f<'a>(&'a self) -> Pin<Box<dyn Future<Output = u8> + Send + 'a>> { \
             Box::pin(async move { let __self = self; 1 }) }",
        );
        assert!(
            out.contains(
                "Box :: pin (async move { :: rt_ext :: FutureExt :: frame (async move \
                 { let __self = self ; 1 }) . await })"
            ),
            "{out}"
        );
        let out = expanded(
            "",
            "fn f() -> impl Future<Output = u8> { let a = 1; async { a } }",
        );
        assert!(
            out.contains(
                "let a = 1 ; async { :: rt_ext :: FutureExt :: frame (async { a }) . await }"
            ),
            "{out}"
        );
        let out = expanded("", "fn f() -> F { ::std::boxed::Box::pin(async { 1 }) }");
        assert!(out.contains("frame (async { 1 })"), "{out}");
    }

    #[test]
    fn only_another_instrument_attribute_is_a_duplicate() {
        let out = expanded("", "#[tracing::instrument] async fn f() {}");
        assert!(out.contains("already instrumented"), "{out}");
        let out = expanded("", "#[doc = \"x\"] async fn f() {}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    /// The columns (on line 1) that the tokens spelled `text` cover in `out`.
    fn columns_of(out: TokenStream, text: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for tt in out {
            match tt {
                proc_macro2::TokenTree::Group(g) => found.extend(columns_of(g.stream(), text)),
                other if other.to_string() == text => {
                    let span = other.span();
                    assert_eq!(span.start().line, 1);
                    found.push((span.start().column, span.end().column));
                }
                _ => {}
            }
        }
        found
    }

    #[test]
    fn the_arguments_keep_their_spans_so_tracings_errors_point_into_them() {
        let args = "skip(nope), level = \"info\"";
        let out = expand(
            args.parse().unwrap(),
            "async fn f(x: u8) {}".parse().unwrap(),
        );
        assert_eq!(columns_of(out.clone(), "nope"), [(5, 9)]);
        assert_eq!(columns_of(out, "\"info\""), [(20, 26)]);
    }

    #[test]
    fn a_second_instrument_attribute_is_reported_at_it() {
        let item = "#[doc = \"d\"] #[tracing::instrument(ret)] async fn f() {}";
        let out = expand(TokenStream::new(), item.parse().unwrap());
        let error = out
            .clone()
            .into_iter()
            .map(|tt| tt.span())
            .zip(out.into_iter().map(|tt| tt.to_string()))
            .find(|(_, text)| text.contains("already instrumented"))
            .map(|(span, _)| span)
            .unwrap();
        // Within `#[tracing::instrument(ret)]`, columns 14 to 41, not at
        // the function or at `#[doc]`.
        let (start, end) = (error.start().column, error.end().column);
        assert!(14 <= start && start < end && end <= 41, "{start}..{end}");
    }

    #[test]
    fn what_is_not_a_function_goes_to_tracing_as_it_is() {
        let out = expanded("", "struct S;");
        assert_eq!(
            out,
            "# [:: rt_ext :: __private :: instrument ()] struct S ;"
        );
        // A body that does not parse is kept as tokens.
        let out = expanded("", "async fn f() { let = ; }");
        assert!(out.contains("frame (async move {"), "{out}");
        assert!(out.contains("let = ;"), "{out}");
    }

    #[test]
    fn without_tracing_the_function_stays_and_an_error_says_why() {
        let out = needs_tracing("fn f() {}".parse().unwrap()).to_string();
        assert!(out.starts_with("fn f () { }"), "{out}");
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("`tracing` feature"), "{out}");
    }
}
