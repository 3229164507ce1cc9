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
echo "sim sweep: all passed"
