#!/usr/bin/env bash
# Fails unless core/ is pure: every #include names a core/ header or one of
# the C standard library's freestanding-or-string headers, and the compiled
# library needs no symbol beyond memcpy/memset/memcmp/memmove/memchr and the
# driver's br_panic (so no malloc, no clock, no I/O can hide in it).
# usage: check-core-purity.sh CORE_DIR [LIBBRCORE.a]
set -euo pipefail
dir=${1:?core dir}; lib=${2:-}
allowed='^(stdint|stddef|stdbool|string|limits|stdalign|stdnoreturn|inttypes|stdarg|float|iso646)\.h$'
fail=0
for f in "$dir"/*.[ch]; do
  while IFS= read -r line; do
    hdr=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$line")
    if [[ $line =~ \" ]]; then
      if [ ! -f "$dir/$hdr" ]; then echo "impure: $f includes \"$hdr\", not a core/ header"; fail=1; fi
    elif ! [[ $hdr =~ $allowed ]]; then
      echo "impure: $f includes <$hdr>"; fail=1
    fi
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include' "$f" || true)
done
if [ -n "$lib" ]; then
  bad=$(nm -u "$lib" | awk '{print $2}' | grep -v '^br_' | sort -u \
        | grep -vE '^(memcpy|memset|memcmp|memmove|memchr|__[a-z_]*san[a-z_0-9]*|__asan_[a-z_0-9]*|__ubsan_[a-z_0-9]*)$' || true)
  undefined_br=$(nm -u "$lib" | awk '{print $2}' | grep '^br_' | sort -u)
  defined_br=$(nm --defined-only "$lib" | awk '{print $3}' | grep '^br_' | sort -u)
  extra=$(comm -23 <(echo "$undefined_br") <(echo "$defined_br") | grep -v '^br_panic$' || true)
  if [ -n "$bad$extra" ]; then echo "impure: libbrcore needs $bad $extra"; fail=1; fi
fi
[ $fail -eq 0 ] && echo "core is pure"
exit $fail
