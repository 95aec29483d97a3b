//! What the benchmarks run: the futures, hooks, variables and runtimes shared
//! by the criterion suite and the instruction-count binary.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, Ready};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use rt_ext as ctx;
use tracing::Span;

/// Yields per task in the per-poll benchmarks.
pub const YIELDS: usize = 10_000;

/// Tasks per iteration in the spawn-and-join benchmarks.
pub const TASKS: usize = 1_000;

/// The most variables any benchmark binds.
pub const MAX_VARS: usize = 256;

/// Variables of the rt-ext benchmarks: every element is its own key.
pub static VARS: [ctx::Variable<u64>; MAX_VARS] = [const { ctx::Variable::new("bench") }; MAX_VARS];

/// dcontext keys (a registered string per key, as that crate requires).
pub const DCONTEXT_KEYS: [&str; 16] = [
    "k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09", "k10", "k11", "k12",
    "k13", "k14", "k15",
];

tokio::task_local! {
    /// The task-local peer of `VARS[0]`.
    pub static TASK_LOCAL: u64;
}

/// An OpenTelemetry context value (values there are keyed by type).
#[derive(Clone, Copy, Debug)]
pub struct OtelValue(pub u64);

// ===== yielding =====

/// Wakes itself and returns `Pending` once: each await is one full trip
/// through the scheduler and the task harness, with no timer or I/O driver.
#[derive(Debug, Default)]
#[must_use = "futures do nothing unless polled"]
pub struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Yields `n` times: `n + 1` polls of the task.
pub async fn yield_n(n: usize) {
    for _ in 0..n {
        YieldOnce::default().await;
    }
}

/// Yields `n` times with tokio's own `yield_now`, as a task that gives way
/// to others does: each await also goes through tokio's deferred wakes,
/// which makes the floor about twice `yield_n`'s.
pub async fn yield_now_n(n: usize) {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
}

// ===== hooks =====

/// The cheapest useful hook: counts its calls.
#[derive(Debug, Default)]
pub struct CountingHook {
    calls: u64,
}

impl ctx::Lifecycle for CountingHook {
    fn on_yield(&mut self) {
        self.calls = self.calls.wrapping_add(1);
    }

    fn on_resume(&mut self) {
        self.calls = self.calls.wrapping_add(1);
    }
}

/// Keeps a tracing span entered while its frame runs and exited while it is
/// suspended: what a span guard held across awaits should do.
#[derive(Debug)]
pub struct SpanHook {
    span: Span,
}

impl SpanHook {
    /// Enters `span` now; it stays entered, except while the frame is
    /// suspended, until the hook drops.
    pub fn new(span: Span) -> SpanHook {
        span.with_subscriber(|(id, dispatch)| dispatch.enter(id));
        SpanHook { span }
    }
}

impl ctx::Lifecycle for SpanHook {
    fn on_yield(&mut self) {
        self.span
            .with_subscriber(|(id, dispatch)| dispatch.exit(id));
    }

    fn on_resume(&mut self) {
        self.span
            .with_subscriber(|(id, dispatch)| dispatch.enter(id));
    }
}

impl Drop for SpanHook {
    fn drop(&mut self) {
        // Hooks are always dropped entered.
        self.span
            .with_subscriber(|(id, dispatch)| dispatch.exit(id));
    }
}

// ===== services =====

/// A request handler that answers at once: what `FrameLayer` adds is then
/// all that differs between the rows.
pub fn ready_service() -> impl tower::Service<
    u64,
    Response = u64,
    Error = Infallible,
    Future = Ready<Result<u64, Infallible>>,
> + Clone {
    tower::service_fn(|n: u64| std::future::ready(Ok(n)))
}

/// A handler that binds the request's id for its whole call, as a
/// request-id middleware does.
pub async fn binding_handler(n: u64) -> Result<u64, Infallible> {
    let _id = VARS[0].set(n);
    Ok(n)
}

/// Calls `service` with `request` and polls the call's future once, as a
/// server does for a handler that does not wait: one request served.
///
/// # Panics
///
/// If the service is not ready or its future is pending.
pub fn serve_now<S: tower::Service<u64>>(service: &mut S, request: u64) -> S::Response
where
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(noop_waker());
    assert!(service.poll_ready(&mut cx).is_ready(), "not ready");
    let mut future = std::pin::pin!(service.call(request));
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(response) => response.expect("served"),
        Poll::Pending => panic!("the handler did not answer at once"),
    }
}

/// A waker that does nothing, made once: no allocation per request.
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    static WAKER: OnceLock<Waker> = OnceLock::new();
    WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
}

// ===== set-up =====

/// A current-thread tokio runtime without drivers: the lowest per-poll floor.
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime")
}

/// A multi-thread tokio runtime with two workers and no drivers.
pub fn two_workers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("a two-worker runtime")
}

/// The tokio task hooks of a runtime-hook-mode runtime (`--cfg tokio_unstable`).
#[cfg(tokio_unstable)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskHooks {
    /// Four hooks that do nothing, and no frames: what tokio's hook calls
    /// cost alone.
    Noop,
    /// rt-ext's frame registry (`frame_every_task`, the default): every task
    /// gets a frame, even a plain `tokio::spawn`.
    Frames,
}

/// A runtime built by `builder` with `hooks` as its tokio task hooks.
#[cfg(tokio_unstable)]
fn with_task_hooks(builder: &mut ctx::Builder, hooks: TaskHooks) -> ctx::Runtime {
    if hooks == TaskHooks::Noop {
        builder
            .frame_every_task(false)
            .on_task_spawn(|_| {})
            .on_before_task_poll(|_| {})
            .on_after_task_poll(|_| {})
            .on_task_terminate(|_| {});
    }
    let rt = builder.build().expect("a runtime with task hooks");
    // A default that changed would silently measure the wrong thing.
    assert_eq!(
        rt.framed_tasks().is_some(),
        hooks == TaskHooks::Frames,
        "runtime-hook mode should be on exactly with `TaskHooks::Frames`"
    );
    rt
}

/// [`current_thread`] with `hooks` as its tokio task hooks.
#[cfg(tokio_unstable)]
pub fn current_thread_with(hooks: TaskHooks) -> ctx::Runtime {
    with_task_hooks(&mut ctx::Builder::new_current_thread(), hooks)
}

/// [`two_workers`] with `hooks` as its tokio task hooks.
#[cfg(tokio_unstable)]
pub fn two_workers_with(hooks: TaskHooks) -> ctx::Runtime {
    with_task_hooks(ctx::Builder::new_multi_thread().worker_threads(2), hooks)
}

/// Ten variables with distinct names (wire names must be unique in a codec),
/// for the propagation benchmarks.
pub static WIRE: [ctx::Variable<u64>; 10] = [
    ctx::Variable::new("w0"),
    ctx::Variable::new("w1"),
    ctx::Variable::new("w2"),
    ctx::Variable::new("w3"),
    ctx::Variable::new("w4"),
    ctx::Variable::new("w5"),
    ctx::Variable::new("w6"),
    ctx::Variable::new("w7"),
    ctx::Variable::new("w8"),
    ctx::Variable::new("w9"),
];

/// A codec for [`WIRE`], and a snapshot with all ten bound.
pub fn wire_codec() -> (ctx::propagation::Codec, ctx::Snapshot) {
    let mut builder = ctx::propagation::Codec::builder();
    let mut snapshot = ctx::Snapshot::empty();
    for (var, i) in WIRE.iter().zip(0u64..) {
        builder = builder.var(var);
        snapshot = snapshot.with(var, i);
    }
    (builder.build().expect("distinct names"), snapshot)
}

/// String attributes: a map-typed variable of the hostile-input benchmarks.
pub static ATTRS: ctx::Variable<HashMap<String, String>> = ctx::Variable::new("attrs");
/// A map of bytes: the cheapest entries, so the most of them per input.
pub static BYTE_MAP: ctx::Variable<HashMap<u8, u8>> = ctx::Variable::new("byte_map");
/// A sequence-typed variable of the hostile-input benchmarks.
pub static IDS: ctx::Variable<Vec<u64>> = ctx::Variable::new("ids");
/// Elements that take no bytes: a declared length is all there is to read.
pub static UNITS: ctx::Variable<Vec<()>> = ctx::Variable::new("units");

/// Inputs of the size limit (8192 bytes, 180 entries) for one codec of
/// collection-typed variables: a valid one, and hostile ones whose every
/// entry declares `u64::MAX` elements and holds what fits.
#[derive(Debug)]
pub struct HostileInputs {
    /// The codec of [`ATTRS`], [`BYTE_MAP`], [`IDS`] and [`UNITS`].
    pub codec: ctx::propagation::Codec,
    /// One `attrs` map of as many entries as the size limit holds.
    pub valid: Vec<u8>,
    /// 180 `attrs` entries, each of as many string pairs as fit.
    pub map_strings: Vec<u8>,
    /// 180 `byte_map` entries, each of as many byte pairs as fit.
    pub map_bytes: Vec<u8>,
    /// 180 `ids` entries, each of as many 1-byte ids as fit.
    pub seq: Vec<u8>,
    /// 180 `units` entries, padded to the size limit.
    pub zero_sized: Vec<u8>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A compact input of `entries` entries named `name`, each declaring
/// `u64::MAX` elements followed by as many copies of `element` as let the
/// input stay within `max_bytes` (or zeros, for an empty `element`).
fn hostile_input(name: &str, element: &[u8], entries: usize, max_bytes: usize) -> Vec<u8> {
    let entry = |copies: usize| {
        let mut value = Vec::new();
        varint(&mut value, u64::MAX);
        if element.is_empty() {
            value.resize(value.len() + copies, 0);
        }
        for _ in 0..copies {
            value.extend_from_slice(element);
        }
        let mut out = Vec::new();
        varint(&mut out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        varint(&mut out, 0);
        varint(&mut out, value.len() as u64);
        out.extend(value);
        out
    };
    let mut header = vec![0xC7, 1];
    varint(&mut header, entries as u64);
    let room = (max_bytes - header.len()) / entries;
    let copies = (0..room)
        .rev()
        .find(|&n| entry(n).len() <= room)
        .unwrap_or(0);
    let mut input = header;
    for _ in 0..entries {
        input.extend(entry(copies));
    }
    input
}

/// The inputs of the hostile-input benchmarks.
pub fn hostile_inputs() -> HostileInputs {
    let codec = ctx::propagation::Codec::builder()
        .var(&ATTRS)
        .var(&BYTE_MAP)
        .var(&IDS)
        .var(&UNITS)
        .build()
        .expect("distinct names");
    let (max_bytes, entries) = (codec.max_bytes(), codec.max_entries());
    let mut attrs = HashMap::new();
    let mut valid = Vec::new();
    for i in 0.. {
        attrs.insert(format!("k{i:04}"), format!("v{i:04}"));
        let bytes = codec.encode(&ctx::Snapshot::empty().with(&ATTRS, attrs.clone()));
        if bytes.len() <= 3 {
            break; // over the limit: the encoder left the entry out
        }
        valid = bytes;
    }
    assert_eq!(
        attrs.len() - 1,
        681,
        "the label of the `valid` row says 681"
    );
    HostileInputs {
        map_strings: hostile_input("attrs", &[1, b'k', 1, b'v'], entries, max_bytes),
        map_bytes: hostile_input("byte_map", &[1, 2], entries, max_bytes),
        seq: hostile_input("ids", &[7], entries, max_bytes),
        zero_sized: hostile_input("units", &[], entries, max_bytes),
        codec,
        valid,
    }
}

/// A snapshot in which the first `n` of [`VARS`] are bound (to their index).
pub fn snapshot_with(n: usize) -> ctx::Snapshot {
    ctx::Snapshot::empty().run(|| {
        let bindings: Vec<ctx::Binding> = VARS[..n]
            .iter()
            .zip(0u64..)
            .map(|(var, i)| var.set(i))
            .collect();
        let snapshot = ctx::Snapshot::capture();
        drop(bindings);
        snapshot
    })
}

/// A tracing dispatcher with a `tracing-subscriber` registry (no layers).
pub fn registry() -> tracing::Dispatch {
    tracing::Dispatch::new(tracing_subscriber::registry())
}

/// Freezes dcontext's registry with [`DCONTEXT_KEYS`] (as `u64`), as a
/// program using it does at start-up; later calls do nothing.
pub fn init_dcontext() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut builder = dcontext::RegistryBuilder::new();
        for key in DCONTEXT_KEYS {
            builder.register::<u64>(key);
        }
        dcontext::initialize(builder);
    });
}

/// Replaces this thread's dcontext store with one holding the first `n` of
/// [`DCONTEXT_KEYS`]; the guard puts the previous store back.
pub fn dcontext_with(n: usize) -> dcontext::AttachGuard {
    init_dcontext();
    let guard = dcontext::attach_snapshot(dcontext::ContextSnapshot::empty());
    for (key, i) in DCONTEXT_KEYS[..n].iter().zip(0u64..) {
        dcontext::set_context_variable(key, i);
    }
    guard
}

/// Spawns [`TASKS`] tasks with `spawn` and joins them all.
pub async fn spawn_join<F, H>(mut spawn: F)
where
    F: FnMut() -> tokio::task::JoinHandle<H>,
{
    let handles: Vec<_> = (0..TASKS).map(|_| spawn()).collect();
    for handle in handles {
        handle.await.expect("a trivial task does not fail");
    }
}
