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
/// # use spawn_hooks as rt_ext;
/// use rt_ext::Variable;
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
    Unframed(Site),
    Borrowed,
    Destroyed,
}

/// Where unframed code ran: the fixes that apply differ.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Site {
    /// A task tokio spawned without rt-ext: by the user's own code, or by a
    /// library (hyper and axum spawn a task per connection), or a plain
    /// `spawn_blocking` closure.
    Task,
    /// The future of a plain runtime's `block_on`: the body of
    /// `#[tokio::main]` or `#[tokio::test]`. (Without tokio nothing is
    /// refused, so no site is ever made.)
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    BlockOn,
}

impl Site {
    /// Told apart when the error is made, on the thread that refused: inside
    /// a task tokio knows the task's id, and `block_on`'s future is no task.
    fn here() -> Site {
        #[cfg(feature = "tokio")]
        if tokio::task::try_id().is_none() {
            return Site::BlockOn;
        }
        Site::Task
    }
}

impl BindError {
    pub(crate) fn unframed(what: &'static str) -> BindError {
        BindError {
            what,
            kind: Kind::Unframed(Site::here()),
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
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
    /// static V: Variable<u8> = Variable::new("v");
    /// let err = V.try_set(1).err();
    /// assert!(err.map_or(true, |e| !e.is_unframed()));
    /// ```
    pub fn is_unframed(&self) -> bool {
        matches!(self.kind, Kind::Unframed(_))
    }

    /// Whether the binding was attempted inside a
    /// [`Variable::with`](crate::Variable::with) callback, which borrows the
    /// current frame.
    ///
    /// # Examples
    ///
    /// ```
    /// # use spawn_hooks as rt_ext;
    /// # use rt_ext::Variable;
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
            Kind::Unframed(Site::Task) => write!(
                f,
                "cannot bind {what}: this code runs unframed, in a task that tokio spawned \
                 without rt-ext (plain `tokio::spawn`, `spawn_local` or `spawn_blocking`, \
                 called by your code or by a library: hyper and axum spawn one per \
                 connection), so the binding would leak into other tasks run on this \
                 thread. What works here: bind for one future with \
                 `Variable::scope(value, future)` (or give the future a frame with \
                 `.frame()`, from `rt_ext::FutureExt`); in a server, wrap the service in \
                 `rt_ext::tower::FrameLayer`, which runs each request in a frame of its \
                 own; spawn your own tasks with `rt_ext::spawn` (`rt_ext::spawn_local`, \
                 `rt_ext::spawn_blocking`); for tasks that a library spawns, build the \
                 runtime with `rt_ext::Builder` (or `#[rt_ext::main]`) under \
                 `--cfg tokio_unstable`, where every task gets a frame",
                what = Quoted(self.what),
            ),
            Kind::Unframed(Site::BlockOn) => write!(
                f,
                "cannot bind {what}: this code runs unframed, in a future run by a plain \
                 tokio runtime's `block_on` (such as the body of `#[tokio::main]` or \
                 `#[tokio::test]`), so the binding would leak into other code run on this \
                 thread. What works here: replace `#[tokio::main]` and `#[tokio::test]` \
                 with `#[rt_ext::main]` and `#[rt_ext::test]` (same arguments); run the \
                 future with `rt_ext::Runtime::block_on`; or bind for one future with \
                 `Variable::scope(value, future)` (or give it a frame with `.frame()`, \
                 from `rt_ext::FutureExt`). Work spawned from here should use \
                 `rt_ext::spawn`",
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
