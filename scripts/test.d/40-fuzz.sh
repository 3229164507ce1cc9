#!/usr/bin/env bash
# 40-fuzz.sh -- make test's fuzz smoke. Builds every fuzz target for
# libFuzzer and AFL++ (scripts/fuzz.sh, build-fuzz-lf and build-fuzz-afl),
# runs each for FUZZ_SMOKE_SECONDS (default 5) with libFuzzer and
# FUZZ_SMOKE_AFL_SECONDS (default 4) with AFL++ (the two engines side by side), then replays every
# regression case through the libFuzzer binaries. Any crash fails the test.
# (ctest in the sanitized gcc build also replays fuzz/corpus and
# fuzz/regressions through a plain main: tests/fuzz.)
# usage: 40-fuzz.sh ASAN_BUILD RELEASE_BUILD (unused: the fuzz builds are separate)
set -euo pipefail
cd "$(dirname "$0")/../.."

# The two engines run at the same time (each fuzzes on one core; the machine
# has two), each with its own output directory; both must pass.
engines=${FUZZ_SMOKE_ENGINES:-libfuzzer afl}
mkdir -p fuzz/out
pids=() names=()
for e in $engines; do
  FUZZ_SECONDS=${FUZZ_SMOKE_SECONDS:-5} \
    FUZZ_AFL_SECONDS=${FUZZ_SMOKE_AFL_SECONDS:-4} \
    FUZZ_ENGINES=$e \
    FUZZ_OUT=fuzz/out/smoke-$e \
    scripts/fuzz.sh >"fuzz/out/smoke-$e.log" 2>&1 &
  pids+=($!) names+=("$e")
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    failed=1
    tail -30 "fuzz/out/smoke-${names[$i]}.log"
    echo "40-fuzz: the ${names[$i]} smoke failed (log: fuzz/out/smoke-${names[$i]}.log)"
  else
    sed -n '/^target  *engine/,$p' "fuzz/out/smoke-${names[$i]}.log"
  fi
done
[ "$failed" = 0 ] || exit 1
mkdir -p fuzz/out/smoke

build=${FUZZ_BUILD_LF:-build-fuzz-lf}
replayed=0
while read -r t; do
  if [ -z "$t" ] || [ ! -x "$build/fuzz/$t" ]; then continue; fi
  shopt -s nullglob
  cases=(fuzz/regressions/"$t"/*)
  shopt -u nullglob
  [ ${#cases[@]} -gt 0 ] || continue
  # Files (not directories) as arguments: libFuzzer runs each once.
  if ! "$build/fuzz/$t" "${cases[@]}" >"fuzz/out/smoke/regressions-$t.log" 2>&1; then
    tail -30 "fuzz/out/smoke/regressions-$t.log"
    echo "40-fuzz: a regression case of $t crashes again (log: fuzz/out/smoke/regressions-$t.log)"
    exit 1
  fi
  replayed=$((replayed + ${#cases[@]}))
done <"$build/fuzz-targets.txt"
echo "40-fuzz: smoke clean; $replayed regression cases replayed"
