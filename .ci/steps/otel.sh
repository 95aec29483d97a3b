#!/usr/bin/env bash
# The `opentelemetry` feature of rt-ext, with `propagation` for its
# propagator (one rt-ext build): clippy over its code, example and tests;
# its tests (the context on every spawn path across migrations, attach
# guards across awaits, one trace in the in-memory exporter, the
# propagator's round trips and hostile headers, an axum service on
# loopback: 127.0.0.1, port 0, bounded, self-terminating) and doctests;
# the example, whose trace must come out whole. Its hook-mode test runs in
# the unstable step.
set -euo pipefail
cd "$(dirname "$0")/../.."
FEATURES=opentelemetry,propagation
cargo clippy -p rt-ext --all-targets --features "$FEATURES" -- -D warnings
tests=()
for t in rt-ext/tests/otel_*.rs; do
    tests+=(--test "$(basename "$t" .rs)")
done
cargo test -p rt-ext --features "$FEATURES" "${tests[@]}"
cargo test -p rt-ext --features "$FEATURES" --doc otel
out=$(cargo run -q -p rt-ext --features "$FEATURES" --example otel)
echo "$out"
# One trace: every span under `request`, all with its trace id.
trace=$(sed -n 's/^request (trace \([0-9a-f]*\),.*/\1/p' <<<"$out")
if [ -z "$trace" ] || [ "$(grep -c "trace $trace" <<<"$out")" != 5 ] \
    || ! grep -q '^    query ' <<<"$out"; then
    echo "otel: the example's spans are not one trace under request (above)" >&2
    exit 1
fi
