#!/usr/bin/env bash
# Builds the Gateway API conformance suite's test apps, once, into the e2e
# cache next to the node (setup-node.sh, which it runs first), and reuses
# them afterwards (idempotent):
#
#   echo-basic       sigs.k8s.io/gateway-api/conformance $GATEWAY_API_VERSION,
#                    conformance/echo-basic: the suite's Gateway backends
#                    (answers JSON: path, host, method, headers, namespace, pod)
#   server, client   istio.io/istio $ISTIO_VERSION, pkg/test/echo/cmd: what
#                    the suite's image echo-advanced holds; the mesh tests run
#                    the server and exec `client <url>` in it
#   cert.crt,        istio's tests/testdata/certs/dns/{cert-chain,key}.pem, the
#   cert.key         echo-advanced image's /cert.crt and /cert.key (the mesh
#                    manifests start the server with --tls=8443 on them)
#   conformance-{base,mesh}.yaml
#                    the suite's own conformance/{base,mesh}/manifests.yaml,
#                    so tests run its Deployments offline
#   conformance-images.txt
#                    every echo-basic/echo-advanced reference the release's
#                    YAML names (it uses several tags of echo-basic), the
#                    names scripts/images.sh --apps gives the images
#
# Static (CGO_ENABLED=0), -trimpath, no build id: the same module versions
# and toolchain give the same bytes, so scripts/images.sh --apps gives the
# same image digests. Prints the apps' directory; with --check it only says
# whether they are there. WEFT_GATEWAY_API_VERSION and WEFT_ISTIO_ECHO_VERSION
# pick other releases, WEFT_E2E_APPS another output directory.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# v1.6.3: the newest Gateway API release this machine's Go (1.26) builds
# (v1.7.0 needs Go 1.27), and the one the conformance probe ran against.
GATEWAY_API_VERSION="${WEFT_GATEWAY_API_VERSION:-v1.6.3}"
# Istio has no semver tags, so its Go module is only reachable by
# pseudo-version; the suite's echo-advanced:v1.5.1 is Istio 1.21.2's app
# image, whose commit the module proxy does not serve. This is the newest
# commit it does (master of 2026-08-27); the echo protocol (key=value lines
# that conformance/utils/echo/parse.go reads) is the same.
ISTIO_VERSION="${WEFT_ISTIO_ECHO_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}"

log() { echo "setup-apps: $*" >&2; }

BIN=$(bash "$HERE/setup-node.sh" "$@" | tail -1) || exit 1
CACHE="$(dirname "$BIN")"
APPS="${WEFT_E2E_APPS:-$CACHE/apps/bin}"
STAMP_WANT="gateway-api=$GATEWAY_API_VERSION istio=$ISTIO_VERSION"
APP_FILES="echo-basic server client cert.crt cert.key conformance-base.yaml conformance-mesh.yaml conformance-images.txt"

have_all() {
  local f
  for f in $APP_FILES; do
    [ -s "$APPS/$f" ] || return 1
  done
  [ -f "$APPS/APPS-STAMP" ] && [ "$(cat "$APPS/APPS-STAMP")" = "$STAMP_WANT" ]
}

if have_all; then
  echo "$APPS"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  log "test apps not built: $APPS (run $0, or set WEFT_E2E_BUILD=1 for the e2e suite)"
  exit 1
fi

exec 9>"$CACHE/.lock"
flock 9
if have_all; then
  echo "$APPS"
  exit 0
fi

export GOFLAGS="${WEFT_E2E_GOFLAGS:--p=2} -trimpath -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
slow() { nice -n 19 ionice -c 3 "$@"; }
ldflags="-s -w -buildid="
gover=$(go env GOVERSION | sed -n 's/^go\([0-9]*\.[0-9]*\).*/\1/p')
start=$(date +%s)
mkdir -p "$APPS"
rm -f "$APPS/APPS-STAMP"

# --- echo-basic ----------------------------------------------------------------
# Built the way the module's docker/Dockerfile.echo-basic builds it: the
# directory is its own module once .go.mod/.go.sum are renamed (they are
# hidden in the release so the conformance module can import its gRPC
# code), so its dependencies are the versions and sums upstream pinned.
gwmod="sigs.k8s.io/gateway-api/conformance@$GATEWAY_API_VERSION"
log "downloading $gwmod"
gwdir=$(go mod download -json "$gwmod" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$gwdir/echo-basic" ] || { log "no echo-basic in $gwmod ($gwdir)"; exit 1; }
src="$CACHE/src/echo-basic"
rm -rf "$src"
cp -r "$gwdir/echo-basic" "$src"
chmod -R u+w "$src"
mv -f "$src/.go.mod" "$src/go.mod"
mv -f "$src/.go.sum" "$src/go.sum"
for m in base mesh; do
  install -m 0644 "$gwdir/$m/manifests.yaml" "$APPS/conformance-$m.yaml"
done
find "$gwdir" -name '*.yaml' -exec sed -n \
  's#^[[:space:]]*image:[[:space:]]*\(registry.k8s.io/gateway-api/echo-[a-z]*:[^[:space:]]*\).*#\1#p' {} + |
  LC_ALL=C sort -u > "$APPS/conformance-images.txt"
log "building echo-basic ($gwmod)"
(cd "$src" && GOFLAGS="$GOFLAGS -mod=readonly" slow go build -ldflags "$ldflags" \
   -o "$APPS/echo-basic" .)
t_basic=$(date +%s)

# --- Istio's echo server and client (echo-advanced) ------------------------------
mkdir -p "$CACHE/src/istio-echo"
cd "$CACHE/src/istio-echo"
if [ ! -f go.mod ] || ! grep -q "istio.io/istio $ISTIO_VERSION" go.mod; then
  rm -f go.mod go.sum
  printf 'module weft.dev/e2e-istio-echo\n\ngo %s\n\nrequire istio.io/istio %s\n' \
    "$gover" "$ISTIO_VERSION" > go.mod
fi
log "building Istio's echo server and client (istio.io/istio $ISTIO_VERSION, low priority)"
GOFLAGS="$GOFLAGS -mod=mod" slow go build -ldflags "$ldflags" -o "$APPS/" \
  istio.io/istio/pkg/test/echo/cmd/server istio.io/istio/pkg/test/echo/cmd/client
idir=$(go list -mod=mod -m -f '{{.Dir}}' istio.io/istio)
cp "$idir/tests/testdata/certs/dns/cert-chain.pem" "$APPS/cert.crt"
cp "$idir/tests/testdata/certs/dns/key.pem" "$APPS/cert.key"
chmod 0644 "$APPS/cert.crt" "$APPS/cert.key"
end=$(date +%s)

echo "$STAMP_WANT" > "$APPS/APPS-STAMP"
echo "apps build wall time: $((end - start)) s (echo-basic $((t_basic - start)) s, istio echo $((end - t_basic)) s; $STAMP_WANT, $(go env GOVERSION), $(nproc) cores)" |
  tee -a "$CACHE/build-time.txt" >&2
echo "$APPS"
