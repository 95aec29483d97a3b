#!/usr/bin/env bash
# The `tower` feature of rt-ext (FrameLayer) and the services built on it:
# clippy over its code and tests, its tests and doctests, among them the
# tests that serve an axum app on loopback (127.0.0.1, port 0, bounded,
# self-terminating). With `test-util` too, for `#[rt_ext::test(start_paused =
# true)]` (tokio's paused clock): one more rt-ext build, not two.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy -p rt-ext --all-targets --features tower,test-util -- -D warnings
cargo test -p rt-ext --features tower,test-util
