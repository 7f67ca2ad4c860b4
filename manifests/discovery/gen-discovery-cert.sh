#!/usr/bin/env bash
# Gives weft-discovery its serving certificate for
# weft-discovery.weft-system.svc, signed by the mesh's issuer (the
# intermediate of manifests/gen-identity-ca.sh --out DIR), so proxies verify
# it against the same trust bundle they already mount:
#   Secret weft-system/weft-discovery-tls (tls.crt: leaf + intermediate, tls.key)
#
#   manifests/discovery/gen-discovery-cert.sh --ca-dir DIR [--days N] [--out DIR2 [--no-apply]]
#     --ca-dir DIR  holds intermediate.crt and intermediate.key (gen-identity-ca.sh --out DIR)
#     --out DIR2    also keep tls.crt and tls.key (mode 0600) in DIR2 (weftctl install reads them)
#     --no-apply    with --out: only write the files, no kubectl
# KUBECTL (default kubectl) and KUBECONFIG are honoured.
set -euo pipefail
cadir="" days=365 out="" apply=1
while [ $# -gt 0 ]; do
  case "$1" in
    --ca-dir) cadir="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-apply) apply=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "gen-discovery-cert: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$cadir" ] || { echo "gen-discovery-cert: --ca-dir is required" >&2; exit 2; }
[ "$apply" = 1 ] || [ -n "$out" ] || { echo "gen-discovery-cert: --no-apply needs --out" >&2; exit 2; }
for f in intermediate.crt intermediate.key; do
  [ -r "$cadir/$f" ] || { echo "gen-discovery-cert: $cadir/$f: not readable" >&2; exit 2; }
done
kubectl="${KUBECTL:-kubectl}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
name=weft-discovery.weft-system.svc
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/tls.key" \
  -out "$tmp/tls.csr" -subj "/CN=$name" 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:%s.cluster.local,DNS:weft-discovery.weft-system\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' \
  "$name" "$name" > "$tmp/ext"
openssl x509 -req -in "$tmp/tls.csr" -CA "$cadir/intermediate.crt" -CAkey "$cadir/intermediate.key" \
  -CAcreateserial -CAserial "$tmp/serial" -out "$tmp/leaf.crt" -days "$days" -extfile "$tmp/ext" 2>/dev/null
cat "$tmp/leaf.crt" "$cadir/intermediate.crt" > "$tmp/tls.crt"
if [ -n "$out" ]; then
  mkdir -p "$out"
  install -m 0644 "$tmp/tls.crt" "$out/tls.crt"
  install -m 0600 "$tmp/tls.key" "$out/tls.key"
fi
[ "$apply" = 1 ] || exit 0
"$kubectl" -n weft-system create secret tls weft-discovery-tls --cert="$tmp/tls.crt" --key="$tmp/tls.key" \
  --dry-run=client -o yaml | "$kubectl" apply -f -
