#!/usr/bin/env bash
# RUSTC_WRAPPER used by run-mutants.sh: adds
# `--cfg spawn_hooks_mutant="$SPAWN_HOOKS_MUTANT"` to the compilation of the
# spawn-hooks crate only. Passing the cfg through RUSTFLAGS instead would
# rebuild every dependency (loom and its tree) once per mutant; this way only
# spawn-hooks and loom-tests are rebuilt.
set -euo pipefail
rustc="$1"
shift
if [ -n "${SPAWN_HOOKS_MUTANT:-}" ] && [[ " $* " == *" --crate-name spawn_hooks "* ]]; then
    exec "$rustc" "$@" --cfg "spawn_hooks_mutant=\"$SPAWN_HOOKS_MUTANT\""
fi
exec "$rustc" "$@"
