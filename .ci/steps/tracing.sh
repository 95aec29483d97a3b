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
