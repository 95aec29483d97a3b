//! rt-ext's inheritors, composed into the one every spawn asks (see
//! `spawn_hooks::Inherit`): tracing's current span (feature `tracing`),
//! OpenTelemetry's current `Context` (feature `opentelemetry`), then those
//! registered at run time with [`register`](crate::register).
//!
//! Composed statically: a built-in inheritor's hook is stored in the spawned
//! future and called directly on each poll, with no allocation and no
//! dynamic call; one whose feature is off is not there at all.

use spawn_hooks::Registered;

// One alias per combination of features rather than `()` in the place of a
// feature that is off: each `()` would still add a flag to every spawned
// future, and moving a bigger future costs a spawn instructions.

/// Every inheritor, in the order their hooks resume: the span first (the
/// outermost), then the OpenTelemetry context, then registered ones.
#[cfg(all(feature = "tracing", feature = "opentelemetry"))]
pub(crate) type All = (
    crate::tracing::FollowSpan,
    (crate::otel::FollowContext, Registered),
);
/// The value of [`All`].
#[cfg(all(feature = "tracing", feature = "opentelemetry"))]
pub(crate) static ALL: All = (
    crate::tracing::FollowSpan,
    (crate::otel::FollowContext, Registered),
);

/// Every inheritor: the span first (the outermost), then registered ones.
#[cfg(all(feature = "tracing", not(feature = "opentelemetry")))]
pub(crate) type All = (crate::tracing::FollowSpan, Registered);
/// The value of [`All`].
#[cfg(all(feature = "tracing", not(feature = "opentelemetry")))]
pub(crate) static ALL: All = (crate::tracing::FollowSpan, Registered);

/// Every inheritor: the OpenTelemetry context first, then registered ones.
#[cfg(all(not(feature = "tracing"), feature = "opentelemetry"))]
pub(crate) type All = (crate::otel::FollowContext, Registered);
/// The value of [`All`].
#[cfg(all(not(feature = "tracing"), feature = "opentelemetry"))]
pub(crate) static ALL: All = (crate::otel::FollowContext, Registered);

/// Every inheritor: those registered at run time.
#[cfg(not(any(feature = "tracing", feature = "opentelemetry")))]
pub(crate) type All = Registered;
/// The value of [`All`].
#[cfg(not(any(feature = "tracing", feature = "opentelemetry")))]
pub(crate) static ALL: All = Registered;
