//! The benchmark ids, how the report lays them out, and the targets of the
//! issue they are checked against. The suite registers exactly these ids.

/// One benchmark: a way of doing the group's operation.
#[derive(Debug)]
pub struct Row {
    /// The criterion function id within the group.
    pub id: &'static str,
    /// What the report calls it.
    pub label: &'static str,
    /// Whether this is rt-ext (the others are the peers it is compared to).
    pub ours: bool,
}

/// A criterion group: one operation, done by every row.
#[derive(Debug)]
pub struct Group {
    /// The criterion group id.
    pub id: &'static str,
    /// What the report calls the operation.
    pub title: &'static str,
    /// Operations per criterion iteration (figures are divided by this).
    pub ops_per_iter: f64,
    /// The rows; the first one is the baseline of the group.
    pub rows: &'static [Row],
}

/// A target of the issue: `numerator / denominator <= limit`.
#[derive(Debug)]
pub struct Target {
    /// What is promised.
    pub what: &'static str,
    /// The group both rows are in.
    pub group: &'static str,
    /// The row that must not be slower.
    pub numerator: &'static str,
    /// The row it is compared to.
    pub denominator: &'static str,
    /// The largest ratio that meets the target.
    pub limit: f64,
}

const fn ours(id: &'static str, label: &'static str) -> Row {
    Row {
        id,
        label,
        ours: true,
    }
}

const fn peer(id: &'static str, label: &'static str) -> Row {
    Row {
        id,
        label,
        ours: false,
    }
}

const YIELDS: f64 = crate::workload::YIELDS as f64;
const TASKS: f64 = crate::workload::TASKS as f64;

const POLL_ROWS: &[Row] = &[
    peer("tokio", "bare `tokio::spawn`"),
    ours("rtext_none", "rt-ext, no binding"),
    ours("rtext_binding", "rt-ext, a binding"),
    ours("rtext_hook", "rt-ext, a binding and a hook"),
    peer("task_local", "`task_local!` scope"),
    peer("tracing_none", "tracing `Instrument`, no subscriber"),
    peer("tracing_registry", "tracing `Instrument`, Registry"),
    peer("otel", "OpenTelemetry `with_context`"),
    peer("dcontext", "dcontext `fork`, a value set"),
];

/// Runtime-hook mode (`--cfg tokio_unstable`): the same yielding task, only
/// the runtime's task hooks differ between the `tokio::spawn` rows.
#[cfg(tokio_unstable)]
const HOOK_MODE_ROWS: &[Row] = &[
    peer("tokio", "bare `tokio::spawn`, plain runtime"),
    ours("rtext_none", "rt-ext `spawn`, plain runtime"),
    peer("noop_hooks", "`tokio::spawn`, four no-op task hooks"),
    ours("hook_mode", "`tokio::spawn`, runtime-hook mode"),
];

/// Every group of the suite, in report order; the hook-mode groups only in a
/// `--cfg tokio_unstable` build.
pub const GROUPS: &[Group] = &[
    Group {
        id: "poll_current_thread",
        title: "poll, current-thread (per poll of a task yielding 10,000 times)",
        ops_per_iter: YIELDS,
        rows: POLL_ROWS,
    },
    Group {
        id: "poll_two_workers",
        title: "poll, 2 workers (per poll of a task yielding 10,000 times)",
        ops_per_iter: YIELDS,
        rows: POLL_ROWS,
    },
    #[cfg(tokio_unstable)]
    Group {
        id: "poll_hook_mode_current_thread",
        title: "poll, runtime-hook mode, current-thread (per poll of a task yielding 10,000 times)",
        ops_per_iter: YIELDS,
        rows: HOOK_MODE_ROWS,
    },
    #[cfg(tokio_unstable)]
    Group {
        id: "poll_hook_mode_two_workers",
        title: "poll, runtime-hook mode, 2 workers (per poll of a task yielding 10,000 times)",
        ops_per_iter: YIELDS,
        rows: HOOK_MODE_ROWS,
    },
    Group {
        id: "get",
        title: "read a variable (bound)",
        ops_per_iter: 1.0,
        rows: &[
            peer("task_local", "`task_local!` `with`"),
            ours("rtext_get", "rt-ext `get`, 1 bound"),
            ours("rtext_with", "rt-ext `with`, 1 bound"),
            ours("rtext_get16", "rt-ext `get`, 16 bound"),
            peer("otel_current", "OpenTelemetry `Context::current().get`"),
            peer("otel_map_current", "OpenTelemetry `Context::map_current`"),
            peer("dcontext", "dcontext `get_context_variable`"),
        ],
    },
    Group {
        id: "spawn_join",
        title: "spawn and join (per task, 1,000 trivial tasks, current-thread)",
        ops_per_iter: TASKS,
        rows: &[
            peer("tokio", "bare `tokio::spawn`"),
            ours("rtext_0", "rt-ext `spawn`, 0 variables"),
            ours("rtext_1", "rt-ext `spawn`, 1 variable"),
            ours("rtext_16", "rt-ext `spawn`, 16 variables"),
            peer("otel", "OpenTelemetry `with_context(current)`, 1 value"),
            peer("dcontext_0", "dcontext `fork`, 0 keys"),
            peer("dcontext_1", "dcontext `fork`, 1 key"),
            peer("dcontext_16", "dcontext `fork`, 16 keys"),
        ],
    },
    Group {
        id: "capture",
        title: "capture the context (and drop the capture)",
        ops_per_iter: 1.0,
        rows: &[
            ours("rtext_1", "rt-ext `Snapshot::capture`, 1 variable"),
            ours("rtext_16", "rt-ext `Snapshot::capture`, 16 variables"),
            ours("rtext_256", "rt-ext `Snapshot::capture`, 256 variables"),
            peer("otel", "OpenTelemetry `Context::current`, 1 value"),
            peer("dcontext_1", "dcontext `capture`, 1 key"),
            peer("dcontext_5", "dcontext `capture`, 5 keys"),
            peer("dcontext_10", "dcontext `capture`, 10 keys"),
        ],
    },
    Group {
        id: "propagate",
        title: "encode / decode a 10-variable context to bytes",
        ops_per_iter: 1.0,
        rows: &[
            ours("rtext_encode", "rt-ext `Codec::encode`, 10 `u64` variables"),
            ours("rtext_decode", "rt-ext `Codec::decode`, 10 `u64` variables"),
            peer(
                "dcontext_encode",
                "dcontext `capture().serialize()`, 10 keys",
            ),
            peer(
                "dcontext_decode",
                "dcontext `ContextSnapshot::deserialize`, 10 keys",
            ),
        ],
    },
    Group {
        id: "decode_hostile",
        title: "decode an input of the size limit (8192 bytes, 180 entries): valid, and entries declaring `u64::MAX` elements",
        ops_per_iter: 1.0,
        rows: &[
            ours(
                "valid",
                "valid: one `HashMap<String, String>` of 681 entries, the size limit",
            ),
            ours(
                "map_strings",
                "hostile: `HashMap<String, String>` entries, string pairs after the length",
            ),
            ours(
                "map_bytes",
                "hostile: `HashMap<u8, u8>` entries, byte pairs after the length",
            ),
            ours("seq", "hostile: `Vec<u64>` entries, ids after the length"),
            ours("zero_sized", "hostile: `Vec<()>` entries"),
        ],
    },
    Group {
        id: "bind",
        title: "bind a value for a scope (set, then drop the guard)",
        ops_per_iter: 1.0,
        rows: &[
            peer("task_local", "`task_local!` `sync_scope`"),
            ours("rtext_set", "rt-ext `set` + drop, 0 others bound"),
            ours("rtext_set16", "rt-ext `set` + drop, 16 others bound"),
            ours("rtext_sync_scope", "rt-ext `sync_scope`"),
            peer("otel", "OpenTelemetry `with_value` + `attach` + drop"),
            peer("dcontext", "dcontext `push_scope` + set + drop"),
        ],
    },
    Group {
        id: "bind_in_task",
        title: "bind a value in a task's frame (set, then drop the binding; all in one spawned task)",
        ops_per_iter: 1.0,
        rows: &[
            peer("task_local", "`task_local!` `sync_scope`, `tokio::spawn`ed task"),
            ours("rtext_set", "rt-ext `set` + drop, `ctx::spawn`ed task"),
            ours(
                "rtext_set_again",
                "rt-ext `set` + drop, another binding held throughout",
            ),
        ],
    },
    Group {
        id: "hook",
        title: "enter a hook / span, then drop the guard",
        ops_per_iter: 1.0,
        rows: &[
            peer("tracing_enter", "tracing `Span::enter` + drop, Registry"),
            ours("rtext_enter", "rt-ext `enter` + drop"),
        ],
    },
    #[cfg(feature = "log-variables")]
    Group {
        id: "span_enter",
        title: "enter a span in a `ctx::spawn`ed task, then drop the guard, Registry",
        ops_per_iter: 1.0,
        rows: &[
            peer("tracing_enter", "tracing `Span::enter` + drop"),
            ours("rtext_guard", "rt-ext `ctx::tracing::enter` + drop"),
        ],
    },
    #[cfg(feature = "log-variables")]
    Group {
        id: "log_line",
        title: "one event through tracing-subscriber's fmt layer (timestamp on), into `io::sink`",
        ops_per_iter: 1.0,
        rows: &[
            peer("text_plain", "text, no request id"),
            peer("text_span", "text, in an entered span with `request_id`"),
            ours("text_variables", "text, `REQUEST_ID` bound, `LogVariables`"),
            peer("json_plain", "JSON, no request id"),
            peer("json_span", "JSON, in an entered span with `request_id`"),
            ours("json_variables", "JSON, `REQUEST_ID` bound, `LogVariables`"),
        ],
    },
    Group {
        id: "frame_layer",
        title: "serve one request, handler answering at once",
        ops_per_iter: 1.0,
        rows: &[
            peer("bare", "a bare tower `service_fn`"),
            ours("rtext_frame", "behind `FrameLayer`"),
            ours(
                "rtext_frame_set",
                "behind `FrameLayer`, handler binds with `set`",
            ),
        ],
    },
    Group {
        id: "span_across_yields",
        title: "span held across 10,000 yields, Registry (per poll)",
        ops_per_iter: YIELDS,
        rows: &[
            peer("tokio", "bare `tokio::spawn`, no span"),
            ours("rtext_hook", "rt-ext span hook"),
            peer("instrument", "tracing `Instrument`"),
        ],
    },
    #[cfg(feature = "log-variables")]
    Group {
        id: "span_guard_across_yields",
        title: "span held across 10,000 yields by a guard in the task's body, Registry (per poll)",
        ops_per_iter: YIELDS,
        rows: &[
            peer("instrument", "tracing `Instrument` around the yielding future"),
            peer(
                "instrument_body",
                "tracing `Instrument` around the same body as the guard's",
            ),
            ours("rtext_guard", "rt-ext `ctx::tracing::enter` in the body"),
        ],
    },
];

/// The timing targets of the issue; the hook-mode one only in a
/// `--cfg tokio_unstable` build, the span-guard one only with `log-variables`.
pub const TARGETS: &[Target] = &[
    Target {
        what: "poll, no binding <= 1.03 x tokio (current-thread)",
        group: "poll_current_thread",
        numerator: "rtext_none",
        denominator: "tokio",
        limit: 1.03,
    },
    Target {
        what: "poll, binding + hook <= 1.10 x tokio (current-thread)",
        group: "poll_current_thread",
        numerator: "rtext_hook",
        denominator: "tokio",
        limit: 1.10,
    },
    #[cfg(tokio_unstable)]
    Target {
        what: "hook mode / bare tokio <= 1.15",
        group: "poll_hook_mode_current_thread",
        numerator: "hook_mode",
        denominator: "tokio",
        limit: 1.15,
    },
    Target {
        what: "`get` no slower than task_local `with`",
        group: "get",
        numerator: "rtext_get",
        denominator: "task_local",
        limit: 1.0,
    },
    Target {
        what: "capture of 256 within 1.2 x capture of 1",
        group: "capture",
        numerator: "rtext_256",
        denominator: "rtext_1",
        limit: 1.2,
    },
    Target {
        what: "capture of 256 >= 20 x faster than dcontext's of 10 keys",
        group: "capture",
        numerator: "rtext_256",
        denominator: "dcontext_10",
        limit: 0.05,
    },
    Target {
        what: "hostile `HashMap<String, String>` decode <= 10 x a valid one",
        group: "decode_hostile",
        numerator: "map_strings",
        denominator: "valid",
        limit: 10.0,
    },
    Target {
        what: "hostile `HashMap<u8, u8>` decode <= 10 x a valid one",
        group: "decode_hostile",
        numerator: "map_bytes",
        denominator: "valid",
        limit: 10.0,
    },
    Target {
        what: "hostile `Vec<u64>` decode <= 10 x a valid one",
        group: "decode_hostile",
        numerator: "seq",
        denominator: "valid",
        limit: 10.0,
    },
    Target {
        what: "hostile `Vec<()>` decode <= 10 x a valid one",
        group: "decode_hostile",
        numerator: "zero_sized",
        denominator: "valid",
        limit: 10.0,
    },
    Target {
        what: "spawn + join, 0 variables <= 1.10 x tokio",
        group: "spawn_join",
        numerator: "rtext_0",
        denominator: "tokio",
        limit: 1.10,
    },
    Target {
        what: "spawn + join, 16 variables <= 1.10 x tokio",
        group: "spawn_join",
        numerator: "rtext_16",
        denominator: "tokio",
        limit: 1.10,
    },
    Target {
        what: "spawn + join, 1 variable <= 1.15 x tokio",
        group: "spawn_join",
        numerator: "rtext_1",
        denominator: "tokio",
        limit: 1.15,
    },
    Target {
        what: "set + drop in a task's frame <= 5 x task_local `sync_scope`",
        group: "bind_in_task",
        numerator: "rtext_set",
        denominator: "task_local",
        limit: 5.0,
    },
    Target {
        what: "set + drop, another binding held, <= 5 x task_local `sync_scope`",
        group: "bind_in_task",
        numerator: "rtext_set_again",
        denominator: "task_local",
        limit: 5.0,
    },
    #[cfg(feature = "log-variables")]
    Target {
        what: "span guard across yields <= 1.10 x `Instrument`",
        group: "span_guard_across_yields",
        numerator: "rtext_guard",
        denominator: "instrument",
        limit: 1.10,
    },
    #[cfg(feature = "log-variables")]
    Target {
        what: "span guard across yields <= 1.10 x `Instrument`, same body",
        group: "span_guard_across_yields",
        numerator: "rtext_guard",
        denominator: "instrument_body",
        limit: 1.10,
    },
    #[cfg(feature = "log-variables")]
    Target {
        what: "span guard enter + drop <= 2 x `Span::enter` + drop",
        group: "span_enter",
        numerator: "rtext_guard",
        denominator: "tracing_enter",
        limit: 2.0,
    },
];
