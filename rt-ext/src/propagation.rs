//! Context across process boundaries (the `propagation` cargo feature).
//!
//! A [`Codec`], built by the application, lists the variables that travel;
//! the others stay local. It writes and reads them in two forms:
//!
//! * compact bytes, for queues, RPC metadata and files: [`Codec::encode`],
//!   [`Codec::decode`];
//! * the W3C `baggage` header, which OpenTelemetry's baggage propagator reads
//!   and writes: [`Codec::to_baggage`], [`Codec::from_baggage`], and on
//!   `http` headers [`Codec::inject`], [`Codec::extract`].
//!
//! Tower layers put it on the wire: [`ClientLayer`] writes the caller's
//! context into each request, and [`ServerLayer`] serves each request
//! inside the context it carries, so the handler and the tasks it spawns
//! with [`crate::spawn`] see the caller's values. Tower is what hyper, axum
//! and tonic build on: one layer serves HTTP and gRPC.
//!
//! Named scopes ([`crate::named`], [`crate::push_scope`],
//! [`crate::scope_chain`]) make a chain of names that the codec carries too
//! when built with [`CodecBuilder::scope_chain`].
//!
//! # Versions
//!
//! A variable listed with [`CodecBuilder::var_versioned`] has a wire version
//! and a migration from older versions: a receiver decodes what an older
//! sender wrote and converts it. What a newer sender wrote is skipped and
//! reported, never misread.
//!
//! # Hostile input
//!
//! Decoding never panics and its memory is bounded by the input, whose size
//! is checked against [`Codec::max_bytes`] before anything is read. An input
//! over the size limit or with more than [`Codec::max_entries`] entries is
//! refused with a [`DecodeError`]. Otherwise every entry is decoded on its
//! own: unknown ones are skipped, corrupt or mistyped ones are skipped and
//! reported in [`Decoded::skipped`], and neither fails the good entries.
//! (A value type of your own that is recursive decodes with recursion as
//! deep as the input nests, up to the size limit: keep such types out of a
//! codec, or keep the limit small.)
//!
//! A length field is never trusted. In the compact form, a value of `n`
//! bytes holds at most `n` elements in all its sequences and maps (each
//! takes at least a byte), and a collection is presized only for elements
//! its value can hold: a map that declares `u64::MAX` entries costs what
//! its entries really there cost, and decoding a hostile input of the size
//! limit takes about as long as decoding a valid one. A value that declares
//! more elements than it can hold is reported as [`SkipReason::Corrupt`].
//! Elements of zero-sized types (`()`, unit structs) take no bytes: up to
//! `64 × (n + 1)` of them are read, so a `Vec<()>` of up to 127 elements
//! always decodes, and a much longer one is reported. (So is a collection of
//! a type that takes no bytes on the wire but is not zero-sized, such as a
//! struct whose fields are all `#[serde(skip)]`, beyond `n` elements.)
//!
//! ```
//! use std::collections::HashMap;
//! use rt_ext::{self as ctx, propagation::{Codec, SkipReason}};
//!
//! static ATTRS: ctx::Variable<HashMap<String, String>> = ctx::Variable::new("attrs");
//! let codec = Codec::builder().var(&ATTRS).build().unwrap();
//! // one entry, `attrs`, whose value declares u64::MAX entries and holds none
//! let mut input = vec![0xC7, 1, 1, 5];
//! input.extend(b"attrs");
//! input.extend([0, 10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
//! let decoded = codec.decode_onto(&ctx::Snapshot::empty(), &input).unwrap();
//! assert!(decoded.snapshot().is_empty());
//! assert!(matches!(decoded.skipped()[0].reason(), SkipReason::Corrupt(_)));
//! ```
//!
//! # Examples
//!
//! ```
//! use rt_ext::{self as ctx, propagation::Codec};
//!
//! static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
//! static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
//!
//! let codec = Codec::builder().var(&REQUEST_ID).var(&TENANT).scope_chain().build().unwrap();
//! let rt = ctx::Runtime::new().unwrap();
//!
//! // the sending side
//! let header = rt.block_on(ctx::named("checkout", async {
//!     let _id = REQUEST_ID.set(42);
//!     let _tenant = TENANT.set("acme".into());
//!     codec.to_baggage(&ctx::Snapshot::capture())
//! }));
//! assert_eq!(header, r#"request_id=42,tenant=acme,scope_chain=[%22checkout%22]"#);
//!
//! // the receiving side
//! let received = codec.from_baggage(&header).unwrap();
//! let (id, chain) = rt.block_on(received.scope(async {
//!     ctx::named("payment", async {
//!         ctx::spawn(async { (REQUEST_ID.get(), ctx::scope_chain().to_string()) }).await.unwrap()
//!     })
//!     .await
//! }));
//! assert_eq!(id, Some(42));
//! assert_eq!(chain, "checkout > payment");
//! ```

pub(crate) mod baggage;
mod bounded;
mod codec;
mod compact;
mod http;
mod report;
pub(crate) mod scope;

pub use self::codec::{
    BuildError, Codec, CodecBuilder, MigrateError, OldValue, DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES,
};
pub use self::http::{Client, ClientLayer, Extracted, Server, ServerLayer, BAGGAGE};
pub use self::report::{DecodeError, Decoded, SkipReason, Skipped};
