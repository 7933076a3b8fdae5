#!/usr/bin/env bash
# What embedding the control server costs an idle daemon: resident memory, threads, and
# wake-ups (context switches of all threads over a few seconds), measured on three processes
# that differ only in the server: none, on the daemon's runtime, on its own thread.
#
#   bash bench/footprint.sh        # SECONDS_IDLE=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p control-server --example idle
idle=./target/release/examples/idle
work=$(mktemp -d /tmp/ctl-footprint.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
window=${SECONDS_IDLE:-3}

switches() { # all threads' voluntary + involuntary context switches
  cat /proc/"$1"/task/*/status | awk '/ctxt_switches/ { n += $2 } END { print n }'
}
field() { awk -v k="$2:" '$1 == k { print $2 }' /proc/"$1"/status; }

printf '%-10s %10s %8s %22s\n' mode "RSS KiB" threads "switches in ${window}s"
for mode in baseline spawn start; do
  "$idle" "$mode" "$work/$mode.sock" > "$work/$mode.out" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 1 500); do grep -q ready "$work/$mode.out" 2>/dev/null && break; sleep 0.01; done
  sleep 1 # let start-up settle before the window opens
  before=$(switches "$pid")
  sleep "$window"
  after=$(switches "$pid")
  printf '%-10s %10s %8s %22s\n' "$mode" "$(field "$pid" VmRSS)" "$(field "$pid" Threads)" "$((after - before))"
done
