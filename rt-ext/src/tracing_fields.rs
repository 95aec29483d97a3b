//! `LogVariables`: the values of chosen variables in every line that
//! tracing-subscriber's `fmt` layer writes, read from the context of the code
//! that logs.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, PoisonError};

use ::tracing::callsite::Callsite;
use ::tracing::field::{Field, FieldSet, Value, Visit};
use ::tracing::metadata::Kind;
use ::tracing::span::Record;
use ::tracing::subscriber::Interest;
use ::tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::Variable;

/// Writes the values of chosen [`Variable`]s into every event that
/// tracing-subscriber's [`fmt`](mod@tracing_subscriber::fmt) layer formats, as
/// fields of the event: in the text formats after the event's own fields
/// (`request_id=7`), in JSON as members of the top-level object
/// (`"request_id":7`).
///
/// The values are those of the code that logs: the task, blocking closure or
/// thread that emits the event, so a variable bound once per request is on
/// every line of that request, in every task, `spawn_blocking` closure and
/// thread it spawned through rt-ext (they inherit it), and on no other line.
/// No span is needed, and nothing is done per poll or per spawn.
///
/// Installing it is one call on the `fmt` layer or subscriber builder:
/// [`text`](LogVariables::text) for the text formats (the default `Full` and
/// `Compact`), [`json`](LogVariables::json) for `.json()`.
///
/// ```
/// use rt_ext as ctx;
/// use rt_ext::tracing::LogVariables;
/// use tracing_subscriber::prelude::*;
/// # use std::sync::{Arc, Mutex};
/// # #[derive(Clone, Default)]
/// # struct Lines(Arc<Mutex<Vec<u8>>>);
/// # impl std::io::Write for Lines {
/// #     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
/// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// # }
/// # let lines = Lines::default();
/// # let out = lines.clone();
///
/// static REQUEST_ID: ctx::Variable<u64> = ctx::Variable::new("request_id");
///
/// let logged = LogVariables::new().with(&REQUEST_ID);
/// tracing_subscriber::registry()
///     .with(logged.text(tracing_subscriber::fmt::layer()
/// #       .with_writer(move || out.clone()).without_time().with_ansi(false)
///     ))
///     .init();
///
/// ctx::Runtime::new().unwrap().block_on(async {
///     let _id = REQUEST_ID.set(7);
///     tracing::info!("accepted");
///     ctx::spawn(async { tracing::info!("audited") }).await.unwrap();
/// });
/// tracing::info!("idle");
/// # let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
/// # let text: Vec<&str> = text.lines().collect();
/// # assert!(text[0].ends_with("accepted request_id=7"), "{text:?}");
/// # assert!(text[1].ends_with("audited request_id=7"), "{text:?}");
/// # assert!(text[2].ends_with("idle"), "{text:?}");
/// // INFO rust_out: accepted request_id=7
/// // INFO rust_out: audited request_id=7
/// // INFO rust_out: idle
/// ```
///
/// # What is written
///
/// - A variable is written only where it is bound; an event whose own fields
///   include one of the same name keeps its own value and gets no second one.
/// - [`with`](LogVariables::with) records the value as [`tracing::Value`]
///   (numbers, `bool`, strings: in JSON a number stays a number);
///   [`display`](LogVariables::display) and [`debug`](LogVariables::debug)
///   take any `Display` or `Debug` type, as `%` and `?` do in `info!`.
/// - In the text formats each variable goes through the layer's own field
///   formatter (`DefaultFields` unless you set another), so it looks exactly
///   like a field of the event: same `key=value` form, same ANSI styling,
///   same escaping of control characters.
/// - Span lifecycle events (`with_span_events`) are events too and carry the
///   variables of the code where the span is created, entered or closed. The
///   fields of the spans themselves (`request{id=7}:` in text, `"spans"` in
///   JSON) are left as the spans recorded them: the line carries the
///   variables once, not once per span.
///
/// # Design
///
/// The fmt layer formats an event synchronously inside `Subscriber::event`,
/// on the thread that emits it, where rt-ext has made the emitting task's
/// context current. So the formatter reads the variables right there, with
/// [`Variable::with`], and inheritance does the rest. The alternatives cost
/// more or compose worse:
///
/// - A span per request carrying the value (with `Instrument` or span
///   guards) costs an enter and an exit per poll of every task, and repeats
///   the value in every line's span list; a task that is not inside the span
///   (spawned with plain tokio, or detached) loses it.
/// - A separate [`Layer`](tracing_subscriber::Layer) cannot add fields to an
///   event that another layer formats: `Event` is immutable and the fmt
///   layer writes only its fields and its spans' stored fields.
///
/// The variables are therefore added by wrapping the layer's formatters:
///
/// - text: the event formatter is wrapped in [`TextEvents`], which marks the
///   event it is formatting, and the field formatter in [`TextFields`], which,
///   when asked for that event's fields, formats them and then each bound
///   variable, as a field of its own, through the same inner field formatter.
///   Span fields, formatted at other times, are untouched. A text format that
///   does not write event fields through the field formatter
///   (tracing-subscriber's `Pretty`) gets no variables.
/// - JSON: tracing-subscriber's JSON formatter writes event fields with a
///   serializer of its own, so [`JsonEvents`] lets it write the object into a
///   buffer and inserts the members before its closing brace, then writes the
///   line. An event with no variable bound is written straight through, with
///   no buffer. A line that is not one JSON object is written unchanged.
///
/// Only the fmt layer's output carries the variables: other layers (an
/// OpenTelemetry exporter, say) see the events as emitted.
///
/// The cost is per event written, for each variable a lookup in the current
/// context and the formatting of its value; the `log_line` group of the
/// crate's benches compares it with the same event inside a span that
/// carries the field.
#[derive(Clone, Default)]
pub struct LogVariables {
    entries: Arc<Vec<Entry>>,
}

impl LogVariables {
    /// An empty set: add variables with [`with`](LogVariables::with),
    /// [`display`](LogVariables::display) or [`debug`](LogVariables::debug).
    ///
    /// # Examples
    ///
    /// ```
    /// let none = rt_ext::tracing::LogVariables::new();
    /// assert!(none.is_empty());
    /// ```
    pub fn new() -> LogVariables {
        LogVariables::default()
    }

    /// Adds `var`, written under its [name](Variable::name) and recorded as
    /// a [`tracing::Value`]: integers and floats as numbers, `bool`s, strings
    /// (`String`, `&'static str`) as strings, an `Option` only when `Some`.
    ///
    /// # Examples
    ///
    /// ```
    /// static REQUEST_ID: rt_ext::Variable<u64> = rt_ext::Variable::new("request_id");
    /// static ROUTE: rt_ext::Variable<&'static str> = rt_ext::Variable::new("route");
    ///
    /// let logged = rt_ext::tracing::LogVariables::new().with(&REQUEST_ID).with(&ROUTE);
    /// assert_eq!(logged.keys().collect::<Vec<_>>(), ["request_id", "route"]);
    /// ```
    pub fn with<T>(self, var: &'static Variable<T>) -> LogVariables
    where
        T: Value + Send + Sync + 'static,
    {
        self.push(var.name(), Arc::new(AsValue(var)))
    }

    /// Adds `var`, written with its `Display` implementation (`%` in
    /// `info!`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::IpAddr;
    ///
    /// static PEER: rt_ext::Variable<IpAddr> = rt_ext::Variable::new("peer");
    /// let logged = rt_ext::tracing::LogVariables::new().display(&PEER);
    /// assert_eq!(logged.keys().next(), Some("peer"));
    /// ```
    pub fn display<T>(self, var: &'static Variable<T>) -> LogVariables
    where
        T: fmt::Display + Send + Sync + 'static,
    {
        self.push(var.name(), Arc::new(AsDisplay(var)))
    }

    /// Adds `var`, written with its `Debug` implementation (`?` in `info!`).
    ///
    /// # Examples
    ///
    /// ```
    /// #[derive(Debug)]
    /// enum Tier {
    ///     Free,
    ///     Paid,
    /// }
    ///
    /// static TIER: rt_ext::Variable<Tier> = rt_ext::Variable::new("tier");
    /// let logged = rt_ext::tracing::LogVariables::new().debug(&TIER);
    /// assert_eq!(logged.keys().next(), Some("tier"));
    /// # let _ = (Tier::Free, Tier::Paid);
    /// ```
    pub fn debug<T>(self, var: &'static Variable<T>) -> LogVariables
    where
        T: fmt::Debug + Send + Sync + 'static,
    {
        self.push(var.name(), Arc::new(AsDebug(var)))
    }

    /// The keys written, in the order they were added (and are written).
    ///
    /// # Examples
    ///
    /// ```
    /// static TENANT: rt_ext::Variable<String> = rt_ext::Variable::new("tenant");
    /// let logged = rt_ext::tracing::LogVariables::new().with(&TENANT);
    /// assert_eq!(logged.keys().collect::<Vec<_>>(), ["tenant"]);
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|e| e.key)
    }

    /// Whether no variable was added.
    ///
    /// # Examples
    ///
    /// ```
    /// static ID: rt_ext::Variable<u32> = rt_ext::Variable::new("id");
    /// assert!(rt_ext::tracing::LogVariables::new().is_empty());
    /// assert!(!rt_ext::tracing::LogVariables::new().with(&ID).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Installs the variables in a text-format `fmt` layer or subscriber
    /// builder (`Full`, the default, or `Compact`): each bound variable is
    /// written after the event's own fields, by the layer's field formatter.
    ///
    /// Call it after choosing the format and field formatter (a later
    /// `.compact()` or `.fmt_fields(..)` would replace the wrappers).
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::tracing::LogVariables;
    ///
    /// static REQUEST_ID: rt_ext::Variable<u64> = rt_ext::Variable::new("request_id");
    ///
    /// let logged = LogVariables::new().with(&REQUEST_ID);
    /// // with the subscriber builder:
    /// let subscriber = logged.text(tracing_subscriber::fmt().compact()).finish();
    /// tracing::subscriber::with_default(subscriber, || {
    ///     REQUEST_ID.sync_scope(7, || tracing::info!("handled")); // ... handled request_id=7
    /// });
    /// ```
    pub fn text<F: FmtBuilder>(&self, fmt: F) -> F::Text {
        fmt.install_text(self)
    }

    /// Installs the variables in a JSON `fmt` layer or subscriber builder
    /// (`.json()`, with any of its options): each bound variable becomes a
    /// member of the line's top-level object.
    ///
    /// Name the variables apart from the formatter's own keys (`timestamp`,
    /// `level`, `fields`, `target`, `span`, `spans`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use rt_ext::tracing::LogVariables;
    /// use tracing_subscriber::prelude::*;
    ///
    /// static REQUEST_ID: rt_ext::Variable<u64> = rt_ext::Variable::new("request_id");
    ///
    /// let logged = LogVariables::new().with(&REQUEST_ID);
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(logged.json(tracing_subscriber::fmt::layer().json()));
    /// tracing::subscriber::with_default(subscriber, || {
    ///     // {"timestamp":"..","level":"INFO","fields":{"message":"handled"},"target":"..","request_id":7}
    ///     REQUEST_ID.sync_scope(7, || tracing::info!("handled"));
    /// });
    /// ```
    pub fn json<F: FmtBuilder>(&self, fmt: F) -> F::Json {
        fmt.install_json(self)
    }

    fn push(mut self, key: &'static str, read: Arc<dyn Read>) -> LogVariables {
        Arc::make_mut(&mut self.entries).push(Entry {
            key,
            names: interned(key),
            read,
        });
        self
    }

    /// Identifies this set (and its clones) for the text mode's hand-off.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.entries) as usize
    }

    /// Writes ` key=value` for each variable bound here and not a field of
    /// `event`, each through `fields` as a field of its own.
    fn write_text<N>(
        &self,
        fields: &N,
        writer: &mut Writer<'_>,
        event: &Metadata<'_>,
    ) -> fmt::Result
    where
        N: for<'w> FormatFields<'w>,
    {
        for entry in self.entries.iter() {
            if event.fields().field(entry.key).is_some() {
                continue;
            }
            let set = entry.field_set();
            let Some(field) = set.field(entry.key) else {
                continue;
            };
            let mut result = Ok(());
            entry.read.with_value(&mut |value| {
                if !records_anything(value, &field) {
                    return;
                }
                let values = [(&field, Some(value))];
                let values = set.value_set(&values);
                result = writer
                    .write_char(' ')
                    .and_then(|()| fields.format_fields(writer.by_ref(), Record::new(&values)));
            });
            result?;
        }
        Ok(())
    }

    /// Appends `"key":value` members, comma-separated, for each variable
    /// bound here and not a field of `event`.
    fn write_json(&self, out: &mut String, event: &Metadata<'_>) {
        for entry in self.entries.iter() {
            if event.fields().field(entry.key).is_some() {
                continue;
            }
            let set = entry.field_set();
            let Some(field) = set.field(entry.key) else {
                continue;
            };
            entry.read.with_value(&mut |value| {
                if !records_anything(value, &field) {
                    return;
                }
                if !out.is_empty() {
                    out.push(',');
                }
                json_string(out, entry.key);
                out.push(':');
                value.record(&field, &mut JsonValue(out));
            });
        }
    }
}

impl fmt::Debug for LogVariables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogVariables")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .finish()
    }
}

// ===== the variables =====

#[derive(Clone)]
struct Entry {
    key: &'static str,
    /// `[key]`, the names of the one-field set the value is recorded in.
    names: &'static [&'static str],
    read: Arc<dyn Read>,
}

impl Entry {
    fn field_set(&self) -> FieldSet {
        FieldSet::new(self.names, tracing_core::identify_callsite!(&KEY_CALLSITE))
    }
}

/// Reads one variable in the current context and hands its value, if bound,
/// to `f` as a `tracing` value.
trait Read: Send + Sync {
    fn with_value(&self, f: &mut dyn FnMut(&dyn Value));
}

struct AsValue<T: 'static>(&'static Variable<T>);
struct AsDisplay<T: 'static>(&'static Variable<T>);
struct AsDebug<T: 'static>(&'static Variable<T>);

impl<T: Value + Send + Sync + 'static> Read for AsValue<T> {
    fn with_value(&self, f: &mut dyn FnMut(&dyn Value)) {
        self.0.with(|v| {
            if let Some(v) = v {
                f(v)
            }
        })
    }
}

impl<T: fmt::Display + Send + Sync + 'static> Read for AsDisplay<T> {
    fn with_value(&self, f: &mut dyn FnMut(&dyn Value)) {
        self.0.with(|v| {
            if let Some(v) = v {
                f(&::tracing::field::display(v))
            }
        })
    }
}

impl<T: fmt::Debug + Send + Sync + 'static> Read for AsDebug<T> {
    fn with_value(&self, f: &mut dyn FnMut(&dyn Value)) {
        self.0.with(|v| {
            if let Some(v) = v {
                f(&::tracing::field::debug(v))
            }
        })
    }
}

/// The `[key]` slice for `key`, leaked once per distinct key in the process
/// (a field set takes `&'static` names).
fn interned(key: &'static str) -> &'static [&'static str] {
    static INTERNED: Mutex<Vec<&'static [&'static str]>> = Mutex::new(Vec::new());
    let mut interned = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(names) = interned.iter().find(|names| names[0] == key) {
        return names;
    }
    let names: &'static [&'static str] = Box::leak(Box::new([key]));
    interned.push(names);
    names
}

/// The callsite that the variables' fields belong to. It is never registered
/// or enabled: it only gives each key a [`Field`] to record a value under,
/// which is what a field formatter takes.
struct KeyCallsite;

static KEY_CALLSITE: KeyCallsite = KeyCallsite;

static KEY_METADATA: Metadata<'static> = Metadata::new(
    "rt_ext::tracing::LogVariables",
    "rt_ext::tracing",
    Level::TRACE,
    None,
    None,
    None,
    FieldSet::new(&[], tracing_core::identify_callsite!(&KEY_CALLSITE)),
    Kind::EVENT,
);

impl Callsite for KeyCallsite {
    fn set_interest(&self, _: Interest) {}

    fn metadata(&self) -> &Metadata<'_> {
        &KEY_METADATA
    }
}

/// Whether `value` records anything (a `None` records nothing). Formats
/// nothing: every `record_*` method defaults to `record_debug`.
fn records_anything(value: &dyn Value, field: &Field) -> bool {
    struct Probe(bool);
    impl Visit for Probe {
        fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {
            self.0 = true;
        }
    }
    let mut probe = Probe(false);
    value.record(field, &mut probe);
    probe.0
}

// ===== text =====

/// An event being formatted by a [`TextEvents`], for the [`TextFields`] of
/// the same [`LogVariables`] (by `LogVariables::id`).
type Pending = Option<(usize, &'static Metadata<'static>)>;

thread_local! {
    static PENDING: Cell<Pending> = const { Cell::new(None) };
}

/// The field formatter of a text `fmt` layer with [`LogVariables`]
/// installed by [`LogVariables::text`]: formats fields with `N`, and after
/// the fields of an event that its [`TextEvents`] is formatting, each bound
/// variable, also with `N`.
///
/// # Examples
///
/// ```
/// use rt_ext::tracing::{LogVariables, TextEvents, TextFields};
/// use tracing_subscriber::fmt::format::{DefaultFields, Format};
/// use tracing_subscriber::fmt::SubscriberBuilder;
///
/// static ID: rt_ext::Variable<u64> = rt_ext::Variable::new("id");
/// let builder: SubscriberBuilder<TextFields<DefaultFields>, TextEvents<Format>> =
///     LogVariables::new().with(&ID).text(tracing_subscriber::fmt());
/// ```
#[derive(Debug)]
pub struct TextFields<N> {
    inner: N,
    vars: LogVariables,
}

impl<'writer, N> FormatFields<'writer> for TextFields<N>
where
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let event = take_pending(self.vars.id());
        self.inner.format_fields(writer.by_ref(), fields)?;
        match event {
            Some(event) => self.vars.write_text(&self.inner, &mut writer, event),
            None => Ok(()),
        }
    }
}

/// Takes the pending event if it is for the [`LogVariables`] `id`.
fn take_pending(id: usize) -> Option<&'static Metadata<'static>> {
    PENDING
        .try_with(|pending| match pending.get() {
            Some((owner, event)) if owner == id => {
                pending.set(None);
                Some(event)
            }
            _ => None,
        })
        .ok()
        .flatten()
}

/// The event formatter of a text `fmt` layer with [`LogVariables`]
/// installed by [`LogVariables::text`]: formats with `E`, telling its
/// [`TextFields`] which event it is formatting.
///
/// # Examples
///
/// ```
/// use rt_ext::tracing::{LogVariables, TextEvents, TextFields};
/// use tracing_subscriber::fmt::format::{DefaultFields, Format};
///
/// static ID: rt_ext::Variable<u64> = rt_ext::Variable::new("id");
/// let layer: tracing_subscriber::fmt::Layer<tracing_subscriber::Registry, TextFields<DefaultFields>, TextEvents<Format>> =
///     LogVariables::new().with(&ID).text(tracing_subscriber::fmt::layer());
/// ```
#[derive(Debug)]
pub struct TextEvents<E> {
    inner: E,
    vars: LogVariables,
}

impl<S, N, E> FormatEvent<S, N> for TextEvents<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        /// Puts back the hand-off that was there (an event formatted while
        /// another is, from a field's `Debug`), also when formatting unwinds.
        struct Restore(Pending);
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = PENDING.try_with(|pending| pending.set(self.0));
            }
        }
        let mine = Some((self.vars.id(), event.metadata()));
        let _restore = PENDING
            .try_with(|pending| Restore(pending.replace(mine)))
            .ok();
        self.inner.format_event(ctx, writer, event)
    }
}

// ===== JSON =====

/// The event formatter of a JSON `fmt` layer with [`LogVariables`]
/// installed by [`LogVariables::json`]: formats with `E` and adds each bound
/// variable as a member of the top-level object.
///
/// # Examples
///
/// ```
/// use rt_ext::tracing::{JsonEvents, LogVariables};
/// use tracing_subscriber::fmt::format::{Format, Json, JsonFields};
/// use tracing_subscriber::fmt::SubscriberBuilder;
///
/// static ID: rt_ext::Variable<u64> = rt_ext::Variable::new("id");
/// let builder: SubscriberBuilder<JsonFields, JsonEvents<Format<Json>>> =
///     LogVariables::new().with(&ID).json(tracing_subscriber::fmt().json());
/// ```
#[derive(Debug)]
pub struct JsonEvents<E> {
    inner: E,
    vars: LogVariables,
}

impl<S, N, E> FormatEvent<S, N> for JsonEvents<E>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    E: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        with_buffer(|buf| {
            self.vars.write_json(buf, event.metadata());
            if buf.is_empty() {
                return self.inner.format_event(ctx, writer, event);
            }
            let members = buf.len();
            self.inner.format_event(ctx, Writer::new(buf), event)?;
            let (members, line) = buf.split_at(members);
            match json_insertion(line) {
                Some((at, comma)) => {
                    writer.write_str(&line[..at])?;
                    if comma {
                        writer.write_char(',')?;
                    }
                    writer.write_str(members)?;
                    writer.write_str(&line[at..])
                }
                None => writer.write_str(line),
            }
        })
    }
}

/// Where to insert members into `line` (before the closing brace of its one
/// top-level object) and whether they need a leading comma; `None` if `line`
/// is not an object.
fn json_insertion(line: &str) -> Option<(usize, bool)> {
    let object = line.trim_end();
    if !object.starts_with('{') || !object.ends_with('}') {
        return None;
    }
    let at = object.len() - 1;
    let comma = !line[..at].trim_end().ends_with('{');
    Some((at, comma))
}

/// Runs `f` with this thread's scratch buffer, cleared (a fresh one if the
/// buffer is in use further up the stack: an event logged while one is
/// formatted).
fn with_buffer<R>(f: impl FnOnce(&mut String) -> R) -> R {
    thread_local! {
        static BUFFER: RefCell<String> = const { RefCell::new(String::new()) };
    }
    let mut f = Some(f);
    let done = BUFFER
        .try_with(|buffer| {
            let mut buffer = buffer.try_borrow_mut().ok()?;
            buffer.clear();
            let r = (f.take()?)(&mut buffer);
            if buffer.capacity() > 64 * 1024 {
                *buffer = String::new();
            }
            Some(r)
        })
        .ok()
        .flatten();
    match (done, f) {
        (Some(r), _) => r,
        (None, Some(f)) => f(&mut String::new()),
        (None, None) => unreachable!("`f` runs once, and returns"),
    }
}

/// Records one value as JSON, as tracing-subscriber's JSON formatter records
/// event fields: numbers and `bool`s as such (non-finite floats as `null`),
/// everything else as a string.
struct JsonValue<'a>(&'a mut String);

impl Visit for JsonValue<'_> {
    fn record_f64(&mut self, _: &Field, value: f64) {
        if value.is_finite() {
            let _ = write!(self.0, "{value}");
        } else {
            self.0.push_str("null");
        }
    }

    fn record_i64(&mut self, _: &Field, value: i64) {
        let _ = write!(self.0, "{value}");
    }

    fn record_u64(&mut self, _: &Field, value: u64) {
        let _ = write!(self.0, "{value}");
    }

    fn record_i128(&mut self, _: &Field, value: i128) {
        let _ = write!(self.0, "{value}");
    }

    fn record_u128(&mut self, _: &Field, value: u128) {
        let _ = write!(self.0, "{value}");
    }

    fn record_bool(&mut self, _: &Field, value: bool) {
        self.0.push_str(if value { "true" } else { "false" });
    }

    fn record_str(&mut self, _: &Field, value: &str) {
        json_string(self.0, value);
    }

    fn record_error(&mut self, _: &Field, value: &(dyn std::error::Error + 'static)) {
        json_string(self.0, value);
    }

    fn record_debug(&mut self, _: &Field, value: &dyn fmt::Debug) {
        json_string(self.0, format_args!("{value:?}"));
    }
}

/// Appends `value`'s `Display` output as a JSON string.
fn json_string(out: &mut String, value: impl fmt::Display) {
    /// Escapes what JSON requires: `"`, `\` and control characters.
    struct Escape<'a>(&'a mut String);
    impl fmt::Write for Escape<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                match c {
                    '"' => self.0.push_str("\\\""),
                    '\\' => self.0.push_str("\\\\"),
                    '\n' => self.0.push_str("\\n"),
                    '\r' => self.0.push_str("\\r"),
                    '\t' => self.0.push_str("\\t"),
                    c if c < ' ' => write!(self.0, "\\u{:04x}", c as u32)?,
                    c => self.0.push(c),
                }
            }
            Ok(())
        }
    }
    out.push('"');
    let _ = write!(Escape(out), "{value}");
    out.push('"');
}

// ===== installing =====

/// A tracing-subscriber `fmt` [`Layer`](tracing_subscriber::fmt::Layer) or
/// [`SubscriberBuilder`](tracing_subscriber::fmt::SubscriberBuilder), which
/// [`LogVariables::text`] and [`LogVariables::json`] install the variables
/// in. Sealed.
///
/// # Examples
///
/// ```
/// use rt_ext::tracing::{FmtBuilder, LogVariables};
///
/// fn with_request_ids<F: FmtBuilder>(fmt: F) -> F::Text {
///     static REQUEST_ID: rt_ext::Variable<u64> = rt_ext::Variable::new("request_id");
///     LogVariables::new().with(&REQUEST_ID).text(fmt)
/// }
/// let _subscriber = with_request_ids(tracing_subscriber::fmt()).finish();
/// ```
pub trait FmtBuilder: sealed::Sealed {
    /// The layer or builder with the variables in its text output.
    type Text;
    /// The layer or builder with the variables in its JSON output.
    type Json;

    #[doc(hidden)]
    fn install_text(self, vars: &LogVariables) -> Self::Text;

    #[doc(hidden)]
    fn install_json(self, vars: &LogVariables) -> Self::Json;
}

mod sealed {
    pub trait Sealed {}
    impl<S, N, E, W> Sealed for tracing_subscriber::fmt::Layer<S, N, E, W> {}
    impl<N, E, F, W> Sealed for tracing_subscriber::fmt::SubscriberBuilder<N, E, F, W> {}
}

impl<S, N, E, W> FmtBuilder for tracing_subscriber::fmt::Layer<S, N, E, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
    E: FormatEvent<S, N> + FormatEvent<S, TextFields<N>> + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    type Text = tracing_subscriber::fmt::Layer<S, TextFields<N>, TextEvents<E>, W>;
    type Json = tracing_subscriber::fmt::Layer<S, N, JsonEvents<E>, W>;

    fn install_text(self, vars: &LogVariables) -> Self::Text {
        self.map_fmt_fields(|inner| TextFields {
            inner,
            vars: vars.clone(),
        })
        .map_event_format(|inner| TextEvents {
            inner,
            vars: vars.clone(),
        })
    }

    fn install_json(self, vars: &LogVariables) -> Self::Json {
        self.map_event_format(|inner| JsonEvents {
            inner,
            vars: vars.clone(),
        })
    }
}

impl<N, E, F, W> FmtBuilder for tracing_subscriber::fmt::SubscriberBuilder<N, E, F, W>
where
    N: for<'w> FormatFields<'w> + 'static,
    E: FormatEvent<tracing_subscriber::Registry, N>
        + FormatEvent<tracing_subscriber::Registry, TextFields<N>>
        + 'static,
    W: for<'w> MakeWriter<'w> + 'static,
{
    type Text = tracing_subscriber::fmt::SubscriberBuilder<TextFields<N>, TextEvents<E>, F, W>;
    type Json = tracing_subscriber::fmt::SubscriberBuilder<N, JsonEvents<E>, F, W>;

    fn install_text(self, vars: &LogVariables) -> Self::Text {
        self.map_fmt_fields(|inner| TextFields {
            inner,
            vars: vars.clone(),
        })
        .map_event_format(|inner| TextEvents {
            inner,
            vars: vars.clone(),
        })
    }

    fn install_json(self, vars: &LogVariables) -> Self::Json {
        self.map_event_format(|inner| JsonEvents {
            inner,
            vars: vars.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{json_insertion, json_string};

    #[test]
    fn members_go_before_the_closing_brace_of_one_object() {
        assert_eq!(json_insertion("{}\n"), Some((1, false)));
        assert_eq!(json_insertion("{ }\n"), Some((2, false)));
        assert_eq!(json_insertion("{\"a\":1}\n"), Some((6, true)));
        assert_eq!(json_insertion("{\"a\":{}}"), Some((7, true)));
        // not one object: left alone
        assert_eq!(json_insertion(" INFO app: {}\n"), None);
        assert_eq!(json_insertion("[1]\n"), None);
        assert_eq!(json_insertion(""), None);
    }

    #[test]
    fn strings_are_escaped_as_json_requires() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\nd\te\u{1}f\u{7f}é");
        assert_eq!(out, r#""a\"b\\c\nd\te\u0001f"#.to_owned() + "\u{7f}é\"");
        let parsed: String = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\te\u{1}f\u{7f}é");
    }
}
