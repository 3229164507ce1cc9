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
# seed ("compare"), with their figures asserted on seeds 1..3 (the bounds hold
# with margin on seeds 1..20: see the comments), then a swarm sweep of each.
wr() { # scenario jq-assertion description
  local out n
  for n in 1 2 3; do
    out=$("$rel/bookingrush" sim "scenarios/$1.json" --seed "$n" --json)
    if ! jq -e "(.ok == true) and (.waiting_room.off != null) and ($2)" <<<"$out" >/dev/null; then
      echo "FAIL: $1 --seed $n: $3"; jq -c '{ok, violation: .violation.message, waiting_room}' <<<"$out"; exit 1
    fi
    [ "$n" = 1 ] && echo "$1: $3: $(jq -c '.waiting_room | {on: .on | del(.digest), off: .off | del(.digest)}' <<<"$out")"
  done
  return 0
}
# Seeds 1..20: passes to people gone on 13..29, off 420..496; lapsed 415..492.
wr abandonment '.waiting_room.on.lapsed >= 200 and .waiting_room.off.passes_to_gone >= 200 and
  .waiting_room.on.passes_to_gone * 8 <= .waiting_room.off.passes_to_gone' \
  "absent people lapse instead of taking passes (at most an eighth of the off run's waste)"
# Seeds 1..20: passes with no seat on 0, off 1001..1058; told 4..216 ms after
# the last seat (the admitter's tick is 250 ms); the waiting told 908..972.
wr sold-out-wave '.waiting_room.on.passes_no_seats == 0 and .waiting_room.off.passes_no_seats >= 500 and
  .waiting_room.on.sold_out_told_ms != null and .waiting_room.on.sold_out_told_ms >= 0 and
  .waiting_room.on.sold_out_told_ms <= 250 and .waiting_room.on.told_closed >= 500' \
  "no pass with nothing available; sold_out told within one admitter tick (250 ms)"
# Seeds 1..20: 3 steps; passes with no seat on 187..258, off 1405..1453;
# estimate error p50 on 83..144 s, off 438..483 s; told closed 1188..1240.
wr live-modes '.waiting_room.on.operator_steps == 3 and .invariants.M1.checks > 0 and
  .waiting_room.on.told_closed >= 500 and
  .waiting_room.on.passes_no_seats * 3 <= .waiting_room.off.passes_no_seats and
  .waiting_room.on.est_err_p50_ms * 2 <= .waiting_room.off.est_err_p50_ms' \
  "pause, resume with pacing and close: no pass while paused or closed, outflow within the pace"
for scn in abandonment sold-out-wave live-modes; do
  "$rel/bookingrush" sim "scenarios/$scn.json" --seeds "1..${BR_SIM_SWEEP_WR_SEEDS:-200}" | tail -1
done
echo "sim sweep: all passed"
