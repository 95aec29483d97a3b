#!/usr/bin/env bash
# Per-poll instructions of the runtime-hook mode (every task framed through
# tokio's task hooks), next to bare tokio and `ctx::spawn`, counted like
# `icount.sh` does. Builds with `--cfg tokio_unstable` into its own target dir.
#
# Usage: benches/icount-hook-mode.sh [N]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
export RUSTFLAGS="--cfg tokio_unstable"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/unstable"
source benches/icount-lib.sh
printf '| operation (tokio_unstable build) | instructions/op | / tokio |\n|---|---:|---:|\n'
base=""
for op in poll_tokio poll_rtext poll_noop_hooks poll_hook_mode; do
    per=$(icount_per_op "$op" "$n")
    base=${base:-$per}
    ratio=$(awk -v p="$per" -v t="$base" 'BEGIN { printf "%.2f", p / t }')
    printf '| %s | %s | %s |\n' "$op" "$per" "$ratio"
done
echo
echo "target: poll_hook_mode / poll_tokio <= 1.15"
