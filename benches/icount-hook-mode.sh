#!/usr/bin/env bash
# Per-poll instructions of the runtime-hook mode (every task framed through
# tokio's task hooks), next to bare tokio and `ctx::spawn`, counted like
# `icount.sh` does. Builds with `--cfg tokio_unstable` into its own target dir.
#
# Usage: benches/icount-hook-mode.sh [N]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
export RUSTFLAGS="--cfg tokio_unstable"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/unstable-bench"
cargo build -q --profile bench -p benches --bin icount
bin="$CARGO_TARGET_DIR/release/icount"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
count() {
    local file="$out/$1.$2.out"
    valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" "$1" "$2" >/dev/null 2>&1
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}
printf '| operation (tokio_unstable build) | instructions/op | / tokio |\n|---|---:|---:|\n'
base=""
for op in poll_tokio poll_rtext poll_noop_hooks poll_hook_mode; do
    a=$(count "$op" "$n")
    b=$(count "$op" $((2 * n)))
    per=$(awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }')
    base=${base:-$per}
    ratio=$(awk -v p="$per" -v t="$base" 'BEGIN { printf "%.2f", p / t }')
    printf '| %s | %s | %s |\n' "$op" "$per" "$ratio"
done
echo
echo "target: poll_hook_mode / poll_tokio <= 1.15"
