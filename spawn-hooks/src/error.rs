//! The error returned when a binding or hook cannot be registered.

use std::error::Error;
use std::fmt;

/// Returned by [`Variable::try_set`](crate::Variable::try_set) and
/// [`try_enter`](crate::try_enter) when the current frame refuses a binding or
/// a hook; the panicking twins (`set`, `enter`) panic with its message.
///
/// # Examples
///
/// ```
/// use spawn_hooks::Variable;
///
/// static REQUEST_ID: Variable<u64> = Variable::new("request_id");
///
/// // Outside any runtime, the thread's base frame accepts bindings.
/// let binding = REQUEST_ID.try_set(7).expect("plain threads may bind");
/// assert_eq!(REQUEST_ID.get(), Some(7));
/// drop(binding);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BindError {
    what: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Unframed,
    Borrowed,
    Destroyed,
}

impl BindError {
    pub(crate) fn unframed(what: &'static str) -> BindError {
        BindError {
            what,
            kind: Kind::Unframed,
        }
    }

    pub(crate) fn borrowed(what: &'static str) -> BindError {
        BindError {
            what,
            kind: Kind::Borrowed,
        }
    }

    pub(crate) fn destroyed(what: &'static str) -> BindError {
        BindError {
            what,
            kind: Kind::Destroyed,
        }
    }

    /// Whether the binding was refused because the code runs unframed on a
    /// runtime thread (a task spawned with plain `tokio::spawn`, or a future
    /// run by a plain runtime's `block_on`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks::Variable;
    /// static V: Variable<u8> = Variable::new("v");
    /// let err = V.try_set(1).err();
    /// assert!(err.map_or(true, |e| !e.is_unframed()));
    /// ```
    pub fn is_unframed(&self) -> bool {
        self.kind == Kind::Unframed
    }

    /// Whether the binding was attempted inside a
    /// [`Variable::with`](crate::Variable::with) callback, which borrows the
    /// current frame.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks::Variable;
    /// static A: Variable<u8> = Variable::new("a");
    /// static B: Variable<u8> = Variable::new("b");
    /// let _a = A.set(1);
    /// let err = A.with(|_| B.try_set(1).unwrap_err());
    /// assert!(err.is_borrowed());
    /// ```
    pub fn is_borrowed(&self) -> bool {
        self.kind == Kind::Borrowed
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::Unframed => write!(
                f,
                "cannot bind {what}: this code runs unframed on a tokio runtime thread \
                 (a task spawned with plain `tokio::spawn` or `spawn_local`, or a future \
                 run by a plain runtime's `block_on`), so the binding would leak into \
                 other tasks run there; spawn the task with `rt_ext::spawn` (or \
                 `rt_ext::spawn_local`), run the future with `rt_ext::Runtime::block_on`, \
                 or wrap it with `.frame()` (`rt_ext::FutureExt`)",
                what = Quoted(self.what),
            ),
            Kind::Borrowed => write!(
                f,
                "cannot bind {what} inside a `Variable::with` callback, which borrows the \
                 current context; use `Variable::get` to copy the value out first",
                what = Quoted(self.what),
            ),
            Kind::Destroyed => write!(
                f,
                "cannot bind {what}: this thread's context has been destroyed \
                 (the thread is exiting)",
                what = Quoted(self.what),
            ),
        }
    }
}

/// Writes a variable name in backquotes, or a description as it is.
struct Quoted(&'static str);

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains(' ') {
            f.write_str(self.0)
        } else {
            write!(f, "variable `{}`", self.0)
        }
    }
}

impl fmt::Debug for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindError")
            .field("what", &self.what)
            .field("kind", &self.kind)
            .finish()
    }
}

impl Error for BindError {}
