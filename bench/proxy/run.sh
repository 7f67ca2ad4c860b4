#!/usr/bin/env bash
# weft-proxy benchmark (root: network namespaces, iptables): direct vs a
# haproxy mTLS pair vs a weft-proxy pair, in one run. Usage:
# bench/proxy/run.sh [seconds per load run, default 10] [rounds, default 3]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
make -C "$root" -s all >/dev/null
gcc -O2 -std=c11 -D_GNU_SOURCE -o "$tmp/loadgen" "$root/bench/loadgen.c" -lssl -lcrypto -lpthread
gcc -O2 -std=c11 -D_GNU_SOURCE -o "$tmp/benchsrv" "$root/bench/proxy/benchsrv.c"
/usr/bin/python3 "$root/bench/proxy/bench_proxy.py" "$root/build/bin" "$tmp/loadgen" "$tmp/benchsrv" "${1:-10}" "${2:-3}"
