#!/usr/bin/env bash
# Builds the benchmark suite and its binaries without running them: timings
# on a shared CI machine would mean nothing, and a run takes minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p benches --no-run
cargo build -p benches --release --bins
