#!/usr/bin/env bash
# The `tower` feature of rt-ext (FrameLayer) and the services built on it:
# clippy over its code and tests; the tests that need the feature (among
# them the example service on loopback: 127.0.0.1, port 0, bounded,
# self-terminating) and the layer's doctests. With `test-util` too, for
# `#[rt_ext::test(start_paused = true)]` (tokio's paused clock): one more
# rt-ext build, not two. The rest of the suite runs in the default build.
set -euo pipefail
cd "$(dirname "$0")/../.."
FEATURES=tower,test-util
cargo clippy -p rt-ext --all-targets --features "$FEATURES" -- -D warnings
cargo test -p rt-ext --features "$FEATURES" \
    --test frame_layer --test axum_service --test macros_start_paused --test detached
cargo test -p rt-ext --features "$FEATURES" --doc tower
cargo test -p rt-ext --features "$FEATURES" --doc start_paused
