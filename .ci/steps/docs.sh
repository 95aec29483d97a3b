#!/usr/bin/env bash
# The README's snippets, compiled and run as doctests (they use every
# feature), and no link of it leaving the crate. Then the generated docs:
# built with broken intra-doc links denied, and the HTML checked for the
# runtime-hook-mode items. Without the cfg the
# queries and the switch are there (they exist in every build); with
# `--cfg tokio_unstable` (as docs.rs builds it, see rt-ext/Cargo.toml) tokio's
# task hooks on `Builder` are there too, each with its note on the cfg.
set -euo pipefail
cd "$(dirname "$0")/../.."

FEATURES="tower,tracing,propagation,test-util,opentelemetry"

# Fails naming the item and the page it should be on.
has() {
    local page="$1" item="$2"
    if ! grep -q "id=\"method\.$item\"" "$page"; then
        echo "docs: \`$item\` is missing from $page" >&2
        exit 1
    fi
}
mentions() {
    local page="$1" text="$2"
    if ! grep -q -- "$text" "$page"; then
        echo "docs: $page does not mention \`$text\`" >&2
        exit 1
    fi
}

cargo test -p rt-ext --doc --features "$FEATURES" ReadmeDoctests
if grep -nE '\]\((\.\./|/|[^)#h][^)]*\.md)' README.md; then
    echo "docs: README.md links to a file (above); docs.rs shows it without the repository" >&2
    exit 1
fi
if grep -n '\.\./shared' README.md; then
    echo "docs: README.md points outside the repository (above)" >&2
    exit 1
fi

RUSTDOCFLAGS="-D warnings" cargo doc -p rt-ext --no-deps --features "$FEATURES"
doc=target/doc/rt_ext
has "$doc/struct.Builder.html" frame_every_task
has "$doc/struct.Runtime.html" frames_every_task
has "$doc/struct.Runtime.html" framed_tasks
has "$doc/struct.Handle.html" frames_every_task
mentions "$doc/struct.Builder.html" "--cfg tokio_unstable"
has "$doc/tower/struct.FrameLayer.html" new
test -e "$doc/otel/fn.attach.html" && test -e "$doc/otel/fn.try_attach.html" \
    && test -e "$doc/otel/fn.snapshot.html"
has "$doc/otel/struct.Propagator.html" new
# The core's items, re-exported: their examples name rt_ext, never the core.
for page in struct.Variable struct.Snapshot struct.Binding struct.HookGuard trait.Lifecycle \
    fn.enter fn.try_enter fn.isolate trait.FutureExt struct.Framed struct.TaskFrame struct.BindError; do
    mentions "$doc/$page.html" "rt_ext::"
    if grep -q "spawn_hooks::" "$doc/$page.html"; then
        echo "docs: $doc/$page.html shows a spawn_hooks:: path" >&2
        exit 1
    fi
done
test -e "$doc/attr.main.html" && test -e "$doc/attr.test.html" && test -e "$doc/attr.instrument.html"

export RUSTFLAGS="--cfg tokio_unstable"
export CARGO_TARGET_DIR=target/unstable
RUSTDOCFLAGS="--cfg tokio_unstable -D warnings" cargo doc -p rt-ext --no-deps --features "$FEATURES"
doc=target/unstable/doc/rt_ext
for item in frame_every_task on_task_spawn on_before_task_poll on_after_task_poll on_task_terminate; do
    has "$doc/struct.Builder.html" "$item"
done
has "$doc/struct.Runtime.html" framed_tasks
has "$doc/struct.Handle.html" frames_every_task
mentions "$doc/struct.Builder.html" "only in such a build"
echo "docs: the hook-mode items are in both builds' HTML"
