//! Named scopes: a chain of names that follows the execution into spawned
//! work and, through a codec, across process boundaries.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq as _, Serializer};
use serde::{Deserialize, Serialize};
use spawn_hooks::{BindError, Binding, FutureExt as _, Variable};

/// The most names a scope chain holds. Entering a scope in a full chain
/// drops the oldest name; a longer chain received from elsewhere keeps its
/// newest names.
///
/// # Examples
///
/// ```
/// use rt_ext::{ScopeChain, MAX_SCOPE_CHAIN};
/// let full = (0..MAX_SCOPE_CHAIN).fold(ScopeChain::default(), |c, i| c.push(i.to_string()));
/// assert_eq!(full.push("newest").iter().next(), Some("1"));
/// ```
pub const MAX_SCOPE_CHAIN: usize = 32;

/// The chain is an ordinary context variable (wire name `scope_chain`).
pub(crate) static SCOPE_CHAIN: Variable<ScopeChain> = Variable::new("scope_chain");

/// The names of the scopes the current code runs in, outermost first; see
/// [`crate::named`] and [`crate::push_scope`].
///
/// Cloning is a reference count. At most [`MAX_SCOPE_CHAIN`] names: when a
/// scope is entered in a full chain, the oldest name is dropped.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// ctx::Runtime::new().unwrap().block_on(ctx::named("request", async {
///     let chain = ctx::spawn(ctx::named("db", async { ctx::scope_chain() })).await.unwrap();
///     assert_eq!(chain.iter().collect::<Vec<_>>(), ["request", "db"]);
///     assert_eq!(chain.to_string(), "request > db");
/// }));
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeChain {
    names: Option<Arc<[Arc<str>]>>,
}

impl ScopeChain {
    /// The names, outermost first.
    ///
    /// # Examples
    ///
    /// ```
    /// let chain = rt_ext::ScopeChain::default().push("a").push("b");
    /// assert_eq!(chain.iter().collect::<Vec<_>>(), ["a", "b"]);
    /// ```
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.as_slice().iter().map(|name| &**name)
    }

    /// The names, outermost first, as shared strings.
    ///
    /// # Examples
    ///
    /// ```
    /// let chain = rt_ext::ScopeChain::default().push("a");
    /// assert_eq!(&*chain.as_slice()[0], "a");
    /// ```
    pub fn as_slice(&self) -> &[Arc<str>] {
        self.names.as_deref().unwrap_or_default()
    }

    /// The number of names.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(rt_ext::ScopeChain::default().push("a").len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether there is no name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(rt_ext::scope_chain().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The innermost name.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(rt_ext::ScopeChain::default().push("a").push("b").last(), Some("b"));
    /// ```
    pub fn last(&self) -> Option<&str> {
        self.iter().next_back()
    }

    /// A new chain with `name` innermost (this one is unchanged); the oldest
    /// name is dropped if this one is full.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::{ScopeChain, MAX_SCOPE_CHAIN};
    /// let mut chain = ScopeChain::default();
    /// for i in 0..MAX_SCOPE_CHAIN + 2 {
    ///     chain = chain.push(i.to_string());
    /// }
    /// assert_eq!(chain.len(), MAX_SCOPE_CHAIN);
    /// assert_eq!(chain.iter().next(), Some("2"));
    /// ```
    pub fn push(&self, name: impl Into<Arc<str>>) -> ScopeChain {
        let names = self.as_slice();
        let keep = names.len().min(MAX_SCOPE_CHAIN - 1);
        let names = names[names.len() - keep..]
            .iter()
            .cloned()
            .chain(std::iter::once(name.into()))
            .collect();
        ScopeChain { names: Some(names) }
    }
}

impl fmt::Display for ScopeChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, name) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" > ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

impl fmt::Debug for ScopeChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A sequence of strings, outermost first.
impl Serialize for ScopeChain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for name in self.iter() {
            seq.serialize_element(name)?;
        }
        seq.end()
    }
}

/// Keeps the newest [`MAX_SCOPE_CHAIN`] names of a longer sequence, and never
/// allocates from a declared length.
impl<'de> Deserialize<'de> for ScopeChain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Names;
        impl<'de> Visitor<'de> for Names {
            type Value = ScopeChain;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of scope names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ScopeChain, A::Error> {
                let mut names = VecDeque::new();
                while let Some(name) = seq.next_element::<String>()? {
                    if names.len() == MAX_SCOPE_CHAIN {
                        names.pop_front();
                    }
                    names.push_back(Arc::<str>::from(name));
                }
                Ok(ScopeChain {
                    names: (!names.is_empty()).then(|| names.into_iter().collect()),
                })
            }
        }
        deserializer.deserialize_seq(Names)
    }
}

/// The current scope chain: the names of the scopes entered by
/// [`named`] and [`push_scope`] here, in the frames this code inherited
/// from, and (through a codec) in the process that sent the context.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// ctx::Runtime::new().unwrap().block_on(async {
///     assert!(ctx::scope_chain().is_empty());
///     let _outer = ctx::push_scope("job");
///     ctx::named("step", async { assert_eq!(ctx::scope_chain().to_string(), "job > step") }).await;
/// });
/// ```
pub fn scope_chain() -> ScopeChain {
    SCOPE_CHAIN.get().unwrap_or_default()
}

/// Runs `fut` in its own frame where the scope chain is the one current
/// where `named` is called (a frame takes its context at its creation, as
/// `.frame()` does) with `name` innermost. Work spawned inside inherits it.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// let chain = futures::executor::block_on(ctx::named("outer", async {
///     ctx::named("inner", async { ctx::scope_chain() }).await
/// }));
/// assert_eq!(chain.to_string(), "outer > inner");
/// assert!(ctx::scope_chain().is_empty());
///
/// // Made outside "outer" (an argument is evaluated before the call), the
/// // inner frame starts from the chain where it was made.
/// let chain = futures::executor::block_on(ctx::named("outer", ctx::named("inner", async {
///     ctx::scope_chain()
/// })));
/// assert_eq!(chain.to_string(), "inner");
/// ```
pub fn named<F: Future>(name: impl Into<Arc<str>>, fut: F) -> impl Future<Output = F::Output> {
    let name = name.into();
    async move {
        // In the frame made below, which is never unframed: binding succeeds.
        let _scope = SCOPE_CHAIN.set(scope_chain().push(name));
        fut.await
    }
    .frame()
}

/// Adds `name` to the scope chain of the current frame until the returned
/// guard drops, across awaits.
///
/// # Panics
///
/// Where [`Variable::set`] panics: in a tokio runtime thread's unframed code
/// (see the crate docs); [`try_push_scope`] returns the error instead.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// ctx::Runtime::new().unwrap().block_on(async {
///     let scope = ctx::push_scope("import");
///     let chain = ctx::spawn(async { ctx::scope_chain() }).await.unwrap();
///     assert_eq!(chain.last(), Some("import"));
///     drop(scope);
///     assert!(ctx::scope_chain().is_empty());
/// });
/// ```
#[track_caller]
pub fn push_scope(name: impl Into<Arc<str>>) -> Binding {
    SCOPE_CHAIN.set(scope_chain().push(name))
}

/// Like [`push_scope`], but returns an error instead of panicking where the
/// current frame refuses bindings.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
/// let rt = tokio::runtime::Runtime::new().unwrap(); // a plain runtime: unframed
/// rt.block_on(async { assert!(ctx::try_push_scope("x").is_err()) });
/// ```
pub fn try_push_scope(name: impl Into<Arc<str>>) -> Result<Binding, BindError> {
    SCOPE_CHAIN.try_set(scope_chain().push(name))
}
