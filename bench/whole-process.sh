#!/usr/bin/env bash
# Whole-process timings against one running demo daemon: `ctl status|reload|rotate` beside the
# signals they replace (`pkill -HUP -x demo-daemon`, `kill -HUP PID`) and `/bin/true`, all in
# one hyperfine run so that the ratios are measured under the same conditions.
#
#   bash bench/whole-process.sh            # builds release binaries first
#   BEFORE_CTL=/path/to/ctl bash bench/whole-process.sh
#                                          # adds "ctl status (before)": another build of ctl,
#                                          # e.g. the static ctl of an older commit, in the same run
#
# Needs hyperfine (apt-get install hyperfine), cargo-deb (cargo install cargo-deb --locked)
# and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || { echo "hyperfine is not installed: apt-get install -y hyperfine" >&2; exit 1; }
command -v cargo-deb >/dev/null || { echo "cargo-deb is not installed: cargo install cargo-deb --locked" >&2; exit 1; }

cargo build --release --quiet -p control-ctl -p demo-daemon
# The same ctl linked statically (glibc's crt-static): no shared libraries to load at start.
# An explicit --target keeps the flag off the build's proc-macros.
host=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet -p control-ctl --bin ctl --target "$host"
static_ctl=./target/$host/release/ctl
daemon=
work=$(mktemp -d /tmp/ctl-bench.XXXXXX)
trap 'kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
# The Debian package's /usr/bin/ctl: that static build, stripped by cargo-deb.
deb=$(bash contrib/build-deb.sh 2>/dev/null | tail -n 1)
dpkg-deb -x "$deb" "$work/deb"
packaged_ctl=$work/deb/usr/bin/ctl
export CTL_SOCKET_DIR="$work/sockets"
cat > "$work/demo.toml" <<TOML
log_file = "$work/demo.log"
interval_ms = 1000
message = "bench"
TOML
# Logging off: the daemon's log line per call is not what is being measured here.
RUST_LOG=off ./target/release/demo-daemon --name demo --config "$work/demo.toml" >/dev/null 2>&1 &
daemon=$!
for _ in $(seq 1 200); do ./target/release/ctl --quiet status demo 2>/dev/null && break; sleep 0.02; done
./target/release/ctl --quiet status demo

# pkill reads every process's name from /proc, so its cost grows with the number of processes
# on the host. PAD_PROCS=N starts N idle processes first, to measure against a busier host.
pad=()
for _ in $(seq 1 "${PAD_PROCS:-0}"); do sleep 600 & pad+=($!); done
trap 'kill "${pad[@]}" 2>/dev/null || true; kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; rm -rf "$work"' EXIT
echo "processes on this host: $(ls -d /proc/[0-9]* | wc -l)"

ctl=./target/release/ctl
before=()
if [ -n "${BEFORE_CTL:-}" ]; then
  before=(--command-name "ctl status (before)" "$BEFORE_CTL --quiet status demo")
fi
hyperfine --shell=none --warmup 50 --runs "${RUNS:-500}" --export-json "$work/results.json" \
  --command-name "ctl status" "$ctl --quiet status demo" \
  --command-name "ctl status (static)" "$static_ctl --quiet status demo" \
  --command-name "ctl status (packaged)" "$packaged_ctl --quiet status demo" \
  "${before[@]}" \
  --command-name "ctl reload" "$ctl --quiet reload demo" \
  --command-name "ctl rotate" "$ctl --quiet rotate demo" \
  --command-name "pkill -HUP -x demo-daemon" "pkill -HUP -x demo-daemon" \
  --command-name "kill -HUP PID" "kill -HUP $daemon" \
  --command-name "/bin/true" "/bin/true" >/dev/null

python3 - "$work/results.json" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
pkill = results["pkill -HUP -x demo-daemon"]["median"]
true = results["/bin/true"]["median"]
print(f"{'command':<28}{'median':>10}{'x pkill -HUP':>14}{'x /bin/true':>13}")
for name, r in results.items():
    m = r["median"]
    print(f"{name:<28}{m * 1e3:>8.3f}ms{m / pkill:>14.3f}{m / true:>13.2f}")
PY
