#!/usr/bin/env bash
# The `tracing` feature of rt-ext (span guards across awaits, spans that
# follow spawns, the no_suspend warnings): its tests and doctests, and clippy
# over its code, example and tests. The default build above leaves it out.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy -p rt-ext --all-targets --features tracing -- -D warnings
cargo test -p rt-ext --features tracing
# A TraceLayer-style middleware with FrameLayer: needs `tower` beside it.
cargo test -p rt-ext --features tracing,tower --test tracing_trace_layer
# `#[rt_ext::instrument]` without the `tracing` feature: one error, at the
# attribute (line 6 of the fixture), naming the feature.
out=$(cargo build -p instrument-without-tracing --features attempt 2>&1) && {
    echo "tracing: #[rt_ext::instrument] compiled without the tracing feature" >&2
    exit 1
}
if ! grep -q "needs rt-ext's \`tracing\` feature" <<<"$out" \
    || ! grep -q "src/lib.rs:6:1" <<<"$out" \
    || [ "$(grep -c '^error' <<<"$out")" != 2 ]; then
    echo "$out" >&2
    echo "tracing: not the one error at the attribute expected (above)" >&2
    exit 1
fi
