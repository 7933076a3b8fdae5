#!/usr/bin/env bash
# Soak: the worst local attacks at once against two release-built demo daemons, while root's
# `ctl --timeout 2s status` of the first must succeed every time. Run by hand as root (it
# switches to uid 65534 to play the attacker); not part of CI. Prints the figures
# RELIABILITY.md records, and exits non-zero when one of them is out of bounds.
#
#   bench/soak.sh [SECONDS]      (default 180)
#
# Daemon `soak`: socket mode 666 in a root directory (the default policy refuses uid 65534's
# calls), its log file in a directory uid 65534 owns (not sticky), the rotation watch on.
# Daemon `soak-b`: its socket in a sticky world-writable directory, like /tmp.
#
# Attackers, each restarted until the time is up; all as uid 65534 but the cleaner:
#   refused-flood  pipelined calls the policy refuses, reconnecting when cut off
#   churn          80 connections a second, each pipelining 64 calls whose replies it never reads
#   far-deadlines  hello calls whose deadline is 10^12 s away, 20,000 per round
#   garbage        random frames, over-long lengths, mangled requests
#   forged-names   calls whose command and argument names carry newlines, dated forged log
#                  records and bidi overrides
#   symlink-swap   renames soak's log file away, plants a symlink to a root-only file at its
#                  path, removes it and puts the file back, in a loop
#   cleaner        (root, like a tmp cleaner) removes soak-b's socket every 10 ms
#   squatter       whenever soak-b's socket path is free, binds a listener there whose queue
#                  is full, holds it 2 s, lets it go
#
# Bounds: no failed status call, RSS of each daemon within 10 MiB of its start, the log files
# and stderr of both daemons together grow by less than 1 MiB besides their own `seq` lines,
# soak-b keeps writing its log, the root-only file stays empty, and both exit 0 on SIGTERM
# within their shutdown grace (5 s).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-180}
[ "$(id -u)" = 0 ] || { echo "soak.sh: run as root (it plays the attacker as uid 65534)" >&2; exit 2; }
command -v setpriv >/dev/null || { echo "soak.sh: needs setpriv (util-linux)" >&2; exit 2; }

cargo build --release --quiet -p control-ctl -p demo-daemon -p tests --bin ctl --bin demo-daemon --bin hostile-client
bin=$PWD/target/release

dir=$(mktemp -d /tmp/ctl-soak-XXXXXX)
chmod 755 "$dir"
# Every process this script started, children of children too (the attackers run under
# setpriv and bash), so that an interrupted soak leaves nothing behind.
descendants() { local c; for c in $(pgrep -P "$1"); do descendants "$c"; echo "$c"; done; }
# KEEP=1 keeps the directory, to read what the daemons wrote.
cleanup() { kill $(descendants $$) 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$dir"; }
trap cleanup EXIT

export CTL_SOCKET_DIR=$dir/sockets
mkdir -p "$dir/logs" "$dir/sticky"
chown 65534:65534 "$dir/logs"
chmod 1777 "$dir/sticky"
install -m 600 /dev/null "$dir/root-only"
b_socket=$dir/sticky/soak-b.sock
cat >"$dir/soak.toml" <<EOF
log_file = "$dir/logs/soak.log"
interval_ms = 200
message = "soak"
EOF
cat >"$dir/soak-b.toml" <<EOF
log_file = "$dir/soak-b.log"
interval_ms = 200
message = "soak"
EOF

"$bin/demo-daemon" --name soak --config "$dir/soak.toml" --socket-mode 666 --watch-log-rotation \
  --shutdown-grace 5s >"$dir/soak.stdout" 2>"$dir/soak.stderr" &
daemon=$!
"$bin/demo-daemon" --name soak-b --config "$dir/soak-b.toml" --socket "$b_socket" \
  --shutdown-grace 5s >"$dir/soak-b.stdout" 2>"$dir/soak-b.stderr" &
daemon_b=$!
socket=$CTL_SOCKET_DIR/soak.sock
for _ in $(seq 100); do [ -S "$socket" ] && [ -S "$b_socket" ] && break; sleep 0.05; done
"$bin/ctl" --timeout 2s status soak >/dev/null
"$bin/ctl" --timeout 2s status "$b_socket" >/dev/null

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# What both daemons wrote: their log files (wherever the swaps left them) and stderr.
size() { find "$dir/logs" "$dir/soak-b.log" "$dir"/*.stderr -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }
seq_bytes() { cat "$dir/logs"/* "$dir/soak-b.log" 2>/dev/null | { grep -a '^seq=' || true; } | wc -c; }
rss_start=$(rss $daemon) rss_b_start=$(rss $daemon_b)
log_start=$(size) seq_start=$(seq_bytes)
b_lines_start=$(grep -ac '^seq=' "$dir/soak-b.log" || true)
echo "start: RSS ${rss_start} KiB and ${rss_b_start} KiB, logs ${log_start} bytes; attacking for ${seconds}s"

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
end=$((SECONDS + seconds))
attack() {
  while [ $SECONDS -lt $end ]; do
    left=$((end - SECONDS)); [ $left -gt 20 ] && left=20; [ $left -lt 1 ] && break
    case $1 in
      far-deadlines) as_nobody "$bin/hostile-client" far-deadlines "$socket" 20000 ;;
      churn) as_nobody "$bin/hostile-client" churn "$socket" "$left" 80 ;;
      squatter) as_nobody "$bin/hostile-client" squat "$b_socket" "$left" ;;
      symlink-swap)
        # shellcheck disable=SC2016
        as_nobody bash -c 'cd "$1" && n=0 && while [ $SECONDS -lt "$3" ]; do
            mv -f soak.log soak.log.away 2>/dev/null; ln -sfn "$2" soak.log; sleep 0.002
            rm -f soak.log; mv -f soak.log.away soak.log 2>/dev/null; n=$((n + 1)); done
            echo "swaps=$n"' swap "$dir/logs" "$dir/root-only" "$left" ;;
      cleaner)
        n=0; while [ $SECONDS -lt $end ]; do rm -f "$b_socket"; n=$((n + 1)); sleep 0.01; done
        echo "removals=$n" ;;
      *) as_nobody "$bin/hostile-client" "$1" "$socket" "$left" ;;
    esac >>"$dir/$1.out"
  done
}
attackers="refused-flood churn far-deadlines garbage forged-names symlink-swap cleaner squatter"
pids=()
for a in $attackers; do attack "$a" & pids+=($!); done

calls=0 failed=0 slowest=0
while [ $SECONDS -lt $end ]; do
  t0=$(date +%s%N)
  if "$bin/ctl" --timeout 2s status soak >/dev/null 2>>"$dir/ctl.err"; then :; else failed=$((failed + 1)); fi
  ms=$((($(date +%s%N) - t0) / 1000000)); [ $ms -gt $slowest ] && slowest=$ms
  calls=$((calls + 1))
  sleep 0.2
done
wait "${pids[@]}" 2>/dev/null || true
# The swaps may have ended with the file away: put it back.
[ -e "$dir/logs/soak.log.away" ] && mv -f "$dir/logs/soak.log.away" "$dir/logs/soak.log"

# Let the last connections close and soak-b bind again, then measure.
for _ in $(seq 50); do "$bin/ctl" --timeout 2s status soak >/dev/null && break; sleep 0.1; done
b_back=no
for _ in $(seq 100); do
  "$bin/ctl" --timeout 2s status "$b_socket" >/dev/null 2>&1 && { b_back=yes; break; }; sleep 0.1
done
sleep 1
rss_end=$(rss $daemon) rss_b_end=$(rss $daemon_b)
log_end=$(size) seq_end=$(seq_bytes)
b_lines_end=$(grep -ac '^seq=' "$dir/soak-b.log" || true)
# Sets stop_code and stop_ms: how the daemon PID ended on SIGTERM, and how long it took.
stop() {
  local t0; stop_code=0
  t0=$(date +%s%N); kill -TERM "$1"; wait "$1" || stop_code=$?
  stop_ms=$((($(date +%s%N) - t0) / 1000000))
}
stop $daemon; code=$stop_code a_stop_ms=$stop_ms
stop $daemon_b; code_b=$stop_code b_stop_ms=$stop_ms
noise=$(( (log_end - log_start) - (seq_end - seq_start) ))
b_lines=$((b_lines_end - b_lines_start))
b_expected=$((seconds * 5 * 8 / 10))

far=$(awk -F'answered=' '{s += $2} END {print s + 0}' "$dir/far-deadlines.out")
echo "root's ctl --timeout 2s status of soak: $calls calls, $failed failed, slowest ${slowest} ms"
echo "far-deadline requests answered: $far"
echo "RSS soak: ${rss_start} KiB -> ${rss_end} KiB ($(( (rss_end - rss_start) / 1024 )) MiB more)"
echo "RSS soak-b: ${rss_b_start} KiB -> ${rss_b_end} KiB ($(( (rss_b_end - rss_b_start) / 1024 )) MiB more)"
echo "logs and stderr of both: grew by $((log_end - log_start)) bytes, $noise besides seq lines"
echo "soak-b: $b_lines seq lines written during the soak (at least $b_expected wanted), serving again: $b_back"
echo "root-only file: $(stat -c %s "$dir/root-only") bytes"
echo "SIGTERM: soak exit $code in $a_stop_ms ms, soak-b exit $code_b in $b_stop_ms ms"
echo "attackers:"; for a in $attackers; do
  echo "  $a: $(wc -l <"$dir/$a.out") rounds, last: $(tail -n 1 "$dir/$a.out")"
done
[ "$failed" = 0 ] && [ "$code" = 0 ] && [ "$code_b" = 0 ] \
  && [ "$a_stop_ms" -lt 5000 ] && [ "$b_stop_ms" -lt 5000 ] \
  && [ $((rss_end - rss_start)) -lt 10240 ] && [ $((rss_b_end - rss_b_start)) -lt 10240 ] \
  && [ "$noise" -lt 1048576 ] && [ "$b_lines" -ge "$b_expected" ] && [ "$b_back" = yes ] \
  && [ "$(stat -c %s "$dir/root-only")" = 0 ]
