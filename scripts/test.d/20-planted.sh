#!/usr/bin/env bash
# Proof that the simulator's checker can fail: for each bug the core can
# plant (-DBR_PLANT=NAME, see core/*.c), build a separate release binary
# (target bookingrush only, in the shared plant tree of lib/plant-build.sh), run a small scenario that
# exercises the bug, and require that the simulator exits non-zero and names
# the matching invariant. The same scenario and seed must pass on the normal
# release build, so the violation is the plant's doing.
#
# Usage: scripts/test.d/20-planted.sh ASAN_BUILD_DIR RELEASE_BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
rel=${2:-build}

# plant | scenario | seed | invariants that may be named (first one found)
plants=(
  "SKIP_LIMIT|scenarios/worker-crashes.json|1|S3"
  "DOUBLE_SWEEP|scenarios/worker-crashes.json|1|S7 S1"
  "CONFIRM_EXPIRED|scenarios/ci-late-payments.json|1|S6"
  "SKIP_PASS|scenarios/ci-bots.json|1|S4"
  "DOUBLE_EVENT|scenarios/webhook-chaos.json|1|S5"
  "SECOND_INTENT|scenarios/webhook-chaos.json|1|S5"
  "UNFAIR_SHUFFLE|scenarios/presale-shuffle.json|1|S4"
  "ADMIT_SWAP|scenarios/presale-shuffle.json|1|S4"
  # issue 13: the waiting room (core/queue_gate.c's plants)
  "ADMIT_NO_SEATS|scenarios/sold-out-wave.json|1|I1"
  "PAUSE_LEAK|scenarios/live-modes.json|1|M1"
  "PRESENCE_UNIT|scenarios/abandonment.json|1|S4"
)
if [ -n "${BR_PLANT_ONLY:-}" ]; then
  mapfile -t plants < <(printf '%s\n' "${plants[@]}" | grep -E "^(${BR_PLANT_ONLY})\|")
fi

failed=0
for p in "${plants[@]}"; do
  IFS='|' read -r name scn seed want <<<"$p"
  dir=$PLANT_DIR
  echo "-- plant $name: $scn --seed $seed, expecting ${want// / or }"
  if ! grep -q "BR_PLANT_$name" core/*.c; then
    echo "   FAIL: core/ has no BR_PLANT_$name"; failed=1; continue
  fi
  plant_build "$name" bookingrush
  set +e
  out=$("$dir/bookingrush" sim "$scn" --seed "$seed" --json 2>/dev/null); rc=$?
  set -e
  got=$(jq -r '.violation.invariant // "none"' <<<"$out" 2>/dev/null || echo "no-json")
  msg=$(jq -r '.violation.message // ""' <<<"$out" 2>/dev/null || true)
  step=$(jq -r '.violation.step // ""' <<<"$out" 2>/dev/null || true)
  ok=0
  for w in $want; do [ "$got" = "$w" ] && ok=1; done
  if [ "$rc" -ne 0 ] && [ $ok = 1 ]; then
    echo "   caught: exit $rc, $got at step $step: $msg"
  else
    echo "   FAIL: exit $rc, invariant $got (wanted ${want// / or })"; failed=1
  fi
  # The control: the same run on the normal build has no violation.
  if [ -x "$rel/bookingrush" ]; then
    if ! "$rel/bookingrush" sim "$scn" --seed "$seed" --json >/dev/null 2>&1; then
      echo "   FAIL: the unplanted build fails the same run"; failed=1
    fi
  fi
done
if [ $failed -ne 0 ]; then
  echo "planted: some planted bug went unnoticed"; exit 1
fi
echo "planted: every planted bug was caught and named"
