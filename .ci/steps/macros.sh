#!/usr/bin/env bash
# `#[rt_ext::main]` / `#[rt_ext::test]`: the `start_paused` argument needs
# rt-ext's `test-util` feature (tokio's paused clock), which the default
# build leaves out. The other macro tests (argument parsing with spans, both
# flavors, migration) run in the default test command and, under
# `tokio_unstable`, in unstable.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo clippy -p rt-ext --all-targets --features test-util -- -D warnings
cargo test -p rt-ext --features test-util --test macros_start_paused
