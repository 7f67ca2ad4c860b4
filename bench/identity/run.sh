#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# weft-identity benchmark: certificate signings per second on one core, with
# p99 latency. weft-identity is pinned to CPU 0; the load (wrk, keep-alive
# HTTPS, every request a full POST /v1/certificates: JSON, CSR parse and
# signature check, TokenReview over keep-alive TLS, signing) and a local
# TokenReview endpoint (tokenreview_stub.c) share CPU 1. Baseline in the same
# run: `openssl speed ecdsap256` on CPU 0, as ECDSA sign+verify pairs per
# second, the crypto every request needs at least.
# Runs once per concurrency level (keep-alive connections of wrk).
#   BENCH_SECONDS (default 10), BENCH_CONNS (default "2 4 8"), WEFT_BIN
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${WEFT_BIN:-$root/build/bin}
secs=${BENCH_SECONDS:-10}
levels=${BENCH_CONNS:-2 4 8}
[ -x "$bin/weft-identity" ] || { echo "bench/identity: build first (make)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench/identity: wrk is missing (make deps)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench/identity: needs 2 CPUs" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bash "$root/scripts/make-ca.sh" "$work/ca" --san IP:127.0.0.1 >/dev/null
cc -O2 -o "$work/stub" "$root/bench/identity/tokenreview_stub.c" $(pkg-config --cflags --libs libmicrohttpd jansson)
echo bench-token > "$work/token"
kport=$(free_port); port=$(free_port); mport=$(free_port)

taskset -c 1 "$work/stub" "$kport" "$work/ca/identity.crt" "$work/ca/identity.key" & pids+=($!)
taskset -c 0 "$bin/weft-identity" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
  --tls-cert "$work/ca/identity.crt" --tls-key "$work/ca/identity.key" \
  --issuer-cert "$work/ca/intermediate.crt" --issuer-key "$work/ca/intermediate.key" \
  --kube-api "127.0.0.1:$kport" --kube-ca "$work/ca/ca.crt" --kube-token "$work/token" \
  --log-level warn 2>"$work/identity.log" & ipid=$!; pids+=($ipid)
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$mport/readyz" >/dev/null || { cat "$work/identity.log" >&2; exit 1; }

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/w.key" -out "$work/w.csr" \
  -subj "/" -addext "subjectAltName=URI:spiffe://cluster.local/ns/bench/sa/client" 2>/dev/null
body=$(python3 -c 'import json,sys; print(json.dumps(json.dumps({"csr": open(sys.argv[1]).read()})))' "$work/w.csr")
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = $body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
LUA
url="https://127.0.0.1:$port/v1/certificates"

# One request first: it must be a 200.
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/ca/ca.crt" \
  --resolve "weft-identity.weft-system.svc:$port:127.0.0.1" -H "Authorization: Bearer bench-token" \
  -H "Content-Type: application/json" --data-binary "$(python3 -c 'import json,sys; print(json.dumps({"csr": open(sys.argv[1]).read()}))' "$work/w.csr")" \
  "https://weft-identity.weft-system.svc:$port/v1/certificates")
[ "$code" = 200 ] || { echo "bench/identity: sample request got HTTP $code" >&2; cat "$work/identity.log" >&2; exit 1; }

# Baseline: ECDSA P-256 sign+verify on the same CPU.
speed=$(taskset -c 0 openssl speed -seconds 3 ecdsap256 2>/dev/null | awk '/nistp256/ {print $(NF-1), $NF}' | tail -1)
sign=${speed% *}; verify=${speed#* }
pairs=$(python3 -c "print(round(1/(1/$sign+1/$verify)))")

echo "identity: baseline openssl ECDSA P-256 on CPU 0: sign $sign/s, verify $verify/s, sign+verify pairs $pairs/s"
hz=$(getconf CLK_TCK)
for conns in $levels; do
  taskset -c 1 wrk -t1 -c"$conns" -d2s -s "$work/post.lua" "$url" >/dev/null  # warm-up
  cpu0=$(awk '{print $14+$15}' "/proc/$ipid/stat")
  stub0=$(awk '{print $14+$15}' "/proc/${pids[0]}/stat")
  busy0=$(awk '$1=="cpu1" {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
  issued0=$(curl -fs "http://127.0.0.1:$mport/metrics" | awk '$1=="weft_identity_certificates_issued_total"{print $2}')
  taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" --latency -s "$work/post.lua" "$url" > "$work/wrk.txt"
  cpu1=$(awk '{print $14+$15}' "/proc/$ipid/stat")
  stub1=$(awk '{print $14+$15}' "/proc/${pids[0]}/stat")
  busy1=$(awk '$1=="cpu1" {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat)
  issued1=$(curl -fs "http://127.0.0.1:$mport/metrics" | awk '$1=="weft_identity_certificates_issued_total"{print $2}')
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$work/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$work/wrk.txt")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.txt"); non2xx=${non2xx:-0}
  errors=$(awk '/Socket errors/ {print}' "$work/wrk.txt")
  python3 - "$rps" "$p50" "$p99" "$pairs" "$((cpu1 - cpu0))" "$hz" "$secs" "$issued0" "$issued1" "$non2xx" "$conns" \
    "$((stub1 - stub0))" "$busy0" "$busy1" <<'PY'
import sys
rps, p50, p99, pairs, ticks, hz, secs, i0, i1, non2xx, conns, stub_ticks, b0, b1 = sys.argv[1:]
b0, b1 = [int(x) for x in b0.split()], [int(x) for x in b1.split()]
cpu1_busy = (b1[0] - b0[0]) / max(1, b1[1] - b0[1])
stub_cpu = int(stub_ticks) / int(hz) / float(secs)
def ms(s):
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if s.endswith(unit):
            return float(s[:-len(unit)]) * f
    return float(s)
rps = float(rps)
issued = float(i1) - float(i0)
cpu = int(ticks) / int(hz) / float(secs)
ok = rps >= 2000 and ms(p99) <= 5 and non2xx == "0"
print("identity: %d conns, %ss: signings/s %.0f (issued +%d), p50 %.2f ms, p99 %.2f ms, non-2xx %s, "
      "CPU %.2f cores, signings per CPU-second %.0f, ratio to baseline %.3f, target (>= 2000/s, p99 <= 5 ms) %s; "
      "CPU 1 (load + TokenReview) busy %.0f %%, TokenReview stub %.2f cores"
      % (int(conns), secs, rps, issued, ms(p50), ms(p99), non2xx, cpu, rps / cpu if cpu else 0,
         rps / float(pairs), "met" if ok else "NOT met", cpu1_busy * 100, stub_cpu))
PY
  [ -z "$errors" ] || echo "identity: wrk $errors"
done
