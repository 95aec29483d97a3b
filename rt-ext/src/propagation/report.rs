//! What decoding found: the context, the entries it skipped and why, and the
//! errors that refuse a whole input.

use std::error::Error;
use std::fmt;

use spawn_hooks::Snapshot;

/// An input refused as a whole, before any of its entries was decoded into
/// the context. An input that is merely damaged in places is not refused: its
/// good entries are decoded and the others reported as [`Skipped`].
///
/// # Examples
///
/// ```
/// use rt_ext::propagation::{Codec, DecodeError};
///
/// let codec = Codec::builder().max_bytes(16).build().unwrap();
/// let err = codec.decode(&[0; 17]).unwrap_err();
/// assert_eq!(err, DecodeError::TooLarge { len: 17, max: 16 });
/// assert_eq!(err.to_string(), "rt-ext propagation: input of 17 bytes is over the limit of 16");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is longer than the codec's [`max_bytes`](crate::propagation::CodecBuilder::max_bytes);
    /// checked before anything is read or allocated.
    TooLarge {
        /// The input's length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input declares or holds more entries than the codec's
    /// [`max_entries`](crate::propagation::CodecBuilder::max_entries).
    TooManyEntries {
        /// The limit.
        max: usize,
    },
    /// The compact form does not start with its header (another format, or
    /// a newer version of this one).
    BadHeader,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge { len, max } => write!(
                f,
                "rt-ext propagation: input of {len} bytes is over the limit of {max}"
            ),
            DecodeError::TooManyEntries { max } => {
                write!(f, "rt-ext propagation: input has more than {max} entries")
            }
            DecodeError::BadHeader => f.write_str(
                "rt-ext propagation: input is not in the compact context format (bad header)",
            ),
        }
    }
}

impl Error for DecodeError {}

/// Why an entry of an input was not decoded into the context.
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::{Codec, SkipReason}};
///
/// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
/// let codec = Codec::builder().var(&TENANT).build().unwrap();
/// let decoded = codec.from_baggage_onto(&ctx::Snapshot::empty(), "tenant=acme,other=1").unwrap();
/// assert_eq!(decoded.skipped()[0].reason(), &SkipReason::Unknown);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// No variable of the codec has this name: it belongs to someone else.
    Unknown,
    /// A later entry of a name already decoded: the first entry of a name
    /// that decodes wins (one that fails does not hide a later good one).
    Duplicate,
    /// The value does not decode as the variable's type; the message is the
    /// deserializer's.
    Corrupt(String),
    /// The entry was written with a version this codec cannot read: newer
    /// than the variable's, or older with no migration for it.
    Version {
        /// The version on the wire.
        found: u32,
        /// The variable's version in this codec.
        current: u32,
    },
    /// The variable's migration refused the old value.
    Migration(String),
    /// The entry's framing is damaged or cut short, so it and what follows
    /// it in the input cannot be read.
    Malformed(&'static str),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Unknown => f.write_str("no variable of the codec has this name"),
            SkipReason::Duplicate => f.write_str("a second entry of the same name"),
            SkipReason::Corrupt(msg) => write!(f, "value does not decode: {msg}"),
            SkipReason::Version { found, current } => write!(
                f,
                "wire version {found} cannot be read as version {current}"
            ),
            SkipReason::Migration(msg) => write!(f, "migration refused the old value: {msg}"),
            SkipReason::Malformed(what) => write!(f, "malformed input: {what}"),
        }
    }
}

/// One entry that decoding skipped: its name if it could be read, and why.
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::Codec};
///
/// static N: ctx::Variable<u32> = ctx::Variable::new("n");
/// let codec = Codec::builder().var(&N).build().unwrap();
/// let decoded = codec.from_baggage_onto(&ctx::Snapshot::empty(), "n=oops").unwrap();
/// let skipped = &decoded.skipped()[0];
/// assert_eq!(skipped.name(), Some("n"));
/// assert!(skipped.to_string().starts_with("`n`: value does not decode"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub(crate) name: Option<String>,
    pub(crate) reason: SkipReason,
}

impl Skipped {
    /// The entry's name, `None` where the framing was too damaged to read it.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// let codec = Codec::builder().build().unwrap();
    /// let decoded = codec.from_baggage_onto(&rt_ext::Snapshot::empty(), "no-equals-sign").unwrap();
    /// assert_eq!(decoded.skipped()[0].name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Why the entry was skipped.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::{Codec, SkipReason};
    /// let codec = Codec::builder().build().unwrap();
    /// let decoded = codec.from_baggage_onto(&rt_ext::Snapshot::empty(), "k=v").unwrap();
    /// assert_eq!(decoded.skipped()[0].reason(), &SkipReason::Unknown);
    /// ```
    pub fn reason(&self) -> &SkipReason {
        &self.reason
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "`{name}`: {}", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

/// A decoded context and the report of what was skipped on the way.
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::Codec};
///
/// static ID: ctx::Variable<u64> = ctx::Variable::new("id");
/// let codec = Codec::builder().var(&ID).build().unwrap();
/// let decoded = codec.from_baggage_onto(&ctx::Snapshot::empty(), "id=7,id=8").unwrap();
/// assert_eq!(decoded.snapshot().get(&ID), Some(7));
/// assert_eq!(decoded.skipped().len(), 1); // the duplicate
/// let snapshot: ctx::Snapshot = decoded.into_snapshot();
/// assert_eq!(snapshot.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct Decoded {
    pub(crate) snapshot: Snapshot,
    pub(crate) skipped: Vec<Skipped>,
}

impl Decoded {
    /// The context: the base it was decoded onto plus the decoded entries.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// let codec = Codec::builder().build().unwrap();
    /// let decoded = codec.decode_onto(&rt_ext::Snapshot::empty(), &[]).unwrap();
    /// assert!(decoded.snapshot().is_empty());
    /// ```
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The context, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// let codec = Codec::builder().build().unwrap();
    /// let snapshot = codec.decode_onto(&rt_ext::Snapshot::empty(), &[]).unwrap().into_snapshot();
    /// assert!(snapshot.is_empty());
    /// ```
    pub fn into_snapshot(self) -> Snapshot {
        self.snapshot
    }

    /// The entries that were not decoded, in input order. Entries unknown to
    /// the codec are listed too, with [`SkipReason::Unknown`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// let codec = Codec::builder().build().unwrap();
    /// let decoded = codec.from_baggage_onto(&rt_ext::Snapshot::empty(), "a=1,b=2").unwrap();
    /// assert_eq!(decoded.skipped().len(), 2);
    /// ```
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }
}
