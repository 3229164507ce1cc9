#!/usr/bin/env bash
# 41-fuzz-plant.sh -- proof that the fuzz smoke can fail. fuzz_journal is
# built with a planted out-of-bounds read (BR_PLANT_JOURNAL_OOB: the journal
# decoder in core/journal.c lets a field end one byte past its record) and
# libFuzzer, started from the committed seed corpus, must find a crash
# within PLANT_SECONDS (default 60): a heap-buffer-overflow read in
# core/journal.c. The crashing input must then replay clean on the normal
# build, so it is the plant that was found and nothing else. The options are
# the smoke's (dictionary, -max_len=2048); libFuzzer's seed is pinned
# (PLANT_SEED, default 1) to keep the run steady. Measured on a loaded
# 2-core machine, seeds 1-8 found it in 0.1-7 s (150-25,000 executions).
# usage: 41-fuzz-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
asan=${1:-build-asan}
seconds=${PLANT_SECONDS:-60}
build="build-fuzz-plant"
out=fuzz/out/plant

cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBR_SANITIZE=ON -DBR_FUZZ=ON -DBR_PLANT=JOURNAL_OOB >/dev/null
cmake --build "$build" -j 2 --target fuzz_journal >/dev/null

rm -rf "$out"
mkdir -p "$out/corpus"
start=$(date +%s)
set +e
timeout -k 10 $((seconds + 60)) "$build/fuzz/fuzz_journal" -max_total_time="$seconds" \
  -seed="${PLANT_SEED:-1}" -max_len=2048 \
  -artifact_prefix="$out/" -dict=fuzz/dict/fuzz_journal.dict "$out/corpus" fuzz/corpus/fuzz_journal \
  >"$out/log" 2>&1
rc=$?
set -e
took=$(($(date +%s) - start))

shopt -s nullglob
crashes=("$out"/crash-*)
if [ "$rc" -eq 0 ] || [ ${#crashes[@]} -eq 0 ]; then
  echo "41-fuzz-plant: libFuzzer did not find the planted out-of-bounds read in ${seconds}s (exit $rc)"
  tail -5 "$out/log"
  exit 1
fi
if ! grep -q 'heap-buffer-overflow' "$out/log" || ! grep -qE '#[0-9]+ .* in get .*core/journal\.c' "$out/log"; then
  echo "41-fuzz-plant: libFuzzer crashed, but not on the planted read in core/journal.c:"
  grep -m3 -E 'ERROR|#[0-3] ' "$out/log"
  exit 1
fi
execs=$(grep -oE '^#[0-9]+' "$out/log" | tail -1 | tr -d '#')
echo "41-fuzz-plant: planted read found in ${took}s after ~${execs:-?} executions:"
grep -m1 'ERROR: AddressSanitizer' "$out/log"
grep -m1 -E '#[0-9]+ .* in get .*core/journal\.c' "$out/log" || true

replay="$asan/tests/fuzz/replay_fuzz_journal"
if [ -x "$replay" ]; then
  "$replay" "${crashes[@]}" >/dev/null
  echo "41-fuzz-plant: the same input replays clean without the plant ($replay)"
fi
