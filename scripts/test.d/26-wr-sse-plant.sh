#!/usr/bin/env bash
# 26-wr-sse-plant.sh -- proof that tests/http/test_http_wr_sse.c can fail:
# the SSE hub (server/hub.c) is built with a planted bug and the suite must
# fail on it, naming the test that guards it:
#   HUB_NO_SOLD_OUT   a sold-out queue's streams end without "event: sold_out"
#                     -> test_waiting_streams_see_sold_out_within_a_tick
#   HUB_NO_PRESENCE   open streams are never reported seen (presence.h), so a
#                     user who only keeps a stream open lapses
#                     -> test_an_open_stream_counts_as_presence
# The normal build (ctest http_wr_sse) passes. Builds bookingrush and the
# suite in the shared plant tree (a few minutes the first time).
# usage: 26-wr-sse-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
for plant in HUB_NO_SOLD_OUT:test_waiting_streams_see_sold_out_within_a_tick \
             HUB_NO_PRESENCE:test_an_open_stream_counts_as_presence; do
  name=${plant%%:*}
  plant_build "$name" bookingrush test_http_wr_sse
  plant_catches wr-sse "$name" "${plant#*:}" tests/http/test_http_wr_sse "$PWD/$PLANT_DIR/bookingrush"
done
