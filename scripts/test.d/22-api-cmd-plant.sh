#!/usr/bin/env bash
# 22-api-cmd-plant.sh -- proof that tests/http/test_api_cmd.c can fail: the
# translation both backends share (server/api_cmd.c) is built with a
# planted bug (BR_PLANT_API_FILL: a queue_join's answer shows the queue's
# length as the user's position) and the test must fail on it, naming
# test_fillers_agree_with_the_engine; the normal build (ctest http_api_cmd)
# passes the same seeds. Builds one small target (about half a minute).
# usage: 22-api-cmd-plant.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=lib/plant-build.sh
. scripts/test.d/lib/plant-build.sh
plant_build API_FILL test_api_cmd
plant_catches api_cmd API_FILL test_fillers_agree_with_the_engine tests/http/test_api_cmd
