//! OS threads that start in the spawner's context.
//!
//! # Examples
//!
//! ```
//! use rt_ext as ctx;
//!
//! static JOB: ctx::Variable<&str> = ctx::Variable::new("job");
//!
//! let _j = JOB.set("reindex");
//! let seen = ctx::thread::spawn(|| JOB.get()).join().unwrap();
//! assert_eq!(seen, Some("reindex"));
//! ```

use std::io;
use std::thread::JoinHandle;

use crate::inherit;

/// Spawns an OS thread whose closure runs in the spawner's context, like
/// [`std::thread::spawn`]. The closure runs in its own frame: what it binds
/// never reaches the spawner.
///
/// # Panics
///
/// Panics if the OS fails to create a thread, as [`std::thread::spawn`] does;
/// use [`Builder::spawn`] to handle that error.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static JOB: ctx::Variable<u32> = ctx::Variable::new("job");
///
/// let _j = JOB.set(1);
/// let handle = ctx::thread::spawn(|| {
///     let _inner = JOB.set(2); // only in the thread's frame
///     JOB.get()
/// });
/// assert_eq!(handle.join().unwrap(), Some(2));
/// assert_eq!(JOB.get(), Some(1));
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(inherit::closure(f))
}

/// A [`std::thread::Builder`] whose threads start in the spawner's context.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static JOB: ctx::Variable<u32> = ctx::Variable::new("job");
///
/// let _j = JOB.set(3);
/// let handle = ctx::thread::Builder::new()
///     .name("worker".into())
///     .spawn(|| (std::thread::current().name().map(String::from), JOB.get()))
///     .unwrap();
/// assert_eq!(handle.join().unwrap(), (Some("worker".into()), Some(3)));
/// ```
#[derive(Debug)]
pub struct Builder {
    inner: std::thread::Builder,
}

impl Builder {
    /// A builder with the defaults of [`std::thread::Builder::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = rt_ext::thread::Builder::new().spawn(|| 1).unwrap();
    /// assert_eq!(handle.join().unwrap(), 1);
    /// ```
    #[allow(clippy::new_without_default)]
    pub fn new() -> Builder {
        Builder {
            inner: std::thread::Builder::new(),
        }
    }

    /// Names the thread (see [`std::thread::Builder::name`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = rt_ext::thread::Builder::new().name("io".into());
    /// # let _ = b;
    /// ```
    pub fn name(self, name: String) -> Builder {
        Builder {
            inner: self.inner.name(name),
        }
    }

    /// Sets the thread's stack size (see [`std::thread::Builder::stack_size`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let b = rt_ext::thread::Builder::new().stack_size(4 << 20);
    /// # let _ = b;
    /// ```
    pub fn stack_size(self, size: usize) -> Builder {
        Builder {
            inner: self.inner.stack_size(size),
        }
    }

    /// Spawns the thread; its closure runs in the spawner's context.
    ///
    /// # Errors
    ///
    /// Returns the OS error if the thread cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = rt_ext::thread::Builder::new().spawn(|| 2).unwrap();
    /// assert_eq!(handle.join().unwrap(), 2);
    /// ```
    pub fn spawn<F, T>(self, f: F) -> io::Result<JoinHandle<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.inner.spawn(inherit::closure(f))
    }
}
