#!/usr/bin/env bash
# Builds each deliberately broken variant ("mutant") of the spawn-hooks core
# and runs the loom models against it: every mutant must make at least one
# model fail. Exits non-zero if a mutant survives, does not compile, or if the
# unbroken core does not pass first.
#
#   loom-tests/run-mutants.sh             # every mutant
#   loom-tests/run-mutants.sh no_replay   # just these
#
# The mutants are `#[cfg(spawn_hooks_mutant = "...")]` lines next to the real
# ones in spawn-hooks/src; the list below must match the check-cfg values in
# the root Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(
    skip_restore
    no_resume
    no_yield_on_unwind
    cancel_unentered
    no_settle_on_resume
    drop_unresumed
    remove_by_depth
    no_replay
    owns_any
    pending_before_lock
    clear_after_unlock
    settle_all_at_once
    no_wait
)
if [ "$#" -gt 0 ]; then
    mutants=("$@")
else
    mutants=("${all[@]}")
fi

export RUSTFLAGS="--cfg spawn_hooks_loom"
export RUSTC_WRAPPER="$PWD/loom-tests/mutant-rustc.sh"
export CARGO_TARGET_DIR="${MUTANTS_TARGET_DIR:-target/loom-mutants}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TERM_COLOR=never
unset SPAWN_HOOKS_MUTANT
out="$CARGO_TARGET_DIR/mutant-logs"
mkdir -p "$out"

# Builds the core as `$1` (empty: unbroken) and runs every model; the
# output goes to $out/$1.log. The wrapper's cfg is invisible to cargo's
# fingerprints, so spawn-hooks is cleaned first to force its rebuild.
run_models() {
    local name="${1:-baseline}" log="$out/${1:-baseline}.log"
    cargo clean -q --release -p spawn-hooks
    if ! SPAWN_HOOKS_MUTANT="$1" cargo test -p loom-tests --release --no-run >"$log" 2>&1; then
        echo "$name: does not build (see $log)" >&2
        tail -n 20 "$log" >&2
        return 2
    fi
    if ! grep -q "Compiling spawn-hooks" "$log"; then
        echo "$name: spawn-hooks was not rebuilt" >&2
        return 2
    fi
    SPAWN_HOOKS_MUTANT="$1" cargo test -p loom-tests --release --no-fail-fast >>"$log" 2>&1
}

start=$SECONDS
if ! run_models ""; then
    echo "the unbroken core fails the models (see $out/baseline.log)" >&2
    exit 1
fi
echo "baseline: all models pass"

survivors=()
for m in "${mutants[@]}"; do
    status=0
    run_models "$m" || status=$?
    case "$status" in
        0)
            echo "SURVIVED: $m (every model passed; see $out/$m.log)"
            survivors+=("$m")
            ;;
        2) exit 1 ;;
        *)
            # The failing models (by their result line or, when the test
            # binary aborted first, by their panic message: a panic while
            # loom tears a failed execution down aborts the process) and
            # the test files that failed.
            models=$(sed -n -e 's/^test \(loom_[a-z_]*\) \.\.\. FAILED$/\1/p' \
                -e "s/^thread '\(loom_[a-z_]*\)' .*panicked at.*/\1/p" "$out/$m.log" | sort -u | xargs)
            files=$(sed -n 's/.*rerun pass `-p loom-tests --test \(loom_[a-z_]*\)`.*/\1.rs/p' "$out/$m.log" | sort -u | xargs)
            if [ -z "$files" ]; then
                # cargo failed without a failing model: not evidence.
                echo "$m: the models did not run (see $out/$m.log)" >&2
                tail -n 20 "$out/$m.log" >&2
                exit 1
            fi
            echo "caught: $m by ${models:-?} [files: $files]"
            ;;
    esac
done
echo "mutants: ${#mutants[@]}, survivors: ${#survivors[@]} ($((SECONDS - start))s)"
if [ "${#survivors[@]}" -gt 0 ]; then
    echo "surviving mutants: ${survivors[*]}" >&2
    exit 1
fi
