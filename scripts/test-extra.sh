#!/usr/bin/env bash
# Tests that need more than one build: each scripts/test.d/*.sh is run with
# the sanitized build dir and the release build dir as arguments, in order.
# Each section's time is printed when it ends, and a summary at the end, so
# a slow step is visible in CI's log (make test must stay under 25 minutes),
# with how busy the machine's CPUs were meanwhile (/proc/stat).
#
# A section named in BESIDE runs in the background beside the section that
# follows it, and is waited for when that one ends (its output is printed
# then, in one piece). Only sections that mostly wait on servers of their
# own belong there: 75-payments (test_money: Kafka, Stripe double, two
# servers; the CPUs 31% busy alone) beside 76-payments-plant, which runs the
# same cases against planted builds on a ground of its own. BESIDE= (empty)
# runs everything in order.
set -euo pipefail
cd "$(dirname "$0")/.."
asan=${1:-build-asan}; rel=${2:-build}
BESIDE=${BESIDE-75-payments.sh}
shopt -s nullglob
summary=""
# busy: the CPU jiffies spent working and in all, from /proc/stat's first line.
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8; exit}' /proc/stat; }
cpu_since() { # B0 A0: the CPUs' busy share since then, in percent
  local b1 a1
  read -r b1 a1 <<<"$(busy)"
  echo $(( ($b1 - $1) * 100 / (($a1 - $2) > 0 ? ($a1 - $2) : 1) ))
}

side_pid="" side_name="" side_log="" side_start=0 side_b0=0 side_a0=0
side_wait() { # waits for the section in the background, if any; fails as it did
  [ -n "$side_pid" ] || return 0
  local rc=0
  wait "$side_pid" || rc=$?
  local took=$((SECONDS - side_start)) cpu
  cpu=$(cpu_since "$side_b0" "$side_a0")
  echo "== $side_name (ran beside the section above), its output:"
  cat "$side_log"
  rm -f "$side_log"
  if [ "$rc" -ne 0 ]; then
    echo "== $side_name: FAILED (exit $rc)"
    exit "$rc"
  fi
  echo "== $side_name: passed in ${took} s, beside the section above (CPUs ${cpu}% busy)"
  summary+="$(printf '%6d s  %3d%%  %s (beside)' "$took" "$cpu" "$side_name")"$'\n'
  side_pid=""
}
trap '[ -z "$side_pid" ] || kill "$side_pid" 2>/dev/null || true' EXIT

for t in scripts/test.d/*.sh; do
  name=$(basename "$t")
  if [ -z "$side_pid" ] && [[ " $BESIDE " == *" $name "* ]]; then
    echo "== $t: started in the background, beside the next section"
    side_name=$t side_log=$(mktemp /tmp/br-test-extra.XXXXXX) side_start=$SECONDS
    read -r side_b0 side_a0 <<<"$(busy)"
    bash "$t" "$asan" "$rel" >"$side_log" 2>&1 &
    side_pid=$!
    continue
  fi
  echo "== $t"
  start=$SECONDS
  read -r b0 a0 <<<"$(busy)"
  bash "$t" "$asan" "$rel"
  took=$((SECONDS - start))
  cpu=$(cpu_since "$b0" "$a0")
  echo "== $t: passed in ${took} s (CPUs ${cpu}% busy)"
  summary+="$(printf '%6d s  %3d%%  %s' "$took" "$cpu" "$t")"$'\n'
  side_wait
done
side_wait
printf 'test-extra: all passed in %d s; time per section (and CPU busy):\n%s' "$SECONDS" "$summary"
