#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# weft-discovery benchmark, from a directory of manifests (against the
# real kube-apiserver, with this directory source as its baseline:
# bench/discovery/apiserver.py):
# a cluster of 500 namespaces, 10,000 pods, 1,000 Services with their
# EndpointSlices and 1,000 HTTPRoutes (gen.py), and CONNS simulated proxies
# (load.c, at most 128 handshakes in flight) each subscribed to SUBS
# destinations, all to Service 0's. Prints:
#   - the time from the first connect to every stream holding all its first
#     answers (what a restart of weft-discovery costs the fleet),
#   - the time from rewriting Service 0's EndpointSlice file to each
#     proxy's receipt of the new answer (p50, p99, max): the directory's
#     reload (all 10,000 pods re-read) is inside this number,
#   - weft-discovery's RSS after the load and with every stream open, and
#     its CPU over 10 s with every stream open and nothing changing.
# weft-discovery on CPU 0, the load on CPU 1.
#   BENCH_CONNS (default 2000), BENCH_SUBS (default 20), WEFT_BIN
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${WEFT_BIN:-$root/build/bin}
conns=${BENCH_CONNS:-2000}
subs=${BENCH_SUBS:-20}
[ -x "$bin/weft-discovery" ] || { echo "bench/discovery: build first (make)" >&2; exit 1; }
work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

python3 "$root/bench/discovery/gen.py" "$work/objects" 500 10000 1000
mv "$work/objects/ids.txt" "$work/ids.txt"
cd "$work"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=bench-ca 2>/dev/null
leaf() {
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  echo "subjectAltName=$2" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" -days 1 -extfile "$1.ext" 2>/dev/null
}
leaf server IP:127.0.0.1
leaf proxy URI:spiffe://cluster.local/ns/ns-0/sa/sa-0
cc -O2 -o load "$root/bench/discovery/load.c" $(pkg-config --cflags --libs openssl libnghttp2)
./load --self-test
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ulimit -n $((conns + 1024))
start=$(date +%s.%N)
taskset -c 0 "$bin/weft-discovery" serve --objects objects --trust-domain cluster.local --cert server.crt \
  --key server.key --trust-bundle ca.crt --config "$root/templates/mesh.yaml" --listen "127.0.0.1:$port" \
  --metrics-listen "127.0.0.1:$mport" --max-connections $((conns + 100)) --log-level warn 2> discovery.log & pid=$!
until curl -fs "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1; do
  kill -0 "$pid" 2>/dev/null || { cat discovery.log >&2; exit 1; }
  sleep 0.05
done
echo "load of 10,000 pods etc.: ready after $(python3 -c "import time; print('%.2f s' % (time.time() - $start))")"
rss() { awk '/VmRSS/ {print $2 / 1024 " MiB"}' "/proc/$pid/status"; }
cpu() { awk '{print ($14 + $15) / '"$(getconf CLK_TCK)"'}' "/proc/$pid/stat"; }
echo "RSS after load: $(rss)"
# The load holds its streams open 15 s after its measurements, for the idle window.
LOAD_HOLD_S=15 taskset -c 1 ./load "$port" ca.crt proxy.crt proxy.key "$conns" "$subs" ids.txt \
  objects/25-bench-slice.json '"10.0.0.' '"10.9.0.' 120 > load.json & lpid=$!
until [ -s load.json ] || ! kill -0 "$lpid" 2>/dev/null; do sleep 0.1; done
[ -s load.json ] || { cat discovery.log >&2; exit 1; }
echo "load: $(cat load.json)"
sleep 1
echo "RSS with $conns streams x $subs subscriptions: $(rss)"
c0=$(cpu); sleep 10; c1=$(cpu)
echo "CPU with every stream open and no change, 10 s: $(python3 -c "print('%.3f core' % (($c1 - $c0) / 10))")"
wait "$lpid" || { echo "bench/discovery: not every proxy got the change" >&2; exit 1; }
echo "CPU in all (load, handshakes, every answer, the push): $(cpu) s"
curl -s "http://127.0.0.1:$mport/metrics" | grep -E '^weft_discovery_(pushes|acks)_total|push_latency_seconds_(sum|count)'
