#!/usr/bin/env bash
# 54-kafka-plant.sh -- proof that tests/kafka's properties can fail. For each
# bug planted with -DBR_PLANT=NAME (adapters/kafka.c, adapters/pg_outbox.c,
# server/relay.c), build test_kafka with it (lib/plant-build.sh), run the one case
# that guards against it against a kafka-dev (tests/fixtures/kafka.sh, from
# ASAN_BUILD) and a throwaway PostgreSQL (tests/fixtures/pg.sh), and require
# that it fails:
#   KAFKA_ACK_ON_ENQUEUE   a message queued locally counts as acknowledged:
#                          broker_down_then_up sees acks while the brokers are down
#   RELAY_MARK_BEFORE_ACK  the relay marks every claimed row sent, acked or not
#                          (and before its fault point): relay_marks_only_acked_rows
#                          finds rows marked that Kafka never had, relay_killed_mid_batch
#                          finds no row left to send again
#   RELAY_NO_LOCK          the claim has no FOR UPDATE SKIP LOCKED: two relays publish
#                          the same rows (two_relays_take_disjoint_batches)
#   SAGA_STORE_FIRST       the consumer stores a message's offset before its handler
#                          ran: a member killed inside the handler loses that message
#                          (offsets_stored_only_after_done)
#   KAFKA_NO_DLQ           a message past dlq_after is dropped instead of dead-lettered
#                          (dead_letter_after_n_attempts)
# ctest runs the same cases on the normal builds, where they pass.
# usage: 54-kafka-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
asan=${1:-build-asan}
jobs=${BR_PLANT_JOBS:-2}
pgstate=$(mktemp -d); kstate=$(mktemp -d)
trap 'tests/fixtures/kafka.sh stop "$kstate" >/dev/null 2>&1 || true
      tests/fixtures/pg.sh stop "$pgstate" >/dev/null 2>&1 || true
      rm -rf "$pgstate" "$kstate"' EXIT
if [ ! -x "$asan/bookingrush" ]; then
  cmake --build "$asan" --target bookingrush -j "$jobs" >/dev/null
fi
tests/fixtures/pg.sh start "$pgstate" >/dev/null
tests/fixtures/kafka.sh start "$asan" "$kstate" >/dev/null
export BR_TEST_PG_STATE=$pgstate BR_TEST_KAFKA_STATE=$kstate

# plant | test case
plants=(
  "KAFKA_ACK_ON_ENQUEUE|test_broker_down_then_up_delivers"
  "RELAY_MARK_BEFORE_ACK|test_relay_marks_only_acked_rows"
  "RELAY_MARK_BEFORE_ACK|test_relay_killed_mid_batch_sends_again"
  "RELAY_NO_LOCK|test_two_relays_take_disjoint_batches"
  "SAGA_STORE_FIRST|test_offsets_stored_only_after_done"
  "KAFKA_NO_DLQ|test_dead_letter_after_n_attempts"
)
if [ -n "${BR_PLANT_ONLY:-}" ]; then
  mapfile -t plants < <(printf '%s\n' "${plants[@]}" | grep -E "^(${BR_PLANT_ONLY})\|")
fi
failed=0
for p in "${plants[@]}"; do
  IFS='|' read -r name test <<<"$p"
  dir=$PLANT_DIR
  if ! grep -q "BR_PLANT_$name" adapters/kafka.c adapters/pg_outbox.c server/relay.c; then
    echo "54-kafka-plant: FAIL: no BR_PLANT_$name in adapters/kafka.c, pg_outbox.c, server/relay.c"
    failed=1; continue
  fi
  plant_build "$name" test_kafka
  tests/fixtures/kafka.sh ctl "$kstate" up -1 >/dev/null || true
  set +e
  out=$(timeout -k 10 300 "$dir/tests/kafka/test_kafka" "$test" 2>&1); rc=$?
  set -e
  if [ "$rc" -ne 0 ] && grep -q "FAILED" <<<"$out"; then
    echo "54-kafka-plant: $name caught by $test: $(grep -m1 -E '\[  ERROR   \] ---' <<<"$out" | cut -c1-160)"
  else
    echo "54-kafka-plant: FAIL: $name was not caught by $test (exit $rc)"
    grep -v '"level"' <<<"$out" | tail -20
    failed=1
  fi
done
exit $failed
