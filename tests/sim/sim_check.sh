#!/usr/bin/env bash
# The simulator's end-to-end checks through the bookingrush binary:
#   1. --check-determinism runs a seed twice and finds the same digest;
#   2. two separate processes with the same seed print the same digest,
#      and another seed gives another digest;
#   3. a --record file replays to the run's digest with every outcome equal;
#   4. a truncated and a corrupted journal are refused (exit 2) with the
#      byte offset of the damage;
#   5. usage errors exit 2.
set -euo pipefail
bin=$1; scn=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$bin" sim "$scn/worker-crashes.json" --seed 3 --check-determinism)
grep -q "determinism: seed 3 .*: identical" <<<"$out" || fail "check-determinism: $out"

d1=$("$bin" sim "$scn/webhook-chaos.json" --seed 11 --json | jq -r .digest)
d2=$("$bin" sim "$scn/webhook-chaos.json" --seed 11 --json | jq -r .digest)
d3=$("$bin" sim "$scn/webhook-chaos.json" --seed 12 --json | jq -r .digest)
[[ $d1 =~ ^[0-9a-f]{16}$ ]] || fail "digest format: $d1"
[ "$d1" = "$d2" ] || fail "same seed, two processes, two digests: $d1 $d2"
[ "$d1" != "$d3" ] || fail "two seeds, one digest: $d1"
echo "same seed across processes: $d1"

rec=$("$bin" sim "$scn/last-seat.json" --seed 5 --swarm --record "$tmp/run.brj" --json | jq -r .digest)
rep=$("$bin" replay "$tmp/run.brj" --json)
[ "$(jq -r .digest <<<"$rep")" = "$rec" ] || fail "replay digest $(jq -r .digest <<<"$rep") != $rec"
[ "$(jq -r .exit <<<"$rep")" = 0 ] || fail "replay exit"
[ "$(jq -r .records <<<"$rep")" = "$(jq -r .outcomes_compared <<<"$rep")" ] || fail "not every outcome compared"
echo "record -> replay: $rec over $(jq -r .records <<<"$rep") records"

size=$(stat -c %s "$tmp/run.brj")
head -c $((size / 2)) "$tmp/run.brj" > "$tmp/cut.brj"
set +e
err=$("$bin" replay "$tmp/cut.brj" 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 2 ] || fail "truncated journal: exit $rc"
grep -q "truncated record at byte offset [0-9]" <<<"$err" || fail "truncated: $err"
cp "$tmp/run.brj" "$tmp/bad.brj"
printf '\xff' | dd of="$tmp/bad.brj" bs=1 seek=$((size / 3)) conv=notrunc status=none
set +e
err=$("$bin" replay "$tmp/bad.brj" 2>&1 >/dev/null); rc=$?
set -e
[ $rc = 2 ] || fail "corrupted journal: exit $rc"
grep -q "corrupted record at byte offset [0-9]" <<<"$err" || fail "corrupted: $err"
echo "damaged journals refused with their offsets"

set +e
"$bin" sim >/dev/null 2>&1; rc1=$?
"$bin" sim "$scn/last-seat.json" --seeds 5..1 >/dev/null 2>&1; rc2=$?
"$bin" sim /nonexistent.json >/dev/null 2>&1; rc3=$?
"$bin" sim "$scn/last-seat.json" --help >/dev/null 2>&1; rc4=$?
"$bin" replay --help >/dev/null 2>&1; rc5=$?
set -e
[ "$rc1 $rc2 $rc3 $rc4 $rc5" = "2 2 2 0 0" ] || fail "exit codes: $rc1 $rc2 $rc3 $rc4 $rc5"
echo "sim_check: all passed"
