#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes a development CA for Weft with the openssl CLI (ECDSA P-256):
#   root.crt / root.key                 trust anchor (the mesh's trust bundle: ca.crt)
#   intermediate.crt / intermediate.key issuer of weft-identity (--issuer-cert/--issuer-key)
#   identity.crt / identity.key         weft-identity's serving certificate, chain
#                                       (leaf + intermediate) for weft-identity.weft-system.svc
#   ca.crt                              = root.crt, the trust bundle the proxies mount
# Used by the demo, the manifests and the tests. Production clusters should
# use cert-manager instead (docs/identity.md).
#
# Usage: scripts/make-ca.sh OUTDIR [--force] [--days N] [--san DNS:name|IP:addr]...
#   --force   overwrite existing files in OUTDIR
#   --days N  lifetime of the intermediate and serving certificates (default 365;
#             the root lives 10 times as long)
#   --san X   extra subjectAltName for the serving certificate (repeatable)
set -euo pipefail

usage() { sed -n '3,18p' "$0" | sed 's/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; esac
out=$1; shift
force=0 days=365
sans="DNS:weft-identity.weft-system.svc,DNS:weft-identity.weft-system.svc.cluster.local,DNS:weft-identity.weft-system,DNS:weft-identity"
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    --days) days=${2:?--days needs a number}; shift ;;
    --san) sans="$sans,${2:?--san needs a value}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "make-ca: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
case "$days" in ''|*[!0-9]*) echo "make-ca: --days must be a number" >&2; exit 2 ;; esac

mkdir -p "$out"
if [ -e "$out/root.key" ] && [ "$force" -ne 1 ]; then
  echo "make-ca: $out/root.key exists; use --force to replace the CA" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

cat > "$tmp/ext.cnf" <<CNF
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[serving]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = $sans
CNF

key "$tmp/root.key"
openssl req -new -x509 -key "$tmp/root.key" -out "$tmp/root.crt" -days $((days * 10)) -sha256 \
  -subj "/O=Weft/CN=Weft development root CA" -config "$tmp/ext.cnf" -extensions root

key "$tmp/intermediate.key"
openssl req -new -key "$tmp/intermediate.key" -out "$tmp/intermediate.csr" \
  -subj "/O=Weft/CN=Weft development intermediate CA"
openssl x509 -req -in "$tmp/intermediate.csr" -CA "$tmp/root.crt" -CAkey "$tmp/root.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$tmp/ext.cnf" -extensions intermediate -out "$tmp/intermediate.crt" 2>/dev/null

key "$tmp/identity.key"
openssl req -new -key "$tmp/identity.key" -out "$tmp/identity.csr" -subj "/O=Weft/CN=weft-identity.weft-system.svc"
openssl x509 -req -in "$tmp/identity.csr" -CA "$tmp/intermediate.crt" -CAkey "$tmp/intermediate.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
  -extfile "$tmp/ext.cnf" -extensions serving -out "$tmp/identity-leaf.crt" 2>/dev/null
cat "$tmp/identity-leaf.crt" "$tmp/intermediate.crt" > "$tmp/identity.crt"

openssl verify -CAfile "$tmp/root.crt" "$tmp/intermediate.crt" >/dev/null
openssl verify -CAfile "$tmp/root.crt" -untrusted "$tmp/intermediate.crt" "$tmp/identity-leaf.crt" >/dev/null

for f in root.key intermediate.key identity.key; do install -m 600 "$tmp/$f" "$out/$f"; done
for f in root.crt intermediate.crt identity.crt; do install -m 644 "$tmp/$f" "$out/$f"; done
install -m 644 "$tmp/root.crt" "$out/ca.crt"
echo "make-ca: wrote root, intermediate and weft-identity serving certificates to $out"
