#!/usr/bin/env bash
# A wider seed sweep than ctest's, on the release build (fast): every small
# scenario over many seeds, each seed drawing its own fault mix (swarm), and
# --check-determinism on a few of them. Any violation prints the invariant,
# the step, the entities and the command that reproduces it.
#
# Usage: scripts/test.d/21-sim-sweep.sh ASAN_BUILD_DIR RELEASE_BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
rel=${2:-build}
seeds=${BR_SIM_SWEEP_RELEASE_SEEDS:-500}
for scn in last-seat webhook-chaos worker-crashes presale-shuffle ci-late-payments ci-bots; do
  "$rel/bookingrush" sim "scenarios/$scn.json" --seeds "1001..$((1000 + seeds))" | tail -1
done
"$rel/bookingrush" sim scenarios/worker-crashes.json --seeds 1..5 --check-determinism | tail -1
# Issue 13: the waiting room's scenarios, switches on vs off on the same
# seed ("compare"), with their figures asserted, then a small swarm sweep.
wr() { # scenario jq-assertion description
  local out
  out=$("$rel/bookingrush" sim "scenarios/$1.json" --seed 1 --json)
  if ! jq -e "(.ok == true) and (.waiting_room.off != null) and ($2)" <<<"$out" >/dev/null; then
    echo "FAIL: $1: $3"; jq -c '{ok, violation: .violation.message, waiting_room}' <<<"$out"; exit 1
  fi
  echo "$1: $3: $(jq -c '.waiting_room | {on: .on | del(.digest), off: .off | del(.digest)}' <<<"$out")"
}
wr abandonment '.waiting_room.on.lapsed > 0 and .waiting_room.off.passes_to_gone > 0 and
  .waiting_room.on.passes_to_gone * 4 <= .waiting_room.off.passes_to_gone' \
  "absent people lapse instead of taking passes (at most a quarter of the off run's waste)"
wr sold-out-wave '.waiting_room.on.passes_no_seats == 0 and .waiting_room.off.passes_no_seats > 0 and
  .waiting_room.on.sold_out_told_ms != null and .waiting_room.on.sold_out_told_ms >= 0 and
  .waiting_room.on.sold_out_told_ms <= 250' \
  "no pass with nothing available; sold_out told within one admitter tick (250 ms)"
wr live-modes '.waiting_room.on.operator_steps == 3 and .invariants.M1.checks > 0' \
  "pause, resume with pacing and close: no pass while paused or closed, outflow within the pace"
for scn in abandonment sold-out-wave live-modes; do
  "$rel/bookingrush" sim "scenarios/$scn.json" --seeds "1..${BR_SIM_SWEEP_WR_SEEDS:-20}" | tail -1
done
echo "sim sweep: all passed"
