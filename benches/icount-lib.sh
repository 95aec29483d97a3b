# Shared by icount.sh and icount-hook-mode.sh (sourced, not run): builds the
# `icount` binary into $CARGO_TARGET_DIR and counts one operation's
# instructions with callgrind, as (count(2N) - count(N)) / N so that set-up
# and tear-down cancel out.

command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
icount_out=$(mktemp -d)
trap 'rm -rf "$icount_out"' EXIT

# Builds `icount` with the features in $ICOUNT_FEATURES and counts with a copy
# of it from then on: a later build with other features (icount.sh's second
# pass) replaces the binary in the target dir, not the copy being counted.
icount_build() {
    local features=${ICOUNT_FEATURES:-}
    cargo build -q --profile bench -p benches --bin icount ${features:+--features "$features"}
    icount_bin="$icount_out/icount${features:+-$features}"
    cp "${CARGO_TARGET_DIR:-target}/release/icount" "$icount_bin"
}
icount_build

# Total instructions of `icount OP COUNT`.
icount_total() {
    local file="$icount_out/$1.$2.out"
    valgrind --tool=callgrind --callgrind-out-file="$file" "$icount_bin" "$1" "$2" >/dev/null 2>&1
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

# Instructions per operation of OP, from N and 2N repetitions.
icount_per_op() {
    local op=$1 n=$2 a b
    a=$(icount_total "$op" "$n")
    b=$(icount_total "$op" $((2 * n)))
    awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / n }'
}
