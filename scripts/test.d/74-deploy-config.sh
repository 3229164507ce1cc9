#!/usr/bin/env bash
# 74-deploy-config.sh -- the shipped load-balancer configurations parse:
# `nginx -t -c deploy/nginx/bookingrush.conf` and
# `haproxy -c -f deploy/haproxy.cfg` (each installed with apt-get when
# missing). 70-dist-http.sh sends requests through the nginx one.
# usage: 74-deploy-config.sh ASAN_BUILD RELEASE_BUILD
set -euo pipefail
cd "$(dirname "$0")/../.."
for pkg in nginx haproxy; do
  if ! command -v "$pkg" >/dev/null && ! [ -x "/usr/sbin/$pkg" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >/dev/null
  fi
done
mkdir -p /var/log/nginx
PATH=$PATH:/usr/sbin
nginx -q -t -c "$PWD/deploy/nginx/bookingrush.conf"
haproxy -q -c -f deploy/haproxy.cfg
echo "74-deploy-config: deploy/nginx/bookingrush.conf and deploy/haproxy.cfg parse"
