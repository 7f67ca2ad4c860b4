#!/usr/bin/env bash
# Benchmark of weft-webhook over HTTPS keep-alive with a realistic 6 KB pod:
# maximum reviews/s, latency percentiles at a fixed 1,000 reviews/s, and the
# server's peak RSS. The baseline, measured in the same run against the same
# process, is GET /healthz: TLS and HTTP with no review work, so the ratio is
# what injection itself costs. Usage: bench/webhook/run.sh [seconds]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-10}
bin=$root/build/bin
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

make -C "$root" -s all >/dev/null
gcc -O2 -std=c11 -D_GNU_SOURCE -o "$tmp/loadgen" "$root/bench/loadgen.c" -lssl -lcrypto -lpthread
q() { "$@" >/dev/null 2>&1; }
q openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -days 1 -subj /CN=bench-ca
q openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/tls.key" -out "$tmp/tls.csr" -subj /CN=weft-webhook
printf 'subjectAltName=DNS:weft-webhook.weft-system.svc,IP:127.0.0.1\n' > "$tmp/ext"
q openssl x509 -req -in "$tmp/tls.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial -out "$tmp/tls.crt" -days 1 -extfile "$tmp/ext"
/usr/bin/python3 "$root/bench/webhook/make_review.py" "$tmp/review.json"

"$bin/weft-webhook" --config "$root/templates/mesh.yaml" --templates "$root/templates" --tls-cert "$tmp/tls.crt" \
  --tls-key "$tmp/tls.key" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q "weft-webhook started" "$tmp/log" 2>/dev/null && break; sleep 0.05; done
port=$(grep -o ' port=[0-9]*' "$tmp/log" | head -1 | cut -d= -f2)
url=https://127.0.0.1:$port
lg() { "$tmp/loadgen" --cacert "$tmp/ca.crt" --duration "$secs" "$@"; }
field() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "review body: $(stat -c %s "$tmp/review.json") bytes; $(nproc) cores; ${secs}s per run"
base_max=$(lg --url "$url/healthz" --method GET --connections 16 --requests 10000000)
review_max=$(lg --url "$url/inject" --body "$tmp/review.json" --connections 16 --requests 10000000)
base_fixed=$(lg --url "$url/healthz" --method GET --connections 8 --rate 1000 --requests $((secs * 1000)))
review_fixed=$(lg --url "$url/inject" --body "$tmp/review.json" --connections 8 --rate 1000 --requests $((secs * 1000)))
rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
echo "| run | requests | errors | req/s | p50 µs | p99 µs | p99.9 µs |"
echo "|---|---|---|---|---|---|---|"
for name in base_max review_max base_fixed review_fixed; do
  r=${!name}
  echo "| $name | $(field "$r" requests) | $(field "$r" errors) | $(field "$r" rps) | $(field "$r" p50_us) | $(field "$r" p99_us) | $(field "$r" p999_us) |"
done
echo "max reviews/s over max healthz/s: $(/usr/bin/python3 -c "print(round($(field "$review_max" rps)/$(field "$base_max" rps),3))")"
echo "webhook peak RSS under load: $((rss_kib / 1024)) MiB ($rss_kib KiB)"
