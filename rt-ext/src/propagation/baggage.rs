//! The W3C `baggage` form: `key=value` list-members separated by commas,
//! values percent-encoded, optional `;property` parts. A variable's wire
//! version other than 0 travels as the property `v=N`, which OpenTelemetry's
//! propagator keeps as the entry's metadata.
//!
//! Values: a value that serializes to a string (a `String`, a newtype or
//! `Some` of one, a unit variant, `Cow<str>`, `Arc<str>`, a `char`...) is
//! written as that string (percent-encoded) unless it would read as JSON,
//! anything else as its JSON. A value is read as JSON of the variable's type
//! first, then as a bare string ([`BareText`]), so what the writer puts out
//! bare comes back, and `tenant=acme` and `count=3` written by other baggage
//! writers decode too.

use std::fmt::Write as _;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::de::{Deserializer, IntoDeserializer as _, Visitor};
use spawn_hooks::Snapshot;

use super::codec::{Codec, Payload};
use super::report::{DecodeError, Decoded, SkipReason, Skipped};

/// What a value may not hold raw: everything outside W3C `baggage-octet`
/// (non-ASCII is always encoded), plus `=`, which some readers split on.
/// The OpenTelemetry propagator encodes baggage keys and values with it too.
pub(crate) const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%')
    .add(b'=');

/// The name of the property that carries a wire version.
const VERSION_PROPERTY: &str = "v";

impl Codec {
    /// The W3C `baggage` header value of the codec's variables bound in
    /// `snapshot`. A value that fails to serialize, or that would take the
    /// header over [`max_bytes`](Codec::max_bytes) or
    /// [`max_entries`](Codec::max_entries), is left out (as the W3C spec
    /// asks of a writer over the limits).
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
    /// static TAGS: ctx::Variable<Vec<u8>> = ctx::Variable::new("tags");
    /// let codec = Codec::builder().var(&TENANT).var(&TAGS).build().unwrap();
    /// let snapshot = ctx::Snapshot::empty()
    ///     .with(&TENANT, "acme corp".to_string())
    ///     .with(&TAGS, vec![1, 2]);
    /// assert_eq!(codec.to_baggage(&snapshot), "tenant=acme%20corp,tags=[1%2C2]");
    /// ```
    pub fn to_baggage(&self, snapshot: &Snapshot) -> String {
        let mut out = String::new();
        let mut count = 0;
        for entry in &self.inner.entries {
            if count >= self.inner.max_entries {
                break;
            }
            let Some(text) = entry.to_text(snapshot) else {
                continue;
            };
            let start = out.len();
            if count > 0 {
                out.push(',');
            }
            out.push_str(entry.name());
            out.push('=');
            out.extend(utf8_percent_encode(&text, VALUE));
            if entry.version() != 0 {
                let _ = write!(out, ";{VERSION_PROPERTY}={}", entry.version());
            }
            if out.len() > self.inner.max_bytes {
                out.truncate(start);
                continue;
            }
            count += 1;
        }
        out
    }

    /// Decodes a context from a W3C `baggage` header value. Entries that
    /// cannot be decoded, and entries of other owners, are skipped (see
    /// [`from_baggage_onto`](Codec::from_baggage_onto) for the report).
    ///
    /// A value is read as JSON of the variable's type, or else as bare text
    /// where the type reads a string (a `String`, a newtype or `Option` of
    /// one, a unit variant): what [`to_baggage`](Codec::to_baggage) writes,
    /// and the plain values of other baggage writers.
    ///
    /// # Errors
    ///
    /// [`DecodeError`] if the header is over the size limit or has more
    /// list-members than the entry limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
    /// static ATTEMPT: ctx::Variable<u32> = ctx::Variable::new("attempt");
    /// let codec = Codec::builder().var(&TENANT).var(&ATTEMPT).build().unwrap();
    /// let snapshot = codec.from_baggage("userId=alice, tenant=acme%20corp;p=1, attempt=3").unwrap();
    /// assert_eq!(snapshot.get(&TENANT).as_deref(), Some("acme corp"));
    /// assert_eq!(snapshot.get(&ATTEMPT), Some(3));
    ///
    /// #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// struct UserId(String);
    /// static USER: ctx::Variable<Option<UserId>> = ctx::Variable::new("userId");
    /// let codec = Codec::builder().var(&USER).build().unwrap();
    /// let snapshot = codec.from_baggage("userId=alice").unwrap();
    /// assert_eq!(snapshot.get(&USER), Some(Some(UserId("alice".into()))));
    /// assert_eq!(codec.to_baggage(&snapshot), "userId=alice");
    /// ```
    pub fn from_baggage(&self, header: &str) -> Result<Snapshot, DecodeError> {
        self.from_baggage_onto(&Snapshot::empty(), header)
            .map(|decoded| decoded.snapshot)
    }

    /// Decodes a `baggage` header value onto `base` (a received value
    /// replaces the base's), and reports each skipped list-member: not a
    /// `key=value`, unknown, not valid percent-encoded UTF-8, of the wrong
    /// type, or of an unreadable version. Empty list-members are ignored.
    ///
    /// # Errors
    ///
    /// As [`from_baggage`](Codec::from_baggage).
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::{Codec, SkipReason}};
    /// static ATTEMPT: ctx::Variable<u32> = ctx::Variable::new("attempt");
    /// let codec = Codec::builder().var(&ATTEMPT).build().unwrap();
    /// let decoded = codec.from_baggage_onto(&ctx::Snapshot::empty(), "attempt=-1").unwrap();
    /// assert!(matches!(decoded.skipped()[0].reason(), SkipReason::Corrupt(_)));
    /// assert_eq!(decoded.snapshot().get(&ATTEMPT), None);
    /// ```
    pub fn from_baggage_onto(&self, base: &Snapshot, header: &str) -> Result<Decoded, DecodeError> {
        self.decode_baggage_parts(base, &[header])
    }

    /// Decodes the values of one or more `baggage` headers, which together
    /// are one list.
    pub(crate) fn decode_baggage_parts(
        &self,
        base: &Snapshot,
        parts: &[&str],
    ) -> Result<Decoded, DecodeError> {
        let max = self.inner.max_bytes;
        // Commas that would join the parts count toward the length.
        let len = parts.iter().map(|p| p.len()).sum::<usize>() + parts.len().saturating_sub(1);
        if len > max {
            return Err(DecodeError::TooLarge { len, max });
        }
        let members = || {
            parts
                .iter()
                .flat_map(|part| part.split(','))
                .map(|member| member.trim_matches([' ', '\t']))
                .filter(|member| !member.is_empty())
        };
        if members().count() > self.inner.max_entries {
            return Err(DecodeError::TooManyEntries {
                max: self.inner.max_entries,
            });
        }
        let mut decoded = Decoded {
            snapshot: base.clone(),
            skipped: Vec::new(),
        };
        let mut seen = vec![false; self.inner.entries.len()];
        for member in members() {
            if let Err(skipped) = self.member(member, &mut decoded.snapshot, &mut seen) {
                decoded.skipped.push(skipped);
            }
        }
        Ok(decoded)
    }

    fn member(
        &self,
        member: &str,
        snapshot: &mut Snapshot,
        seen: &mut [bool],
    ) -> Result<(), Skipped> {
        let mut parts = member.split(';');
        let key_value = parts.next().unwrap_or_default();
        let Some((key, value)) = key_value.split_once('=') else {
            return Err(Skipped {
                name: None,
                reason: SkipReason::Malformed("a list-member is not `key=value`"),
            });
        };
        let key = key.trim_matches([' ', '\t']);
        let key = percent_decode_str(key).decode_utf8_lossy();
        let skip = |reason| Skipped {
            name: Some(key.clone().into_owned()),
            reason,
        };
        let Some((index, var)) = self.lookup(&key) else {
            return Err(skip(SkipReason::Unknown));
        };
        if seen[index] {
            return Err(skip(SkipReason::Duplicate));
        }
        let mut version = 0;
        for property in parts {
            let Some((name, value)) = property.split_once('=') else {
                continue;
            };
            if name.trim_matches([' ', '\t']) == VERSION_PROPERTY {
                version = value.trim_matches([' ', '\t']).parse().map_err(|_| {
                    skip(SkipReason::Malformed(
                        "the version property is not a number",
                    ))
                })?;
            }
        }
        let value = value.trim_matches([' ', '\t']);
        let value = percent_decode_str(value).decode_utf8().map_err(|_| {
            skip(SkipReason::Corrupt(
                "value is not UTF-8 once percent-decoded".into(),
            ))
        })?;
        *snapshot = var
            .decode(snapshot, version, Payload::Text(&value))
            .map_err(skip)?;
        // Only a decoded entry makes later ones of its name duplicates.
        seen[index] = true;
        Ok(())
    }
}

// ===== bare text =====

/// Baggage text that is not JSON, read as the string it is.
///
/// Whatever serializes to a string reads it back: a string-like type
/// directly, through any number of newtypes and `Some`s, and a unit variant
/// by its name. Every other shape (numbers, sequences, structs, the other
/// variants) gets a type error, so bare text never makes a wrong value right.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BareText<'a>(pub(crate) &'a str);

impl<'de> Deserializer<'de> for BareText<'_> {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_str(self.0)
    }

    // `None` is written as `null`, which is JSON: bare text is always `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ValueError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ValueError> {
        // serde's string deserializer reads a string as a unit variant.
        let text: StrDeserializer<'_, ValueError> = self.0.into_deserializer();
        text.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}
