# stop-pids.sh -- sourced by the benchmark sections that start servers
# (60-dist-reserve.sh, 65-payments.sh); not a section itself (bench.sh runs
# scripts/bench.d/*.sh only).
#
# stop_pids PID...: SIGTERM to each, up to 5 s for each to end, then SIGKILL
# to whichever is left; reaps them.
stop_pids() {
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
