#!/usr/bin/env bash
# weft-proxy benchmark (root: network namespaces, iptables): direct vs
# haproxy mTLS pairs (mode tcp and mode http) vs a weft-proxy pair, in one
# run, then the pair's instructions per request under callgrind. Usage:
# [BUILD=build-dir] bench/proxy/run.sh [seconds per load run, default 10] [rounds, default 3]
# BUILD (default build, as the Makefile's; `make bench BUILD=x` passes it)
# is where weft is built and taken from, so a run does not race another
# build in the same checkout.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
tmp=$(mktemp -d)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT INT TERM
make -C "$root" -s BUILD="$build" all >/dev/null
gcc -O2 -std=c11 -D_GNU_SOURCE -o "$tmp/loadgen" "$root/bench/loadgen.c" -lssl -lcrypto -lpthread
gcc -O2 -std=c11 -D_GNU_SOURCE -o "$tmp/benchsrv" "$root/bench/proxy/benchsrv.c"
gcc -O2 -std=c11 -D_GNU_SOURCE -o "$tmp/nullrelay" "$root/bench/proxy/nullrelay.c"
# The h2c app of the HTTP/2 tests, on the proxy's own HTTP/2 adapter, linked
# like the integration tests link it (the Makefile's packages).
pkgs=$(sed -n 's/^PKGS *:= *//p' "$root/Makefile")
objs=$(ls "$build"/obj/proxy/*.o | grep -v '/main\.o$')
# shellcheck disable=SC2086 # word splitting of the flag and object lists is meant
gcc -O2 -std=c11 -D_GNU_SOURCE -I"$root/lib" -I"$root/proxy" $(pkg-config --cflags $pkgs) -o "$tmp/h2_app" \
  "$root/tests/integration/h2_app.c" $objs "$build/libweft.a" $(pkg-config --libs $pkgs) -lm -lpthread
WEFT_BENCH_H2APP="$tmp/h2_app" WEFT_BENCH_NULLRELAY="$tmp/nullrelay" /usr/bin/python3 "$root/bench/proxy/bench_proxy.py" "$build/bin" "$tmp/loadgen" \
  "$tmp/benchsrv" "${1:-10}" "${2:-3}"
# What a request costs each proxy in user-space instructions: unlike the
# latencies above, a count the machine's other load does not move.
echo
/usr/bin/python3 "$root/bench/proxy/instructions_per_request.py" "$tmp/loadgen" "$tmp/benchsrv" 1000 12 \
  "$build/bin/weft-proxy"
