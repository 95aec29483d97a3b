#!/usr/bin/env bash
# The `propagation` feature of rt-ext (codec, baggage, http and tower layers,
# named scope chains): clippy over its code, example and tests; its tests and
# doctests (among them propagation_decode_memory, the largest allocation of a
# decode under hostile length fields, for every collection type); then the
# hostile-input test in release, where it feeds a million inputs to every
# decoder, for a codec of scalar, struct, map-, set- and sequence-typed
# variables (a debug build feeds 100,000).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy -p rt-ext --all-targets --features propagation -- -D warnings
cargo test -p rt-ext --features propagation
cargo test --release -p rt-ext --features propagation --test propagation_hostile_input -- --nocapture
