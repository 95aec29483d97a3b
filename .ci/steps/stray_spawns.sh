#!/usr/bin/env bash
# The README's `clippy.toml` block (tokio's spawns mapped to rt-ext's), kept
# word for word in .ci/fixtures/stray-spawn/clippy.toml (that crate's test
# checks the README against it):
# - the fixture crate passes clippy while it spawns through rt-ext, and is
#   flagged on every stray tokio spawn once its `stray` feature adds them;
# - the workspace's own examples pass it.
set -euo pipefail
cd "$(dirname "$0")/../.."
fixture=.ci/fixtures/stray-spawn

cargo clippy -p stray-spawn --all-targets -- -D warnings

expected=$(sed -n 's/^pub const STRAY_CALLS: usize = \([0-9]*\);$/\1/p' "$fixture/src/lib.rs")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if cargo clippy -p stray-spawn --features stray -- -D warnings >"$log" 2>&1; then
    cat "$log"
    echo "stray spawns: clippy passed a crate with stray tokio spawns" >&2
    exit 1
fi
flagged=$(grep -c "use of a disallowed method" "$log" || true)
if [ "$flagged" != "$expected" ]; then
    cat "$log"
    echo "stray spawns: $flagged calls flagged, $expected expected" >&2
    exit 1
fi
if ! grep -q "use \`rt_ext::spawn\`" "$log"; then
    cat "$log"
    echo "stray spawns: the reason text does not name rt-ext's spawn" >&2
    exit 1
fi
echo "stray spawns: all $flagged stray calls flagged"

CLIPPY_CONF_DIR="$fixture" cargo clippy -p rt-ext --examples --no-deps \
    --features tower,tracing,propagation,opentelemetry -- -D warnings
