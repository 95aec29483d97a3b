//! `Codec`: the user's list of the variables that cross the boundary, and
//! the type-erased encode and decode of each.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use spawn_hooks::{Snapshot, Variable};

use super::baggage::BareText;
use super::bounded;
use super::report::SkipReason;
use super::scope::{ScopeChain, SCOPE_CHAIN};

/// The default of [`CodecBuilder::max_bytes`]: the W3C baggage limit.
///
/// # Examples
///
/// ```
/// use rt_ext::propagation::{Codec, DEFAULT_MAX_BYTES};
/// assert_eq!(Codec::builder().build().unwrap().max_bytes(), DEFAULT_MAX_BYTES);
/// ```
pub const DEFAULT_MAX_BYTES: usize = 8192;
/// The default of [`CodecBuilder::max_entries`]: the W3C baggage limit.
///
/// # Examples
///
/// ```
/// use rt_ext::propagation::{Codec, DEFAULT_MAX_ENTRIES};
/// assert_eq!(Codec::builder().build().unwrap().max_entries(), DEFAULT_MAX_ENTRIES);
/// ```
pub const DEFAULT_MAX_ENTRIES: usize = 180;

// ===== Codec =====

/// The variables that cross a process boundary, and how.
///
/// Built by the application with [`Codec::builder`], listing each variable
/// that travels; variables not listed stay local. A variable's wire name is
/// its [`Variable::name`], unique in a codec. Cloning is a reference count.
///
/// Two forms: compact bytes ([`encode`](Codec::encode),
/// [`decode`](Codec::decode)) and the W3C `baggage` header
/// ([`to_baggage`](Codec::to_baggage), [`from_baggage`](Codec::from_baggage)),
/// which OpenTelemetry's baggage propagator reads and writes.
///
/// Values are `serde` types. The compact form writes them with postcard,
/// which is not self-describing: a type that needs a self-describing format
/// to deserialize (`serde_json::Value`, `#[serde(untagged)]` or internally
/// tagged enums, `#[serde(flatten)]`) is sent, but the receiver reports it as
/// [`SkipReason::Corrupt`]; the baggage form (JSON) carries those.
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::Codec};
///
/// static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
/// static TENANT: ctx::Variable<String> = ctx::Variable::new("tenant");
/// static SECRET: ctx::Variable<String> = ctx::Variable::new("secret");
///
/// let codec = Codec::builder().var(&REQUEST_ID).var(&TENANT).build().unwrap();
/// let sent = ctx::Snapshot::empty()
///     .with(&REQUEST_ID, 42)
///     .with(&TENANT, "acme".to_string())
///     .with(&SECRET, "local only".to_string());
/// assert_eq!(codec.to_baggage(&sent), "request_id=42,tenant=acme");
///
/// let received = codec.decode(&codec.encode(&sent)).unwrap();
/// assert_eq!(received.get(&REQUEST_ID), Some(42));
/// assert_eq!(received.get(&TENANT).as_deref(), Some("acme"));
/// assert_eq!(received.get(&SECRET), None);
/// ```
#[derive(Clone)]
pub struct Codec {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) entries: Vec<Box<dyn Erased>>,
    by_name: HashMap<&'static str, usize>,
    pub(crate) max_bytes: usize,
    pub(crate) max_entries: usize,
}

impl Codec {
    /// Starts listing the variables of a codec.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// static ID: ctx::Variable<u64> = ctx::Variable::new("id");
    /// let codec = Codec::builder().var(&ID).build().unwrap();
    /// assert_eq!(codec.names().collect::<Vec<_>>(), ["id"]);
    /// ```
    pub fn builder() -> CodecBuilder {
        CodecBuilder {
            entries: Vec::new(),
            error: None,
            max_bytes: DEFAULT_MAX_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }

    /// The wire names of the codec's variables, in the order they were listed.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// let codec = Codec::builder().scope_chain().build().unwrap();
    /// assert_eq!(codec.names().collect::<Vec<_>>(), ["scope_chain"]);
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.inner.entries.iter().map(|e| e.name())
    }

    /// The codec's size limit for one input or output, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// assert_eq!(Codec::builder().build().unwrap().max_bytes(), 8192);
    /// ```
    pub fn max_bytes(&self) -> usize {
        self.inner.max_bytes
    }

    /// The codec's limit on the entries of one input or output.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// assert_eq!(Codec::builder().build().unwrap().max_entries(), 180);
    /// ```
    pub fn max_entries(&self) -> usize {
        self.inner.max_entries
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<(usize, &dyn Erased)> {
        let &index = self.inner.by_name.get(name)?;
        Some((index, &*self.inner.entries[index]))
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("variables", &self.names().collect::<Vec<_>>())
            .field("max_bytes", &self.inner.max_bytes)
            .field("max_entries", &self.inner.max_entries)
            .finish()
    }
}

// ===== CodecBuilder =====

/// Lists the variables of a [`Codec`]; made by [`Codec::builder`].
///
/// Mistakes (two variables of one name, a name that cannot be a baggage key)
/// are reported by [`build`](CodecBuilder::build), never by a panic.
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::{BuildError, Codec}};
/// static A: ctx::Variable<u8> = ctx::Variable::new("dup");
/// static B: ctx::Variable<u8> = ctx::Variable::new("dup");
/// let err = Codec::builder().var(&A).var(&B).build().unwrap_err();
/// assert_eq!(err, BuildError::DuplicateName("dup"));
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct CodecBuilder {
    entries: Vec<Box<dyn Erased>>,
    error: Option<BuildError>,
    max_bytes: usize,
    max_entries: usize,
}

impl CodecBuilder {
    /// Adds a variable that crosses the boundary, at version 0 (a variable
    /// that never changed its wire type).
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// #[derive(Clone, serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    /// struct Caller { service: String, zone: u8 }
    /// static CALLER: ctx::Variable<Caller> = ctx::Variable::new("caller");
    /// let codec = Codec::builder().var(&CALLER).build().unwrap();
    /// let caller = Caller { service: "billing".into(), zone: 3 };
    /// let sent = ctx::Snapshot::empty().with(&CALLER, caller.clone());
    /// assert_eq!(codec.decode(&codec.encode(&sent)).unwrap().get(&CALLER), Some(caller));
    /// ```
    pub fn var<T>(self, var: &'static Variable<T>) -> CodecBuilder
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self.push(Box::new(Typed {
            var,
            version: 0,
            migrate: None,
        }))
    }

    /// Adds a variable whose wire type is at `version`, with `migrate`
    /// turning a value written by an older version into the current type.
    ///
    /// `migrate` gets the [`OldValue`] (its version, and a way to decode it as
    /// the type of that version) and returns the current value or a
    /// [`MigrateError`]. A value written by a *newer* version than this
    /// codec's is skipped and reported ([`SkipReason::Version`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::{Codec, MigrateError}};
    /// use serde::{Deserialize, Serialize};
    ///
    /// // version 1 sent a bare user name; version 2 sends a struct
    /// #[derive(Clone, Serialize, Deserialize, Debug, PartialEq)]
    /// struct User { name: String, admin: bool }
    ///
    /// static USER_V1: ctx::Variable<String> = ctx::Variable::new("user");
    /// static USER: ctx::Variable<User> = ctx::Variable::new("user");
    ///
    /// let old = Codec::builder().var_versioned(&USER_V1, 1, |old| Err(MigrateError::unsupported(&old))).build().unwrap();
    /// let new = Codec::builder()
    ///     .var_versioned(&USER, 2, |old| match old.version() {
    ///         1 => Ok(User { name: old.decode::<String>()?, admin: false }),
    ///         _ => Err(MigrateError::unsupported(&old)),
    ///     })
    ///     .build()
    ///     .unwrap();
    ///
    /// let sent = ctx::Snapshot::empty().with(&USER_V1, "ada".to_string());
    /// let received = new.decode(&old.encode(&sent)).unwrap();
    /// assert_eq!(received.get(&USER), Some(User { name: "ada".into(), admin: false }));
    /// let received = new.from_baggage(&old.to_baggage(&sent)).unwrap();
    /// assert_eq!(received.get(&USER).map(|u| u.name), Some("ada".into()));
    /// ```
    pub fn var_versioned<T, M>(
        self,
        var: &'static Variable<T>,
        version: u32,
        migrate: M,
    ) -> CodecBuilder
    where
        T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        M: Fn(OldValue<'_>) -> Result<T, MigrateError> + Send + Sync + 'static,
    {
        self.push(Box::new(Typed {
            var,
            version,
            migrate: Some(Box::new(migrate)),
        }))
    }

    /// Adds the named-scope chain ([`crate::scope_chain`]), under the wire
    /// name `scope_chain`: the receiver's chain starts with the sender's.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::Codec};
    /// let codec = Codec::builder().scope_chain().build().unwrap();
    /// let sent = ctx::Runtime::new().unwrap().block_on(ctx::named("client", async {
    ///     codec.encode(&ctx::Snapshot::capture())
    /// }));
    /// let received = codec.decode(&sent).unwrap();
    /// let chain = received.run(|| ctx::named("server", async { ctx::scope_chain() }));
    /// let chain = futures::executor::block_on(chain);
    /// assert_eq!(chain.to_string(), "client > server");
    /// ```
    pub fn scope_chain(self) -> CodecBuilder {
        self.push(Box::new(Typed::<ScopeChain> {
            var: &SCOPE_CHAIN,
            version: 0,
            migrate: None,
        }))
    }

    /// The size limit of one input or output of either form, in bytes
    /// (default 8192, the W3C baggage limit). An input over it is refused
    /// before anything is read; the encoders leave out entries that would
    /// not fit.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// assert_eq!(Codec::builder().max_bytes(1024).build().unwrap().max_bytes(), 1024);
    /// ```
    pub fn max_bytes(mut self, max: usize) -> CodecBuilder {
        self.max_bytes = max;
        self
    }

    /// The limit on the entries of one input or output of either form
    /// (default 180, the W3C baggage limit). Unknown entries count.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::propagation::Codec;
    /// assert_eq!(Codec::builder().max_entries(8).build().unwrap().max_entries(), 8);
    /// ```
    pub fn max_entries(mut self, max: usize) -> CodecBuilder {
        self.max_entries = max;
        self
    }

    /// The codec, or the first mistake made listing its variables.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{self as ctx, propagation::{BuildError, Codec}};
    /// static BAD: ctx::Variable<u8> = ctx::Variable::new("has space");
    /// assert_eq!(Codec::builder().var(&BAD).build().unwrap_err(), BuildError::InvalidName("has space"));
    /// ```
    pub fn build(self) -> Result<Codec, BuildError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let by_name = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name(), i))
            .collect();
        Ok(Codec {
            inner: Arc::new(Inner {
                entries: self.entries,
                by_name,
                max_bytes: self.max_bytes,
                max_entries: self.max_entries,
            }),
        })
    }

    fn push(mut self, entry: Box<dyn Erased>) -> CodecBuilder {
        if self.error.is_some() {
            return self;
        }
        let name = entry.name();
        if !is_valid_name(name) {
            self.error = Some(BuildError::InvalidName(name));
        } else if self.entries.iter().any(|e| e.name() == name) {
            self.error = Some(BuildError::DuplicateName(name));
        } else {
            self.entries.push(entry);
        }
        self
    }
}

impl fmt::Debug for CodecBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodecBuilder")
            .field(
                "variables",
                &self.entries.iter().map(|e| e.name()).collect::<Vec<_>>(),
            )
            .field("error", &self.error)
            .finish()
    }
}

/// The longest wire name a codec accepts.
pub(crate) const MAX_NAME_LEN: usize = 256;

/// A wire name must be a W3C baggage key (an RFC 7230 token), so that both
/// forms carry it unchanged.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&'*+-.^_`|~".contains(&b))
}

/// A mistake in the list of a codec's variables, reported by
/// [`CodecBuilder::build`].
///
/// # Examples
///
/// ```
/// use rt_ext::propagation::BuildError;
/// let err = BuildError::DuplicateName("tenant");
/// assert_eq!(err.to_string(), "rt-ext propagation: two variables of the codec are named `tenant`");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// Two variables of the codec have this name; a wire name must say which
    /// variable an entry belongs to.
    DuplicateName(&'static str),
    /// This name cannot be a baggage key: it must be 1 to 256 characters of
    /// letters, digits and ``!#$&'*+-.^_`|~``.
    InvalidName(&'static str),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::DuplicateName(name) => write!(
                f,
                "rt-ext propagation: two variables of the codec are named `{name}`"
            ),
            BuildError::InvalidName(name) => write!(
                f,
                "rt-ext propagation: `{name}` cannot be a wire name (1 to {MAX_NAME_LEN} letters, digits or !#$&'*+-.^_`|~)"
            ),
        }
    }
}

impl Error for BuildError {}

// ===== OldValue, MigrateError =====

/// A value written by an older version of a variable, given to the
/// variable's migration (see [`CodecBuilder::var_versioned`]).
///
/// # Examples
///
/// ```
/// use rt_ext::{self as ctx, propagation::{Codec, MigrateError}};
/// static PORT: ctx::Variable<u32> = ctx::Variable::new("port");
/// static PORT_V0: ctx::Variable<u16> = ctx::Variable::new("port");
/// let codec = Codec::builder()
///     .var_versioned(&PORT, 1, |old| {
///         assert_eq!(old.version(), 0);
///         old.decode::<u16>().map(u32::from)
///     })
///     .build()
///     .unwrap();
/// let v0 = Codec::builder().var(&PORT_V0).build().unwrap();
/// let sent = v0.encode(&ctx::Snapshot::empty().with(&PORT_V0, 8080));
/// assert_eq!(codec.decode(&sent).unwrap().get(&PORT), Some(8080));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct OldValue<'a> {
    version: u32,
    payload: Payload<'a>,
}

impl OldValue<'_> {
    /// The version the value was written with.
    ///
    /// # Examples
    ///
    /// See [`OldValue`].
    ///
    /// ```
    /// # use rt_ext::{self as ctx, propagation::{Codec, MigrateError}};
    /// # static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let codec = Codec::builder().var_versioned(&V, 3, |old| match old.version() {
    ///     2 => old.decode::<u8>(),
    ///     _ => Err(MigrateError::unsupported(&old)),
    /// });
    /// # codec.build().unwrap();
    /// ```
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Decodes the value as `U`, the type the variable had at that version.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext::{self as ctx, propagation::Codec};
    /// # static V: ctx::Variable<String> = ctx::Variable::new("v");
    /// let codec = Codec::builder().var_versioned(&V, 1, |old| Ok(old.decode::<u64>()?.to_string()));
    /// let codec = codec.build().unwrap();
    /// assert_eq!(codec.from_baggage("v=12").unwrap().get(&V).as_deref(), Some("12"));
    /// ```
    pub fn decode<U: DeserializeOwned>(&self) -> Result<U, MigrateError> {
        self.payload.decode().map_err(MigrateError)
    }
}

/// Why a migration could not turn an [`OldValue`] into the current type; the
/// entry is skipped and reported with [`SkipReason::Migration`].
///
/// # Examples
///
/// ```
/// use rt_ext::propagation::MigrateError;
/// let err = MigrateError::new("version 1 had no tenant");
/// assert_eq!(err.to_string(), "version 1 had no tenant");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrateError(String);

impl MigrateError {
    /// An error with this message.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext::propagation::MigrateError;
    /// let err = MigrateError::new(format!("no route for zone {}", 9));
    /// # assert!(err.to_string().contains("zone 9"));
    /// ```
    pub fn new(message: impl Into<String>) -> MigrateError {
        MigrateError(message.into())
    }

    /// The error for a version the migration does not know.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext::{self as ctx, propagation::{Codec, MigrateError, SkipReason}};
    /// # static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let codec = Codec::builder()
    ///     .var_versioned(&V, 5, |old| Err(MigrateError::unsupported(&old)))
    ///     .build()
    ///     .unwrap();
    /// let decoded = codec.from_baggage_onto(&ctx::Snapshot::empty(), "v=1;v=4").unwrap();
    /// assert_eq!(decoded.skipped()[0].reason(), &SkipReason::Migration("no migration from version 4".into()));
    /// ```
    pub fn unsupported(old: &OldValue<'_>) -> MigrateError {
        MigrateError(format!("no migration from version {}", old.version))
    }
}

impl fmt::Display for MigrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for MigrateError {}

// ===== Payload =====

/// A value as found on the wire, in one of the two forms.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Payload<'a> {
    /// Compact form: the value's postcard encoding.
    Bytes(&'a [u8]),
    /// Baggage form: the percent-decoded text.
    Text(&'a str),
}

impl Payload<'_> {
    pub(crate) fn decode<U: DeserializeOwned>(self) -> Result<U, String> {
        match self {
            Payload::Bytes(bytes) => bounded::from_bytes(bytes),
            // JSON first; text that is not JSON of the type is taken as a
            // bare string, which is how string-like values are written (see
            // `to_text`).
            Payload::Text(text) => serde_json::from_str::<U>(text).or_else(|json_error| {
                U::deserialize(BareText(text)).map_err(|_| json_error.to_string())
            }),
        }
    }
}

/// The baggage text of a value: a value that serializes to a string (a
/// `String`, but also a newtype or `Some` of one, a unit variant, a `char`)
/// as that string when it cannot be mistaken for JSON, anything else as
/// JSON. `None` if it does not serialize. [`BareText`] reads the bare ones
/// back.
fn to_text<T: Serialize>(value: &T) -> Option<String> {
    match serde_json::to_value(value).ok()? {
        serde_json::Value::String(s) if serde_json::from_str::<serde_json::Value>(&s).is_err() => {
            Some(s)
        }
        other => Some(other.to_string()),
    }
}

// ===== type erasure =====

/// One variable of a codec, with its type erased.
pub(crate) trait Erased: Send + Sync {
    fn name(&self) -> &'static str;
    fn version(&self) -> u32;
    /// The value's compact encoding, `None` if unset or unserializable.
    fn to_bytes(&self, snapshot: &Snapshot) -> Option<Vec<u8>>;
    /// The value's baggage text (not yet percent-encoded).
    fn to_text(&self, snapshot: &Snapshot) -> Option<String>;
    /// `onto` plus the decoded value.
    fn decode(
        &self,
        onto: &Snapshot,
        version: u32,
        payload: Payload<'_>,
    ) -> Result<Snapshot, SkipReason>;
}

type Migrate<T> = Box<dyn Fn(OldValue<'_>) -> Result<T, MigrateError> + Send + Sync>;

struct Typed<T: 'static> {
    var: &'static Variable<T>,
    version: u32,
    migrate: Option<Migrate<T>>,
}

impl<T> Erased for Typed<T>
where
    T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.var.name()
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn to_bytes(&self, snapshot: &Snapshot) -> Option<Vec<u8>> {
        postcard::to_allocvec(&snapshot.get(self.var)?).ok()
    }

    fn to_text(&self, snapshot: &Snapshot) -> Option<String> {
        to_text(&snapshot.get(self.var)?)
    }

    fn decode(
        &self,
        onto: &Snapshot,
        version: u32,
        payload: Payload<'_>,
    ) -> Result<Snapshot, SkipReason> {
        let value = if version == self.version {
            payload.decode::<T>().map_err(SkipReason::Corrupt)?
        } else {
            match &self.migrate {
                Some(migrate) if version < self.version => {
                    migrate(OldValue { version, payload })
                        .map_err(|e| SkipReason::Migration(e.0))?
                }
                _ => {
                    return Err(SkipReason::Version {
                        found: version,
                        current: self.version,
                    })
                }
            }
        };
        Ok(onto.with(self.var, value))
    }
}
