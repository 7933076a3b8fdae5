#!/usr/bin/env bash
# Soak: the worst local attacks at once against one release-built demo daemon, while root's
# `ctl --timeout 2s status` must succeed every time. Run by hand as root (it switches to uid
# 65534 to play the attacker); not part of CI. Prints the figures RELIABILITY.md records.
#
#   bench/soak.sh [SECONDS]      (default 180)
#
# Attackers, all as uid 65534, each restarted until the time is up:
#   refused-flood  pipelined calls the policy refuses, reconnecting when cut off
#   churn          80 connections a second, each pipelining 64 calls whose replies it never reads
#   far-deadlines  hello calls whose deadline is 10^12 s away, 20,000 per round
#   garbage        random frames, over-long lengths, mangled requests
# The socket is mode 666 so that uid 65534 can connect; the default policy refuses its calls.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-180}
[ "$(id -u)" = 0 ] || { echo "soak.sh: run as root (it plays the attacker as uid 65534)" >&2; exit 2; }
command -v setpriv >/dev/null || { echo "soak.sh: needs setpriv (util-linux)" >&2; exit 2; }

cargo build --release --quiet -p control-ctl -p demo-daemon -p tests --bin ctl --bin demo-daemon --bin hostile-client
bin=$PWD/target/release

dir=$(mktemp -d /tmp/ctl-soak-XXXXXX)
chmod 755 "$dir"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
export CTL_SOCKET_DIR=$dir/sockets
cat >"$dir/soak.toml" <<EOF
log_file = "$dir/soak.log"
interval_ms = 100
message = "soak"
EOF

"$bin/demo-daemon" --name soak --config "$dir/soak.toml" --socket-mode 666 \
  >"$dir/stdout" 2>"$dir/daemon.log" &
daemon=$!
for _ in $(seq 100); do [ -S "$CTL_SOCKET_DIR/soak.sock" ] && break; sleep 0.05; done
"$bin/ctl" --timeout 2s status soak >/dev/null
socket=$CTL_SOCKET_DIR/soak.sock

rss() { awk '/VmRSS/ {print $2}' "/proc/$daemon/status"; }
size() { stat -c %s "$dir/daemon.log"; }
rss_start=$(rss)
log_start=$(size)
echo "start: RSS ${rss_start} KiB, log ${log_start} bytes; attacking for ${seconds}s"

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$bin/hostile-client" "$@"; }
end=$((SECONDS + seconds))
attack() {
  while [ $SECONDS -lt $end ]; do
    left=$((end - SECONDS)); [ $left -gt 20 ] && left=20; [ $left -lt 1 ] && break
    case $1 in
      far-deadlines) as_nobody far-deadlines "$socket" 20000 >>"$dir/$1.out" ;;
      churn) as_nobody churn "$socket" "$left" 80 >>"$dir/$1.out" ;;
      *) as_nobody "$1" "$socket" "$left" >>"$dir/$1.out" ;;
    esac
  done
}
for a in refused-flood churn far-deadlines garbage; do attack $a & done

calls=0 failed=0 slowest=0
while [ $SECONDS -lt $end ]; do
  t0=$(date +%s%N)
  if "$bin/ctl" --timeout 2s status soak >/dev/null 2>>"$dir/ctl.err"; then :; else failed=$((failed + 1)); fi
  ms=$((($(date +%s%N) - t0) / 1000000)); [ $ms -gt $slowest ] && slowest=$ms
  calls=$((calls + 1))
  sleep 0.2
done
wait $(jobs -p | grep -v "^$daemon\$") 2>/dev/null || true

# Let the last connections close, then measure.
for _ in $(seq 50); do "$bin/ctl" --timeout 2s status soak >/dev/null && break; sleep 0.1; done
sleep 1
rss_end=$(rss)
log_end=$(size)
kill -TERM $daemon
code=0; wait $daemon || code=$?

far=$(awk -F'answered=' '{s += $2} END {print s + 0}' "$dir/far-deadlines.out")
echo "root's ctl --timeout 2s status: $calls calls, $failed failed, slowest ${slowest} ms"
echo "far-deadline requests answered: $far"
echo "RSS: ${rss_start} KiB -> ${rss_end} KiB ($(( (rss_end - rss_start) / 1024 )) MiB more)"
echo "log: grew by $((log_end - log_start)) bytes"
echo "SIGTERM: exit $code"
echo "attackers:"; for a in refused-flood churn far-deadlines garbage; do
  echo "  $a: $(wc -l <"$dir/$a.out") rounds, last: $(tail -n 1 "$dir/$a.out")"
done
[ $failed = 0 ] && [ $code = 0 ] && [ $((rss_end - rss_start)) -lt 10240 ] && [ $((log_end - log_start)) -lt 1048576 ]
