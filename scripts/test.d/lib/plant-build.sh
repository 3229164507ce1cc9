# plant-build.sh -- sourced by the plant scripts: one build tree for every
# planted bug instead of one tree per bug.
#
#   plant_build NAME TARGET...
#
# builds TARGET... with bug NAME planted (-DBR_PLANT=NAME) in the shared tree
# $PLANT_DIR (build-plant). CMakeLists.txt defines BR_PLANT_NAME only for the
# files that name it and the tree uses Ninja, which rebuilds a file when its
# command line changes: going from one plant to the next recompiles the
# previous plant's files and the new one's, then relinks. Release type (no
# debug info: the plants are run, not debugged). The build's output goes to
# $PLANT_DIR/build.log; on failure its tail is printed and 1 returned.
# The plant scripts run one after another (scripts/test-extra.sh), never two
# at once, so one tree is safe; a plant's binaries are used before the next
# plant_build call.
PLANT_DIR=${PLANT_DIR:-build-plant}

plant_build() {
  local name=$1; shift
  if [ -f "$PLANT_DIR/CMakeCache.txt" ] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$PLANT_DIR/CMakeCache.txt"; then
    rm -rf "$PLANT_DIR"
  fi
  mkdir -p "$PLANT_DIR"
  if ! cmake -S . -B "$PLANT_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBR_PLANT="$name" \
      >"$PLANT_DIR/configure.log" 2>&1; then
    tail -20 "$PLANT_DIR/configure.log"
    echo "plant_build: $name: cmake configure failed" >&2
    return 1
  fi
  if ! cmake --build "$PLANT_DIR" -j "${BR_PLANT_JOBS:-2}" --target "$@" >"$PLANT_DIR/build.log" 2>&1; then
    tail -30 "$PLANT_DIR/build.log"
    echo "plant_build: $name: building $* failed" >&2
    return 1
  fi
}

# plant_catches LABEL NAME TEST BINARY [ARGS...]
#
# runs $PLANT_DIR/BINARY ARGS (a cmocka suite just built with bug NAME,
# bounded to 300 s) and returns 0 when it exits non-zero with TEST among
# its failures ("[  FAILED  ] TEST"), printing one line; otherwise prints
# the suite's output and returns 1: the planted bug went unnoticed.
plant_catches() {
  local label=$1 name=$2 test=$3 bin=$4
  shift 4
  local out rc=0
  out=$(timeout -k 10 300 "$PLANT_DIR/$bin" "$@" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] && grep -q "FAILED  \] $test" <<<"$out"; then
    echo "$label plant $name: caught ($test failed, exit $rc)"
    return 0
  fi
  echo "$out" >&2
  echo "$label plant $name: FAIL: the planted bug went unnoticed (exit $rc)" >&2
  return 1
}
