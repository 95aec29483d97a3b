#!/usr/bin/env bash
# Instructions per event of the `log_line` rows: one `info!` through
# tracing-subscriber's fmt layer (text, then JSON) into `io::sink`, with no
# request id, inside an entered span carrying `request_id`, and with
# REQUEST_ID bound and written by rt-ext's `LogVariables`. Counted like
# `icount.sh` does; builds `icount` with the `log-variables` feature.
#
# Usage: benches/icount-log-line.sh [N]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
export ICOUNT_FEATURES=log-variables
source benches/icount-lib.sh
printf '| operation | instructions/op | / plain |\n|---|---:|---:|\n'
for format in text json; do
    base=""
    for row in plain span variables; do
        op="log_${format}_${row}"
        per=$(icount_per_op "$op" "$n")
        base=${base:-$per}
        ratio=$(awk -v p="$per" -v b="$base" 'BEGIN { printf "%.2f", p / b }')
        printf '| %s | %s | %s |\n' "$op" "$per" "$ratio"
    done
done
