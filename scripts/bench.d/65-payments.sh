#!/usr/bin/env bash
# 65-payments.sh -- payments in production (ISSUE11 §4.13). Today: the raw
# idempotent producer rate (adapters/kafka.h: acks=all, linger.ms=5, batches
# of 10 000 each waiting for its delivery reports, as the relay produces)
# into a throwaway `bookingrush kafka-dev` (tests/fixtures/kafka.sh; 3 mock
# brokers, in memory, on this machine: an upper bound, not a real cluster's
# figure). PAY_BENCH_MESSAGES (default 200000) x 100 B.
# Not yet: webhook -> confirmed p50/p99 through the relay and the saga
# consumer (needs the distributed wiring; server/bench_pay.c says so).
# usage: 65-payments.sh RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
n=${PAY_BENCH_MESSAGES:-200000}
state=$(mktemp -d)
trap 'tests/fixtures/kafka.sh stop "$state" >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
bs=$(tests/fixtures/kafka.sh start "$build" "$state")
line=$("$build/br-bench-pay" --raw-producer --bootstrap "$bs" --messages "$n" --size 100 --batch 10000)
echo "payments: $line (kafka-dev, same machine)"
