#!/usr/bin/env bash
# Builds the benchmark suite without running it: timings on a shared CI
# machine would mean nothing, and a run takes minutes (see benches/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -p benches --no-run
