//! `Builder`, `Runtime` and `Handle`: tokio's, with context.
//!
//! They mirror `tokio::runtime::{Builder, Runtime, Handle}` method for method.
//! The differences: `block_on` runs its future in a frame that starts from the
//! calling thread's context, and `spawn`/`spawn_blocking` inherit the caller's
//! context as [`crate::spawn`] does.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use crate::inherit;
use tokio::runtime::{EnterGuard, TryCurrentError};
use tokio::task::JoinHandle;

// ===== Builder =====

/// Builds a [`Runtime`]: [`tokio::runtime::Builder`] with the same method
/// names and `&mut self` chaining.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static REQUEST: ctx::Variable<u64> = ctx::Variable::new("request");
///
/// let rt = ctx::Builder::new_multi_thread()
///     .worker_threads(2)
///     .thread_name("app-worker")
///     .enable_all()
///     .build()
///     .unwrap();
/// rt.block_on(async {
///     let _r = REQUEST.set(1);
///     assert_eq!(ctx::spawn(async { REQUEST.get() }).await.unwrap(), Some(1));
/// });
/// ```
pub struct Builder {
    inner: tokio::runtime::Builder,
    /// What spawning adds in the runtime (see `Settings`).
    pub(crate) settings: Settings,
    /// Runtime-hook mode: tokio's task hooks, composed with the user's.
    #[cfg(tokio_unstable)]
    hooks: hook_config::HookConfig,
    /// Without `tokio_unstable`: whether `frame_every_task(true)` was asked
    /// for, which `build` then refuses.
    #[cfg(not(tokio_unstable))]
    frame_every_task: bool,
}

impl Builder {
    /// A builder for a runtime that runs everything on the thread that calls
    /// `block_on` (see [`tokio::runtime::Builder::new_current_thread`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_current_thread().build().unwrap();
    /// assert_eq!(rt.block_on(async { 1 }), 1);
    /// ```
    pub fn new_current_thread() -> Builder {
        Builder::wrap(tokio::runtime::Builder::new_current_thread())
    }

    /// A builder for a work-stealing runtime with a pool of worker threads
    /// (see [`tokio::runtime::Builder::new_multi_thread`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    /// assert_eq!(rt.block_on(async { 1 }), 1);
    /// ```
    pub fn new_multi_thread() -> Builder {
        Builder::wrap(tokio::runtime::Builder::new_multi_thread())
    }

    /// Enables every driver compiled into tokio (I/O, time).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_current_thread().enable_all().build().unwrap();
    /// rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(1)).await });
    /// ```
    pub fn enable_all(&mut self) -> &mut Self {
        self.inner.enable_all();
        self
    }

    /// Enables the I/O driver (see [`tokio::runtime::Builder::enable_io`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_current_thread().enable_io().build().unwrap();
    /// # drop(rt);
    /// ```
    #[cfg(feature = "net")]
    pub fn enable_io(&mut self) -> &mut Self {
        self.inner.enable_io();
        self
    }

    /// Enables the time driver (see [`tokio::runtime::Builder::enable_time`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_current_thread().enable_time().build().unwrap();
    /// rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(1)).await });
    /// ```
    #[cfg(feature = "time")]
    pub fn enable_time(&mut self) -> &mut Self {
        self.inner.enable_time();
        self
    }

    /// The number of worker threads of a multi-thread runtime.
    ///
    /// # Panics
    ///
    /// Panics if `val` is 0, as tokio does.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().worker_threads(3).build().unwrap();
    /// assert_eq!(rt.handle().inner().metrics().num_workers(), 3);
    /// ```
    #[track_caller]
    pub fn worker_threads(&mut self, val: usize) -> &mut Self {
        self.inner.worker_threads(val);
        self
    }

    /// The most threads the blocking pool may start.
    ///
    /// # Panics
    ///
    /// Panics if `val` is 0, as tokio does.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().max_blocking_threads(4).build().unwrap();
    /// # drop(rt);
    /// ```
    #[track_caller]
    pub fn max_blocking_threads(&mut self, val: usize) -> &mut Self {
        self.inner.max_blocking_threads(val);
        self
    }

    /// The name of the runtime's threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().thread_name("db").build().unwrap();
    /// let name = rt.block_on(async {
    ///     rt_ext::spawn_blocking(|| std::thread::current().name().map(String::from)).await
    /// });
    /// assert_eq!(name.unwrap().as_deref(), Some("db"));
    /// ```
    pub fn thread_name(&mut self, val: impl Into<String>) -> &mut Self {
        self.inner.thread_name(val);
        self
    }

    /// A function that names each of the runtime's threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// static N: AtomicUsize = AtomicUsize::new(0);
    /// let rt = rt_ext::Builder::new_multi_thread()
    ///     .thread_name_fn(|| format!("w-{}", N.fetch_add(1, Ordering::Relaxed)))
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn thread_name_fn<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn() -> String + Send + Sync + 'static,
    {
        self.inner.thread_name_fn(f);
        self
    }

    /// The stack size of the runtime's threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().thread_stack_size(4 << 20).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn thread_stack_size(&mut self, val: usize) -> &mut Self {
        self.inner.thread_stack_size(val);
        self
    }

    /// Runs `f` on each runtime thread after it starts.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let s = started.clone();
    /// let rt = rt_ext::Builder::new_multi_thread()
    ///     .worker_threads(2)
    ///     .on_thread_start(move || { s.fetch_add(1, Ordering::SeqCst); })
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async {});
    /// drop(rt);
    /// assert!(started.load(Ordering::SeqCst) >= 2);
    /// ```
    pub fn on_thread_start<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.inner.on_thread_start(f);
        self
    }

    /// Runs `f` on each runtime thread before it stops.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread()
    ///     .on_thread_stop(|| eprintln!("worker stopping"))
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn on_thread_stop<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.inner.on_thread_stop(f);
        self
    }

    /// Runs `f` on a worker thread before it parks (sleeps for lack of work).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().on_thread_park(|| {}).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn on_thread_park<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.inner.on_thread_park(f);
        self
    }

    /// Runs `f` on a worker thread after it unparks.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().on_thread_unpark(|| {}).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn on_thread_unpark<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn() + Send + Sync + 'static,
    {
        self.inner.on_thread_unpark(f);
        self
    }

    /// How long an idle blocking-pool thread lives.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = rt_ext::Builder::new_multi_thread()
    ///     .thread_keep_alive(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn thread_keep_alive(&mut self, duration: Duration) -> &mut Self {
        self.inner.thread_keep_alive(duration);
        self
    }

    /// How many ticks between checks of the global task queue.
    ///
    /// # Panics
    ///
    /// Panics if `val` is 0, as tokio does.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().global_queue_interval(31).build().unwrap();
    /// # drop(rt);
    /// ```
    #[track_caller]
    pub fn global_queue_interval(&mut self, val: u32) -> &mut Self {
        self.inner.global_queue_interval(val);
        self
    }

    /// How many ticks between polls of the I/O and time drivers.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread().event_interval(61).build().unwrap();
    /// # drop(rt);
    /// ```
    pub fn event_interval(&mut self, val: u32) -> &mut Self {
        self.inner.event_interval(val);
        self
    }

    /// The most I/O events processed per tick.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_multi_thread()
    ///     .enable_io()
    ///     .max_io_events_per_tick(512)
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    #[cfg(feature = "net")]
    pub fn max_io_events_per_tick(&mut self, capacity: usize) -> &mut Self {
        self.inner.max_io_events_per_tick(capacity);
        self
    }

    /// Starts the runtime's clock paused, as in tokio's tests: time advances
    /// only when every task waits on a timer (see
    /// [`tokio::runtime::Builder::start_paused`]). Only with the `test-util`
    /// feature; `#[rt_ext::test(start_paused = true)]` calls it.
    ///
    /// # Panics
    ///
    /// `build()` panics if the clock is paused on a multi-thread runtime, as
    /// tokio's does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = rt_ext::Builder::new_current_thread()
    ///     .enable_time()
    ///     .start_paused(true)
    ///     .build()
    ///     .unwrap();
    /// let start = std::time::Instant::now();
    /// rt.block_on(async { tokio::time::sleep(Duration::from_secs(3600)).await });
    /// assert!(start.elapsed() < Duration::from_secs(60));
    /// ```
    #[cfg(feature = "test-util")]
    pub fn start_paused(&mut self, start_paused: bool) -> &mut Self {
        self.inner.start_paused(start_paused);
        self
    }

    /// Builds the runtime.
    ///
    /// # Errors
    ///
    /// Returns the OS error when a driver or a thread cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_current_thread().build().unwrap();
    /// assert_eq!(rt.block_on(async { 2 + 2 }), 4);
    /// ```
    pub fn build(&mut self) -> io::Result<Runtime> {
        #[cfg(not(tokio_unstable))]
        if self.frame_every_task {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "rt_ext::Builder::frame_every_task(true) needs the runtime-hook mode, which \
                 tokio offers only in a build with `--cfg tokio_unstable` (for example \
                 `RUSTFLAGS=\"--cfg tokio_unstable\"`, or `rustflags = [\"--cfg\", \
                 \"tokio_unstable\"]` under `[build]` in `.cargo/config.toml`); without it, \
                 spawn through `rt_ext::spawn` and friends, or drop the call",
            ));
        }
        #[cfg(tokio_unstable)]
        let frames = self.hooks.install(&mut self.inner);
        let mut runtime = self.inner.build().map(Runtime::from)?;
        runtime.handle.settings = self.settings;
        #[cfg(tokio_unstable)]
        if let Some(frames) = &frames {
            crate::hook_mode::register_runtime(runtime.inner.handle().id(), frames);
        }
        #[cfg(tokio_unstable)]
        {
            runtime.frames = frames;
        }
        Ok(runtime)
    }

    /// Whether every task of the runtime gets a frame: the runtime-hook
    /// mode, where tasks spawned with plain `tokio::spawn` (by hyper, axum,
    /// tonic, ... or your own code) inherit their spawner's context, may bind
    /// variables, and run their lifecycle hooks, as [`crate::spawn`] tasks do.
    ///
    /// **Needs a build with `--cfg tokio_unstable`**, which enables tokio's
    /// task hooks. There, every runtime of this builder frames every task
    /// unless asked not to (`frame_every_task(false)`: only work spawned
    /// through rt-ext is framed). Without the cfg the mode does not exist:
    /// `frame_every_task(false)` changes nothing, and `frame_every_task(true)`
    /// makes [`build`](Builder::build) fail with an error that says how to
    /// set the cfg, never a runtime that silently frames less than asked.
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext as ctx;
    ///
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    ///
    /// let built = ctx::Builder::new_multi_thread().frame_every_task(true).build();
    /// if cfg!(tokio_unstable) {
    ///     let rt = built.unwrap();
    ///     assert!(rt.frames_every_task());
    ///     rt.block_on(async {
    ///         let _v = V.set(1);
    ///         // A plain tokio::spawn, as a library would do it: inherits, may bind.
    ///         let seen = tokio::spawn(async {
    ///             let _mine = V.set(2);
    ///             V.get()
    ///         });
    ///         assert_eq!(seen.await.unwrap(), Some(2));
    ///         assert_eq!(V.get(), Some(1));
    ///     });
    /// } else {
    ///     let err = built.unwrap_err();
    ///     assert!(err.to_string().contains("--cfg tokio_unstable"));
    /// }
    /// ```
    pub fn frame_every_task(&mut self, enabled: bool) -> &mut Self {
        #[cfg(tokio_unstable)]
        {
            self.hooks.frame_every_task = enabled;
        }
        #[cfg(not(tokio_unstable))]
        {
            self.frame_every_task = enabled;
        }
        self
    }

    fn wrap(inner: tokio::runtime::Builder) -> Builder {
        Builder {
            inner,
            settings: Settings::default(),
            #[cfg(tokio_unstable)]
            hooks: hook_config::HookConfig::default(),
            #[cfg(not(tokio_unstable))]
            frame_every_task: false,
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("inner", &self.inner)
            .finish()
    }
}

// ===== Runtime =====

/// A tokio runtime whose `block_on` and spawns carry context.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static USER: ctx::Variable<&str> = ctx::Variable::new("user");
///
/// let rt = ctx::Runtime::new().unwrap();
/// let _u = USER.set("ada"); // on the main thread, outside the runtime
/// rt.block_on(async {
///     assert_eq!(USER.get(), Some("ada")); // block_on starts from the caller
///     let _inner = USER.set("grace");     // allowed: block_on's future is framed
/// });
/// assert_eq!(USER.get(), Some("ada"));
/// ```
#[derive(Debug)]
pub struct Runtime {
    inner: tokio::runtime::Runtime,
    handle: Handle,
    /// The frames of every task, in runtime-hook mode.
    #[cfg(tokio_unstable)]
    frames: Option<std::sync::Arc<crate::hook_mode::Registry>>,
}

impl Runtime {
    /// A multi-thread runtime with every driver enabled, like
    /// [`tokio::runtime::Runtime::new`].
    ///
    /// # Errors
    ///
    /// Returns the OS error when a driver or a thread cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// assert_eq!(rt.block_on(async { 1 }), 1);
    /// ```
    pub fn new() -> io::Result<Runtime> {
        Builder::new_multi_thread().enable_all().build()
    }

    /// Runs `future` to completion on this runtime, in a frame that starts
    /// from the calling thread's context.
    ///
    /// # Panics
    ///
    /// Panics when called from inside an asynchronous execution context, as
    /// tokio's `block_on` does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let seen = V.sync_scope(5, || rt.block_on(async { V.get() }));
    /// assert_eq!(seen, Some(5));
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let future = self
            .handle
            .settings
            .apply(|| inherit::future_wrapped(future));
        self.inner.block_on(future)
    }

    /// Spawns a task on this runtime that starts with the caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let task = V.sync_scope(9, || rt.spawn(async { V.get() }));
    /// assert_eq!(rt.block_on(task).unwrap(), Some(9));
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on this runtime's blocking pool, in the
    /// caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let task = V.sync_scope(4, || rt.spawn_blocking(|| V.get()));
    /// assert_eq!(rt.block_on(task).unwrap(), Some(4));
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// The runtime's handle.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// let handle = rt.handle().clone();
    /// std::thread::spawn(move || handle.block_on(async { 1 })).join().unwrap();
    /// ```
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Enters the runtime's context without running a future, so that
    /// `tokio::spawn` and [`crate::spawn`] work from synchronous code.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// let _guard = rt.enter();
    /// let task = rt_ext::spawn(async { 3 });
    /// assert_eq!(rt.block_on(task).unwrap(), 3);
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        self.inner.enter()
    }

    /// Shuts the runtime down, waiting at most `duration` for blocking tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// rt.shutdown_timeout(std::time::Duration::from_millis(10));
    /// ```
    pub fn shutdown_timeout(self, duration: Duration) {
        self.inner.shutdown_timeout(duration)
    }

    /// Shuts the runtime down without waiting for blocking tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// rt_ext::Runtime::new().unwrap().shutdown_background();
    /// ```
    pub fn shutdown_background(self) {
        self.inner.shutdown_background()
    }

    /// The tokio runtime inside.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// let _metrics = rt.inner().metrics();
    /// ```
    pub fn inner(&self) -> &tokio::runtime::Runtime {
        &self.inner
    }

    /// Unwraps the tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let tokio_rt: tokio::runtime::Runtime = rt_ext::Runtime::new().unwrap().into_inner();
    /// # drop(tokio_rt);
    /// ```
    pub fn into_inner(self) -> tokio::runtime::Runtime {
        self.inner
    }
}

impl From<tokio::runtime::Runtime> for Runtime {
    /// Wraps a runtime built by tokio's own builder: `ctx::spawn` works on any
    /// tokio runtime, and this wrapper adds the framed `block_on`.
    fn from(inner: tokio::runtime::Runtime) -> Runtime {
        let handle = Handle::from(inner.handle().clone());
        Runtime {
            inner,
            handle,
            #[cfg(tokio_unstable)]
            frames: None,
        }
    }
}

// ===== runtime-hook mode =====

#[cfg(tokio_unstable)]
mod hook_config {
    use std::sync::Arc;

    use tokio::runtime::TaskMeta;

    use crate::hook_mode::Registry;

    pub(super) type Callback = Arc<dyn Fn(&TaskMeta<'_>) + Send + Sync>;

    /// The task hooks the user set on the builder, and whether every task
    /// gets a frame.
    pub(super) struct HookConfig {
        pub(super) frame_every_task: bool,
        pub(super) spawn: Option<Callback>,
        pub(super) before_poll: Option<Callback>,
        pub(super) after_poll: Option<Callback>,
        pub(super) terminate: Option<Callback>,
    }

    impl Default for HookConfig {
        fn default() -> HookConfig {
            HookConfig {
                frame_every_task: true,
                spawn: None,
                before_poll: None,
                after_poll: None,
                terminate: None,
            }
        }
    }

    impl HookConfig {
        /// Sets tokio's four task hooks on `builder`: the frame registry's
        /// composed with the user's (tokio keeps one callback of each kind).
        /// The user's run inside the task's frame: after ours on the way in
        /// (spawn runs on the spawner, so order does not matter there), before
        /// ours on the way out.
        pub(super) fn install(
            &self,
            builder: &mut tokio::runtime::Builder,
        ) -> Option<Arc<Registry>> {
            if !self.frame_every_task {
                if let Some(f) = self.spawn.clone() {
                    builder.on_task_spawn(move |m| f(m));
                }
                if let Some(f) = self.before_poll.clone() {
                    builder.on_before_task_poll(move |m| f(m));
                }
                if let Some(f) = self.after_poll.clone() {
                    builder.on_after_task_poll(move |m| f(m));
                }
                if let Some(f) = self.terminate.clone() {
                    builder.on_task_terminate(move |m| f(m));
                }
                return None;
            }
            let frames = Arc::new(Registry::new());
            // Without a user hook of a kind, ours is set alone: the poll
            // hooks stay as short as they can be.
            let r = frames.clone();
            match self.spawn.clone() {
                None => builder.on_task_spawn(move |m| r.spawned(m.id())),
                Some(f) => builder.on_task_spawn(move |m| {
                    r.spawned(m.id());
                    f(m);
                }),
            };
            let r = frames.clone();
            // The user's after-poll hook reads the task's frame after the
            // poll has returned: it still has it (the frame is this
            // thread's until our after-poll hook has left it).
            match self.before_poll.clone() {
                None => builder.on_before_task_poll(move |m| r.before_poll(m.id())),
                Some(f) => builder.on_before_task_poll(move |m| {
                    r.before_poll(m.id());
                    f(m);
                }),
            };
            let r = frames.clone();
            match self.after_poll.clone() {
                None => builder.on_after_task_poll(move |m| r.after_poll(m.id())),
                Some(f) => builder.on_after_task_poll(move |m| {
                    f(m);
                    r.after_poll(m.id());
                }),
            };
            let r = frames.clone();
            match self.terminate.clone() {
                None => builder.on_task_terminate(move |m| r.terminated(m.id())),
                Some(f) => builder.on_task_terminate(move |m| {
                    f(m);
                    r.terminated(m.id());
                }),
            };
            Some(frames)
        }
    }
}

/// Runtime-hook mode, built with `--cfg tokio_unstable`: every task of the
/// runtime gets a frame, even tasks spawned with plain `tokio::spawn` (by
/// hyper, tonic, axum, ... or your own code). They inherit their spawner's
/// context, may bind variables, and their lifecycle hooks run on suspension
/// and resumption as in [`crate::spawn`] tasks. tokio's own task hooks,
/// which these methods compose with the mode's, exist only in such a build.
#[cfg(tokio_unstable)]
impl Builder {
    /// Runs `f` when a task is spawned, on the spawning thread (see
    /// [`tokio::runtime::Builder::on_task_spawn`]). Composed with the frame
    /// hooks: both run.
    ///
    /// Only in a build with `--cfg tokio_unstable`, where tokio has task hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// static SPAWNED: AtomicUsize = AtomicUsize::new(0);
    /// let rt = rt_ext::Builder::new_current_thread()
    ///     .on_task_spawn(|_| { SPAWNED.fetch_add(1, Ordering::Relaxed); })
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    /// assert_eq!(SPAWNED.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_task_spawn<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
    {
        self.hooks.spawn = Some(std::sync::Arc::new(f));
        self
    }

    /// Runs `f` before each poll of a task, inside the task's frame (a task
    /// spawned through rt-ext enters its frame in its own poll, after this
    /// hook; see [`tokio::runtime::Builder::on_before_task_poll`]).
    ///
    /// Only in a build with `--cfg tokio_unstable`, where tokio has task hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// static POLLS: AtomicUsize = AtomicUsize::new(0);
    /// let rt = rt_ext::Builder::new_current_thread()
    ///     .on_before_task_poll(|_| { POLLS.fetch_add(1, Ordering::Relaxed); })
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    /// assert_eq!(POLLS.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_before_task_poll<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
    {
        self.hooks.before_poll = Some(std::sync::Arc::new(f));
        self
    }

    /// Runs `f` after each poll of a task, inside the task's frame (a task
    /// spawned through rt-ext has left its frame by then; see
    /// [`tokio::runtime::Builder::on_after_task_poll`]).
    ///
    /// Only in a build with `--cfg tokio_unstable`, where tokio has task hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// static POLLS: AtomicUsize = AtomicUsize::new(0);
    /// let rt = rt_ext::Builder::new_current_thread()
    ///     .on_after_task_poll(|_| { POLLS.fetch_add(1, Ordering::Relaxed); })
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    /// assert_eq!(POLLS.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_after_task_poll<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
    {
        self.hooks.after_poll = Some(std::sync::Arc::new(f));
        self
    }

    /// Runs `f` when a task terminates (see
    /// [`tokio::runtime::Builder::on_task_terminate`]).
    ///
    /// Only in a build with `--cfg tokio_unstable`, where tokio has task hooks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// static ENDED: AtomicUsize = AtomicUsize::new(0);
    /// let rt = rt_ext::Builder::new_current_thread()
    ///     .on_task_terminate(|_| { ENDED.fetch_add(1, Ordering::Relaxed); })
    ///     .build()
    ///     .unwrap();
    /// rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    /// assert_eq!(ENDED.load(Ordering::Relaxed), 1);
    /// ```
    pub fn on_task_terminate<F>(&mut self, f: F) -> &mut Self
    where
        F: Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
    {
        self.hooks.terminate = Some(std::sync::Arc::new(f));
        self
    }
}

/// Runtime-hook mode (see [`Builder::frame_every_task`]): in every build,
/// so that code can ask without a cfg of its own.
impl Runtime {
    /// Whether the runtime frames every task (runtime-hook mode, in a build
    /// with `--cfg tokio_unstable`): then tasks spawned with plain
    /// `tokio::spawn` inherit context too. Always `false` without the cfg.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// // The default of `rt_ext::Builder`: on wherever the mode exists.
    /// assert_eq!(rt.frames_every_task(), cfg!(tokio_unstable));
    /// let plain = rt_ext::Runtime::from(tokio::runtime::Runtime::new().unwrap());
    /// assert!(!plain.frames_every_task());
    /// ```
    pub fn frames_every_task(&self) -> bool {
        #[cfg(tokio_unstable)]
        return self.frames.is_some();
        #[cfg(not(tokio_unstable))]
        false
    }

    /// In runtime-hook mode, the number of task frames the runtime holds:
    /// tasks spawned with plain `tokio::spawn` and not yet terminated (work
    /// spawned through rt-ext brings a frame of its own and is not counted).
    /// `None` when the runtime does not frame every task, and always without
    /// `--cfg tokio_unstable`.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Builder::new_current_thread().build().unwrap();
    /// rt.block_on(async { tokio::spawn(async {}).await.unwrap() });
    /// let expected = if cfg!(tokio_unstable) { Some(0) } else { None };
    /// assert_eq!(rt.framed_tasks(), expected);
    /// ```
    pub fn framed_tasks(&self) -> Option<usize> {
        #[cfg(tokio_unstable)]
        return self.frames.as_ref().map(|f| f.len());
        #[cfg(not(tokio_unstable))]
        None
    }
}

// ===== Handle =====

/// A handle to a runtime: [`tokio::runtime::Handle`] whose spawns and
/// `block_on` carry context.
///
/// # Examples
///
/// ```
/// use rt_ext as ctx;
///
/// static V: ctx::Variable<u8> = ctx::Variable::new("v");
///
/// let rt = ctx::Runtime::new().unwrap();
/// rt.block_on(async {
///     let handle = ctx::Handle::current();
///     let _v = V.set(2);
///     assert_eq!(handle.spawn(async { V.get() }).await.unwrap(), Some(2));
/// });
/// ```
#[derive(Clone, Debug)]
pub struct Handle {
    inner: tokio::runtime::Handle,
    settings: Settings,
}

impl Handle {
    /// The handle of the runtime the caller runs in.
    ///
    /// # Panics
    ///
    /// Panics outside a runtime context, as [`tokio::runtime::Handle::current`]
    /// does; see [`try_current`](Handle::try_current).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// rt.block_on(async { let _h = rt_ext::Handle::current(); });
    /// ```
    #[track_caller]
    pub fn current() -> Handle {
        Handle::from(tokio::runtime::Handle::current())
    }

    /// The handle of the runtime the caller runs in, if any.
    ///
    /// # Errors
    ///
    /// Returns tokio's error outside a runtime context.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(rt_ext::Handle::try_current().is_err());
    /// ```
    pub fn try_current() -> Result<Handle, TryCurrentError> {
        tokio::runtime::Handle::try_current().map(Handle::from)
    }

    /// Spawns a task that starts with the caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let handle = rt.handle().clone();
    /// let task = V.sync_scope(1, || handle.spawn(async { V.get() }));
    /// assert_eq!(rt.block_on(task).unwrap(), Some(1));
    /// ```
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let future = self.settings.apply(|| inherit::future(future));
        let _framed = inherit::FramedSpawn::start();
        inherit::spawn_each!(future, |f| self.inner.spawn(f))
    }

    /// Runs a blocking closure on the runtime's blocking pool, in the
    /// caller's context.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let task = V.sync_scope(6, || rt.handle().spawn_blocking(|| V.get()));
    /// assert_eq!(rt.block_on(task).unwrap(), Some(6));
    /// ```
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner
            .spawn_blocking(self.settings.apply(|| inherit::closure(f)))
    }

    /// Runs `future` to completion, in a frame that starts from the calling
    /// thread's context (see [`Runtime::block_on`]).
    ///
    /// # Panics
    ///
    /// Panics when called from inside an asynchronous execution context, as
    /// tokio does.
    ///
    /// # Examples
    ///
    /// ```
    /// # use rt_ext as ctx;
    /// static V: ctx::Variable<u8> = ctx::Variable::new("v");
    /// let rt = ctx::Runtime::new().unwrap();
    /// let handle = rt.handle().clone();
    /// let seen = std::thread::spawn(move || V.sync_scope(8, || handle.block_on(async { V.get() })));
    /// assert_eq!(seen.join().unwrap(), Some(8));
    /// ```
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.inner
            .block_on(self.settings.apply(|| inherit::future_wrapped(future)))
    }

    /// Enters the runtime's context (see [`Runtime::enter`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// let _guard = rt.handle().enter();
    /// assert!(rt_ext::Handle::try_current().is_ok());
    /// ```
    pub fn enter(&self) -> EnterGuard<'_> {
        self.inner.enter()
    }

    /// The tokio handle inside.
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// let tokio_handle: &tokio::runtime::Handle = rt.handle().inner();
    /// # let _ = tokio_handle;
    /// ```
    pub fn inner(&self) -> &tokio::runtime::Handle {
        &self.inner
    }

    /// Whether the handle's runtime frames every task (runtime-hook mode, in
    /// a build with `--cfg tokio_unstable`; see
    /// [`Builder::frame_every_task`]). Always `false` without the cfg, and
    /// for a runtime not built by [`Builder`].
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = rt_ext::Runtime::new().unwrap();
    /// let in_hook_mode = rt.block_on(async { rt_ext::Handle::current().frames_every_task() });
    /// assert_eq!(in_hook_mode, cfg!(tokio_unstable));
    /// ```
    pub fn frames_every_task(&self) -> bool {
        #[cfg(tokio_unstable)]
        return crate::hook_mode::frames_every_task(self.inner.id());
        #[cfg(not(tokio_unstable))]
        false
    }
}

impl From<tokio::runtime::Handle> for Handle {
    fn from(inner: tokio::runtime::Handle) -> Handle {
        Handle {
            inner,
            settings: Settings::default(),
        }
    }
}

/// Per-runtime settings of what spawning adds, kept by [`Builder`] and
/// applied by the runtime's `block_on` and spawn methods. Without the
/// `tracing` feature it is empty and applying it costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Settings {
    /// `Some(false)`: spans do not follow spawns in this runtime.
    #[cfg(feature = "tracing")]
    pub(crate) spans_follow_spawns: Option<bool>,
}

impl Settings {
    /// Runs `f` (a spawn or the wrapping of a `block_on` future) with the
    /// settings bound, so the work made there, and everything it spawns in
    /// turn, inherits them.
    pub(crate) fn apply<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        if let Some(on) = self.spans_follow_spawns {
            return crate::tracing::FOLLOW.sync_scope(on, f);
        }
        f()
    }
}
