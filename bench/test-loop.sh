#!/usr/bin/env bash
# Runs `cargo test --workspace` RUNS times in a row (default 20) while another build keeps the
# machine busy beside it, and stops at the first failure. Run by hand, as root (as CI does, so
# nothing skips), to show the tests do not depend on the machine's load: every wait in them is
# a gate or a bounded retry on an event, never a window of real time.
#
#   bench/test-loop.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
[ "$(id -u)" = 0 ] || echo "test-loop.sh: not root: the tests that switch users will skip" >&2

cargo test --workspace --no-run --quiet
# The load beside it: a release build of the workspace in a target directory of its own, again
# and again, until the loop ends.
load_dir=$(mktemp -d /tmp/ctl-load-XXXXXX)
# On the way out: stop the loop and the build it runs, then remove its directory (a compiler
# still finishing may leave a file behind for a moment; that is no failure of the tests).
trap 'kill $load 2>/dev/null; pkill -P $load 2>/dev/null; wait $load 2>/dev/null; rm -rf "$load_dir" 2>/dev/null || true' EXIT
(
  while :; do
    rm -rf "$load_dir/target"
    cargo build --release --workspace --quiet --target-dir "$load_dir/target" >/dev/null 2>&1 || true
  done
) &
load=$!

for run in $(seq "$runs"); do
  start=$SECONDS
  if ! cargo test --workspace --quiet >"$load_dir/run.log" 2>&1; then
    echo "run $run of $runs FAILED after $((SECONDS - start)) s:"
    grep -E "^test .* FAILED|panicked at|^failures:" -A3 "$load_dir/run.log" | head -40
    exit 1
  fi
  skipped=$(grep -c "skipped\|SKIPPED" "$load_dir/run.log" || true)
  echo "run $run of $runs passed in $((SECONDS - start)) s ($skipped skip lines)"
done
echo "$runs passed, 0 failed"
