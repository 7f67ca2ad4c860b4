#!/usr/bin/env bash
# http_metrics_record() CPU cost per request against one atomic add (same
# run). Builds record.c against the built proxy objects (WEFT_BUILD, default
# build/). BENCH_THREADS=<n> (default: the CPUs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/../..
build=${WEFT_BUILD:-$root/build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -O2 -std=c11 -D_GNU_SOURCE -I"$root/lib" -I"$root/proxy" -o "$out/record" "$here/record.c" \
  "$build/obj/proxy/http_metrics.o" "$build/libweft.a" -lpthread
"$out/record" "${BENCH_THREADS:-$(nproc)}"
