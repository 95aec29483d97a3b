#!/usr/bin/env bash
# Builds the benchmark suite without running it: timings on a shared CI
# machine would mean nothing, and a run takes minutes (see benches/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p benches --no-run
# The runtime-hook-mode groups exist only with `--cfg tokio_unstable`, a flag
# that changes every crate's build: a second build, in a target dir of its own.
RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/unstable" \
    cargo bench -p benches --no-run
