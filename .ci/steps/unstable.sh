#!/usr/bin/env bash
# Second build with `--cfg tokio_unstable`: the runtime-hook mode, where every
# task of a `ctx::Builder` runtime gets a frame. Its own target dir, since the
# flag changes every crate's build. rt-ext with `tracing` (spans that follow
# plain `tokio::spawn`), `opentelemetry` (so does the current `Context`) and
# `tower` (the services, whose connection tasks are then framed by the
# runtime too), in one build.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUSTFLAGS="--cfg tokio_unstable"
export RUSTDOCFLAGS="--cfg tokio_unstable"
export CARGO_TARGET_DIR=target/unstable
FEATURES=rt-ext/tracing,rt-ext/tower,rt-ext/opentelemetry
# Clippy without the features too: their cfg branches differ in hook mode.
cargo clippy -p spawn-hooks -p rt-ext --all-targets -- -D warnings
cargo clippy -p spawn-hooks -p rt-ext --all-targets --features "$FEATURES" -- -D warnings
cargo test -p spawn-hooks -p rt-ext --features "$FEATURES"
