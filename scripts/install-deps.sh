#!/usr/bin/env bash
# Installs the Debian packages Booking Rush builds, tests and runs with, only
# when something is missing (a second run costs a dpkg query, no network).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libhiredis-dev libpq-dev librdkafka-dev libjansson-dev
      libjwt-dev libssl-dev libmicrohttpd-dev libcmocka-dev libcurl4-openssl-dev afl++ clang-14
      libclang-rt-14-dev redis-server redis-tools postgresql-15 wrk jq curl procps binutils time ninja-build
      prometheus)
# prometheus brings promtool (scripts/test.d/61-promtool.sh checks /metrics with it).
# ninja-build: the plant scripts share one build tree (scripts/test.d/lib/plant-build.sh),
# where Ninja recompiles only the files whose command line changed.
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm install the OpenAPI validator (scripts/test.d/60-openapi.sh). Checked by
# command, not by package: a nodejs from elsewhere (NodeSource) carries its own npm and
# conflicts with Debian's npm package.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
