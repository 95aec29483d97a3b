#!/usr/bin/env bash
# Memcheck over the test binaries that exercise the core's unsafe code: every
# test binary of spawn-hooks (stable build), and the runtime-hook-mode tests
# of rt-ext (`--cfg tokio_unstable`, reusing the unstable step's target dir).
# Any memory error fails the step (exit status 99). Stable Rust has no
# sanitizers; valgrind catches use-after-free and invalid reads in the
# frame pointers and the hook-mode slot table.
set -euo pipefail
cd "$(dirname "$0")/../.."

memcheck() {
    echo "--- memcheck: $*"
    valgrind --tool=memcheck --error-exitcode=99 --quiet "$@"
}

# The paths of the test executables cargo builds for the given arguments.
executables() {
    cargo test --no-run "$@" 2>&1 | sed -n 's/.*Executable [^(]*(\(.*\))$/\1/p'
}

for bin in $(executables -p spawn-hooks); do
    memcheck "$bin" --test-threads=2
done

for bin in $(RUSTFLAGS="--cfg tokio_unstable" CARGO_TARGET_DIR=target/unstable \
    executables -p rt-ext --test hook_mode --test panic_everywhere); do
    memcheck "$bin" --test-threads=2
done
