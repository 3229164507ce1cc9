# scripts/test.d/lib/payments-env.sh -- sourced (never run: not a top-level
# scripts/test.d/*.sh) by 75-payments.sh and 76-payments-plant.sh, which run
# tests/payments/test_money on the same ground.
#
#   payments_env_start LABEL
#
# makes $dir (/tmp/br-LABEL.XXXXXX, with cases/ for test_money's per-case
# kafka-dev and Stripe double), starts a redis-server and a PostgreSQL
# (tests/dist/env.sh), exports their environment and the fixtures' paths
# (BR_KAFKA_FIXTURE, BR_STRIPE_FIXTURE, BR_MONEY_DIR), and sets an EXIT trap
# that stops every case's double and kafka-dev and the two servers, failed
# or not, and removes $dir (kept when BR_TEST_KEEP is set).
# Limits: one environment per script (the trap and $dir are the caller's).

payments_env_cleanup() {
  local d
  for d in "$dir"/cases/*/; do
    if [ -d "$d/stripe" ]; then tests/fixtures/stripe.sh stop "$d/stripe" >/dev/null 2>&1 || true; fi
    if [ -d "$d/kafka" ]; then tests/fixtures/kafka.sh stop "$d/kafka" >/dev/null 2>&1 || true; fi
  done
  tests/dist/env.sh stop "$dir/env.d" >/dev/null 2>&1 || true
  if [ -n "${BR_TEST_KEEP:-}" ]; then echo "$(basename "$0" .sh): kept $dir"; else rm -rf "$dir"; fi
}

payments_env_start() {
  dir=$(mktemp -d "/tmp/br-$1.XXXXXX")
  mkdir -p "$dir/cases"
  trap payments_env_cleanup EXIT
  tests/dist/env.sh start "$dir/env.d" >/dev/null
  set -a
  # shellcheck disable=SC1091
  . "$dir/env.d/env"
  set +a
  export BR_KAFKA_FIXTURE=$PWD/tests/fixtures/kafka.sh
  export BR_STRIPE_FIXTURE=$PWD/tests/fixtures/stripe.sh
  export BR_MONEY_DIR=$dir/cases
}
