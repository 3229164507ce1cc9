#!/usr/bin/env bash
# tests/stripe/sig.sh -- the C webhook verifier against signatures made by
# OpenSSL at run time (not constants typed by us): random payloads (raw
# bytes, 1..4000 long) signed `openssl dgst -sha256 -hmac SECRET` over
# "<t>.<payload>" must be accepted; the same with one byte flipped must be
# refused; a payload signed with the second of two secrets (rotation) must
# be accepted when both are configured and refused with the first alone.
# usage: sig.sh SIG_CHECK_BINARY [ROUNDS]
set -euo pipefail
check=$1
rounds=${2:-12}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v openssl >/dev/null || { echo "sig.sh: openssl missing" >&2; exit 1; }

mac() { # secret t file -> hex
  { printf '%s.' "$2"; cat "$3"; } | openssl dgst -sha256 -hmac "$1" | sed 's/^.*= //'
}
expect() { # want(0/1/2) args...
  local want=$1 rc=0
  shift
  "$check" "$@" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "sig.sh: FAIL: sig_check $* exited $rc, wanted $want" >&2
    exit 1
  fi
}

for i in $(seq 1 "$rounds"); do
  len=$(( (RANDOM * 32768 + RANDOM) % 4000 + 1 ))
  head -c "$len" /dev/urandom >"$tmp/p"
  t=$(( $(date +%s) - RANDOM % 200 ))
  now=$(date +%s)
  secret="whsec_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  h="t=$t,v1=$(mac "$secret" "$t" "$tmp/p")"
  expect 0 "$secret" "$h" "$tmp/p" "$now"
  # one byte flipped (xor 0x01) at a random offset
  off=$(( RANDOM % len ))
  cp "$tmp/p" "$tmp/q"
  b=$(od -An -tu1 -j "$off" -N1 "$tmp/p" | tr -d ' ')
  printf "$(printf '\\%03o' $(( b ^ 1 )))" | dd of="$tmp/q" bs=1 seek="$off" conv=notrunc status=none
  expect 1 "$secret" "$h" "$tmp/q" "$now"
  # rotation: signed with the new secret only
  h2="t=$t,v1=$(mac "${secret}_new" "$t" "$tmp/p")"
  expect 0 "$secret,${secret}_new" "$h2" "$tmp/p" "$now"
  expect 1 "$secret" "$h2" "$tmp/p" "$now"
done
echo "sig.sh: $rounds random payloads verified, flipped bytes and wrong secrets refused"
