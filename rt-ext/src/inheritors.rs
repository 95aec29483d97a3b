//! rt-ext's inheritors, composed into the one every spawn asks (see
//! `spawn_hooks::Inherit`): tracing's current span (feature `tracing`),
//! OpenTelemetry's current `Context` (feature `opentelemetry`), then those
//! registered at run time with [`register`](crate::register).
//!
//! Composed statically: a built-in inheritor's hook is stored in the spawned
//! future and called directly on each poll, with no allocation and no
//! dynamic call; one that is compiled out is `()`, which costs nothing.

use spawn_hooks::Registered;

#[cfg(feature = "tracing")]
type Spans = crate::tracing::FollowSpan;
#[cfg(feature = "tracing")]
const SPANS: Spans = crate::tracing::FollowSpan;
#[cfg(not(feature = "tracing"))]
type Spans = ();
#[cfg(not(feature = "tracing"))]
const SPANS: Spans = ();

#[cfg(feature = "opentelemetry")]
type Otel = crate::otel::FollowContext;
#[cfg(feature = "opentelemetry")]
const OTEL: Otel = crate::otel::FollowContext;
#[cfg(not(feature = "opentelemetry"))]
type Otel = ();
#[cfg(not(feature = "opentelemetry"))]
const OTEL: Otel = ();

/// Every inheritor, in the order their hooks resume: the span first (the
/// outermost), then the OpenTelemetry context, then registered ones.
pub(crate) type All = (Spans, (Otel, Registered));

/// The value of [`All`].
pub(crate) static ALL: All = (SPANS, (OTEL, Registered));
