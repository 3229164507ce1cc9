#!/usr/bin/env bash
# 27-http-stream-plant.sh -- proof that tests/http/test_http_stream.c can
# fail: the adapter's streams are built with a planted bug and the suite
# must fail on it, naming the test that guards it:
#   STREAM_LIMIT_UNCOUNTED     the accept policy forgets the streams taken
#       over from libmicrohttpd (adapters/http.c), so connections_max no
#       longer bounds them -> test_streams_count_against_connections_max
#   STREAM_PEER_GONE_IGNORED   a stream loop ignores its sockets' read and
#       hang-up events (adapters/http_stream.c): a client that goes is never
#       noticed -> test_a_peer_that_goes_ends_its_stream
# The normal build (ctest http_stream) passes. Builds the suite alone in the
# shared plant tree.
# usage: 27-http-stream-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
for plant in STREAM_LIMIT_UNCOUNTED:test_streams_count_against_connections_max \
             STREAM_PEER_GONE_IGNORED:test_a_peer_that_goes_ends_its_stream; do
  name=${plant%%:*}
  plant_build "$name" test_http_stream
  plant_catches http-stream "$name" "${plant#*:}" tests/http/test_http_stream
done
