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
# The build loop runs in a process group of its own, so that the way out stops it together with
# the cargo and rustc it runs (killing the loop alone left them building on, reparented).
setsid bash -c '
  while :; do
    rm -rf "$1/target"
    cargo build --release --workspace --quiet --target-dir "$1/target" >/dev/null 2>&1 || true
  done' load-loop "$load_dir" &
load=$!
# On the way out: stop that group, then remove its directory (a compiler still finishing may
# leave a file behind for a moment; that is no failure of the tests). Every step may fail
# without changing the exit status: under `set -e` a failing command here would end the trap
# early with status 1, after a loop that passed.
trap 'kill -- -$load 2>/dev/null || true; wait $load 2>/dev/null || true; rm -rf "$load_dir" 2>/dev/null || true' EXIT

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
