#!/usr/bin/env bash
# The `tower` feature of rt-ext (FrameLayer) and the services built on it:
# clippy over its code and tests, its doctests, and the tests that serve an
# axum app on loopback (127.0.0.1, port 0, bounded, self-terminating).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy -p rt-ext --all-targets --features tower -- -D warnings
cargo test -p rt-ext --features tower
