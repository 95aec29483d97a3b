#!/usr/bin/env bash
# Loom models of the spawn-hooks core (loom-tests/README.md) at preemption
# bound 2, then the mutant check (every broken variant of the core must be
# caught by a model). Builds only spawn-hooks and loom-tests, under
# `--cfg spawn_hooks_loom` (never the global `loom` cfg, which would change
# tokio), into their own target dirs so the main target is not rebuilt.
set -euo pipefail
cd "$(dirname "$0")/../.."

export RUSTFLAGS="--cfg spawn_hooks_loom"
export LOOM_MAX_PREEMPTIONS=2

CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}" \
    cargo test -p loom-tests --release -- --nocapture

MUTANTS_TARGET_DIR="${MUTANTS_TARGET_DIR:-target/loom-mutants}" loom-tests/run-mutants.sh
