#!/usr/bin/env bash
# Gives weft-identity a CA in a cluster where `kubectl apply -k manifests/`
# ran: scripts/make-ca.sh makes a root, an intermediate (the issuer) and the
# serving certificate for weft-identity.weft-system.svc, then
#   Secret    weft-system/weft-identity-issuer  (tls.crt, tls.key: the intermediate)
#   Secret    weft-system/weft-identity-tls     (tls.crt chain, tls.key: serving)
#   ConfigMap weft-system/weft-trust-bundle     ca.crt := the root
# Re-applying manifests/ afterwards keeps these (the base sets none of them).
# Production clusters should prefer an issuer from cert-manager.
#
#   manifests/gen-identity-ca.sh [--out DIR] [--days N]
#     --out DIR   keep the CA files (keys included!) in DIR; default: a temp dir, removed
# KUBECTL (default kubectl) and KUBECONFIG are honoured.
set -euo pipefail

out="" days=365
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --days) days="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "gen-identity-ca: unknown argument $1" >&2; exit 2 ;;
  esac
done
root="$(cd "$(dirname "$0")/.." && pwd)"
kubectl="${KUBECTL:-kubectl}"
ns=weft-system

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dir="${out:-$tmp/ca}"
bash "$root/scripts/make-ca.sh" "$dir" --force --days "$days" >&2

"$kubectl" -n "$ns" create secret tls weft-identity-issuer \
  --cert="$dir/intermediate.crt" --key="$dir/intermediate.key" --dry-run=client -o yaml |
  "$kubectl" apply -f -
"$kubectl" -n "$ns" create secret tls weft-identity-tls \
  --cert="$dir/identity.crt" --key="$dir/identity.key" --dry-run=client -o yaml |
  "$kubectl" apply -f -
# A merge patch, not apply: the base owns the (empty) key, this fills it, and a
# later `kubectl apply -k manifests/` leaves a field it did not change alone.
python3 -c 'import json,sys; print(json.dumps({"data": {"ca.crt": open(sys.argv[1]).read()}}))' \
  "$dir/root.crt" > "$tmp/patch.json"
"$kubectl" -n "$ns" patch configmap weft-trust-bundle --type=merge --patch-file="$tmp/patch.json"
