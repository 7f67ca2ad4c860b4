#!/usr/bin/env bash
# Creates weft-webhook's serving certificate and makes the API server trust it:
#   1. a CA and a P-256 serving certificate for weft-webhook.weft-system.svc
#      (openssl CLI), valid DAYS days (default 365);
#   2. the Secret weft-system/weft-webhook-tls (tls.crt, tls.key);
#   3. the CA, base64, into caBundle of every webhook of the
#      MutatingWebhookConfiguration weft-webhook.
# Run after `kubectl apply -k manifests/`. Re-running rotates the certificate.
#
#   manifests/gen-webhook-cert.sh [--out DIR] [--no-apply] [--days N]
#     --out DIR    keep ca.crt, tls.crt, tls.key in DIR (default: a temp dir, removed)
#     --no-apply   only write the files (needs --out)
# KUBECTL (default kubectl) and KUBECONFIG are honoured.
set -euo pipefail

out="" apply=1 days=365
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --no-apply) apply=0; shift ;;
    --days) days="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gen-webhook-cert: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$apply" = 1 ] || [ -n "$out" ] || { echo "gen-webhook-cert: --no-apply needs --out" >&2; exit 2; }

ns=weft-system
svc=weft-webhook
kubectl="${KUBECTL:-kubectl}"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dir="${out:-$tmp}"
mkdir -p "$dir"
umask 077

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tmp/ca.key" -out "$dir/ca.crt" -days "$days" -subj "/CN=weft-webhook-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$dir/tls.key" -out "$tmp/tls.csr" -subj "/CN=$svc.$ns.svc" 2>/dev/null
cat > "$tmp/ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local,DNS:$svc.$ns,DNS:$svc
EXT
openssl x509 -req -in "$tmp/tls.csr" -CA "$dir/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
  -out "$dir/tls.crt" -days "$days" -sha256 -extfile "$tmp/ext" 2>/dev/null
echo "gen-webhook-cert: certificate for $svc.$ns.svc, valid $days days" >&2
[ "$apply" = 1 ] || exit 0

"$kubectl" -n "$ns" create secret tls weft-webhook-tls \
  --cert="$dir/tls.crt" --key="$dir/tls.key" --dry-run=client -o yaml | "$kubectl" apply -f -

ca_b64=$(base64 -w0 < "$dir/ca.crt")
n=$("$kubectl" get mutatingwebhookconfiguration weft-webhook -o jsonpath='{range .webhooks[*]}x{end}')
patch="["
for ((i = 0; i < ${#n}; i++)); do
  [ "$i" -gt 0 ] && patch+=","
  patch+="{\"op\":\"add\",\"path\":\"/webhooks/$i/clientConfig/caBundle\",\"value\":\"$ca_b64\"}"
done
patch+="]"
"$kubectl" patch mutatingwebhookconfiguration weft-webhook --type=json -p "$patch"
