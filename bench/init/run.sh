#!/usr/bin/env bash
# weft-init benchmark: start-to-exit time for a full IPv4+IPv6 rule set in a
# fresh network namespace, against one iptables call per rule (same run).
# Needs root. BENCH_RUNS=<n> samples of each (default 21).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export WEFT_BIN=${WEFT_BIN:-$here/../../build/bin}
if [ "$(id -u)" -ne 0 ]; then
  echo "bench/init: needs root (network namespaces, iptables)" >&2
  exit 1
fi
exec /usr/bin/python3 "$here/bench_init.py"
