#!/usr/bin/env bash
# fuzz.sh -- `make fuzz`: builds every fuzz target for libFuzzer (clang-14)
# and AFL++ (afl-clang-fast, persistent mode, ASan + UBSan), runs each target
# with each engine for FUZZ_SECONDS, and prints executions per second,
# coverage and crashes. Exits 1 if any run found a crash (or could not run).
# fuzz/README.md explains the targets and how to run a long campaign.
#
# Environment (all optional):
#   FUZZ_SECONDS      seconds per target and engine (default 60)
#   FUZZ_AFL_SECONDS  seconds per target for AFL++ (default FUZZ_SECONDS)
#   FUZZ_ENGINES      which engines: "libfuzzer afl" (default), "libfuzzer" or "afl"
#   FUZZ_TARGETS      a subset of targets, space-separated (default: all the build has)
#   FUZZ_OUT          corpora, logs and crashes (default fuzz/out; wiped per target run)
#   FUZZ_BUILD_LF     libFuzzer build dir (default build-fuzz-lf)
#   FUZZ_BUILD_AFL    AFL++ build dir (default build-fuzz-afl)
#   FUZZ_CMAKE_FLAGS  extra CMake flags for both builds (e.g. -DBR_PLANT=JOURNAL_OOB)
#   FUZZ_SOURCE_DIR   the CMake source dir (default: this repository)
#   FUZZ_JOBS         build parallelism (default 2)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
repo=$(pwd)

seconds=${FUZZ_SECONDS:-60}
afl_seconds=${FUZZ_AFL_SECONDS:-$seconds}
engines=${FUZZ_ENGINES:-libfuzzer afl}
out=${FUZZ_OUT:-fuzz/out}
build_lf=${FUZZ_BUILD_LF:-build-fuzz-lf}
build_afl=${FUZZ_BUILD_AFL:-build-fuzz-afl}
src=${FUZZ_SOURCE_DIR:-$repo}
jobs=${FUZZ_JOBS:-2}
# shellcheck disable=SC2206
cmake_extra=(${FUZZ_CMAKE_FLAGS:-})

mkdir -p "$out"
out=$(cd "$out" && pwd)

die() {
  echo "fuzz.sh: $*" >&2
  exit 1
}

# Longest input per target for libFuzzer (scripts/test.d/41-fuzz-plant.sh
# uses the same). fuzz_commands spends ~20 us per command on the checkers:
# ~300 commands an input. fuzz_journal: a dozen records or so; longer inputs
# mostly slow it down (the records are independent). Text parsers: 4 KiB,
# above the largest scenario file.
max_len() {
  case $1 in
  fuzz_commands | fuzz_journal) echo 2048 ;;
  *) echo 4096 ;;
  esac
}

# build DIR COMPILER: configures and builds every fuzz target into DIR.
# Prints the targets the build has, one per line.
build() {
  local dir=$1 cc=$2 log
  log="$out/build-$(basename "$dir").log"
  if ! AFL_USE_ASAN=1 AFL_QUIET=1 cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBR_SANITIZE=ON -DBR_FUZZ=ON "${cmake_extra[@]}" \
    >"$log" 2>&1; then
    tail -20 "$log" >&2
    die "configuring $dir with $cc failed (log: $log)"
  fi
  local all
  all=$(cat "$dir/fuzz-targets.txt")
  local want=${FUZZ_TARGETS:-$all}
  # shellcheck disable=SC2086
  if ! AFL_USE_ASAN=1 AFL_QUIET=1 cmake --build "$dir" -j "$jobs" --target $want >>"$log" 2>&1; then
    tail -30 "$log" >&2
    die "building the fuzz targets in $dir failed (log: $log)"
  fi
  echo "$want"
}

results=()
crashed=0

# Copies crash inputs to $out/crashes/TARGET/ENGINE-NAME and lists them.
keep_crashes() {
  local target=$1 engine=$2
  shift 2
  local f n=0
  for f in "$@"; do
    [ -f "$f" ] || continue
    mkdir -p "$out/crashes/$target"
    cp "$f" "$out/crashes/$target/$engine-$(basename "$f" | tr ':,' '__')"
    n=$((n + 1))
  done
  echo $n
}

run_libfuzzer() {
  local target=$1 bin="$build_lf/fuzz/$1" dir="$out/libfuzzer/$1"
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  local dict=()
  [ -f "fuzz/dict/$target.dict" ] && dict=(-dict="fuzz/dict/$target.dict")
  local seeds=()
  [ -d "fuzz/corpus/$target" ] && seeds=("fuzz/corpus/$target")
  echo "== libFuzzer: $target for ${seconds}s"
  # The first corpus directory receives what the run finds; seeds are read only.
  timeout -k 10 $((seconds + 120)) "$bin" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2560 -max_len="$(max_len "$target")" -print_final_stats=1 \
    -artifact_prefix="$dir/" "${dict[@]}" "$dir/corpus" "${seeds[@]}" >"$dir/log" 2>&1
  local rc=$?
  local execs eps cov ft crashes
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$dir/log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$dir/log" | tail -1 | cut -d' ' -f2)
  crashes=$(keep_crashes "$target" libfuzzer "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* \
    "$dir"/oom-*)
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    crashed=1
    echo "   FAILED (exit $rc): $(grep -m1 -E 'ERROR|runtime error|assertion failed' "$dir/log")"
    echo "   log: $dir/log"
  fi
  results+=("$(printf '%-20s %-10s %10s %8s   %-28s %s' "$target" libfuzzer "${execs:-?}" \
    "${eps:-?}" "cov ${cov:-?} ft ${ft:-?}" "$crashes")")
}

run_afl() {
  local target=$1 bin="$build_afl/fuzz/$1" dir="$out/afl/$1"
  rm -rf "$dir"
  mkdir -p "$dir"
  local dict=()
  [ -f "fuzz/dict/$target.dict" ] && dict=(-x "fuzz/dict/$target.dict")
  local seed_dir="fuzz/corpus/$target"
  if [ ! -d "$seed_dir" ] || [ -z "$(ls -A "$seed_dir")" ]; then
    seed_dir="$dir/seed"
    mkdir -p "$seed_dir"
    printf 'seed' >"$seed_dir/seed"
  fi
  echo "== AFL++: $target for ${afl_seconds}s"
  AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 \
    AFL_SKIP_CRASHES=0 AFL_QUIET=1 \
    ASAN_OPTIONS=abort_on_error=1:symbolize=0:detect_leaks=0:allocator_may_return_null=1 \
    UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=0 \
    timeout -k 10 $((afl_seconds + 120)) afl-fuzz -i "$seed_dir" -o "$dir" -V "$afl_seconds" \
    -t 5000 -m none "${dict[@]}" -- "$bin" >"$dir/log" 2>&1
  local rc=$?
  local stats="$dir/default/fuzzer_stats"
  local execs eps edges total cvg crashes
  if [ ! -f "$stats" ]; then
    crashed=1
    echo "   FAILED: afl-fuzz did not start (exit $rc):"
    grep -E 'PROGRAM ABORT|\[-\]' "$dir/log" | head -5 | sed 's/^/   /'
    results+=("$(printf '%-20s %-10s %10s %8s   %-28s %s' "$target" afl++ - - "did not run" -)")
    return
  fi
  execs=$(sed -n 's/^execs_done *: *//p' "$stats")
  eps=$(sed -n 's/^execs_per_sec *: *//p' "$stats")
  edges=$(sed -n 's/^edges_found *: *//p' "$stats")
  total=$(sed -n 's/^total_edges *: *//p' "$stats")
  cvg=$(sed -n 's/^bitmap_cvg *: *//p' "$stats")
  crashes=$(keep_crashes "$target" afl "$dir"/default/crashes/id:*)
  if [ "$crashes" -gt 0 ]; then
    crashed=1
    echo "   FAILED: $crashes crashing inputs in $dir/default/crashes"
  fi
  results+=("$(printf '%-20s %-10s %10s %8s   %-28s %s' "$target" afl++ "$execs" "${eps%.*}" \
    "edges $edges/$total ($cvg)" "$crashes")")
}

lf_targets="" afl_targets=""
for e in $engines; do
  case $e in
  libfuzzer)
    command -v clang-14 >/dev/null || die "clang-14 is missing (scripts/install-deps.sh)"
    echo "== building libFuzzer targets in $build_lf"
    lf_targets=$(build "$build_lf" clang-14) || exit 1
    ;;
  afl)
    command -v afl-clang-fast >/dev/null || die "afl-clang-fast is missing (scripts/install-deps.sh)"
    echo "== building AFL++ targets in $build_afl"
    afl_targets=$(build "$build_afl" afl-clang-fast) || exit 1
    ;;
  *) die "unknown engine '$e' (libfuzzer, afl)" ;;
  esac
done

for t in $lf_targets; do
  run_libfuzzer "$t"
done
for t in $afl_targets; do
  run_afl "$t"
done

echo
printf '%-20s %-10s %10s %8s   %-28s %s\n' target engine execs exec/s coverage crashes
for r in "${results[@]}"; do
  echo "$r"
done
if [ "$crashed" -ne 0 ]; then
  echo
  echo "fuzz.sh: crashes found; inputs are in $out/crashes/<target>/."
  echo "  reproduce:   $build_lf/fuzz/<target> <input>   (or build-asan/tests/fuzz/replay_<target> <input>)"
  echo "  keep it:     cp <input> fuzz/regressions/<target>/<what-it-broke>  (make test replays it)"
  exit 1
fi
echo "fuzz.sh: no crashes"
