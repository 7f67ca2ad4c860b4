#!/usr/bin/env bash
# Builds Weft's OCI image archives from the project's binaries, without a
# container daemon (scripts/oci-image.py), into OUT (default build/images):
#
#   weft-init      weft-init + iptables/ip6tables save/restore of both backends
#                  (xtables-nft-multi, xtables-legacy-multi), the libraries they
#                  link and the four extensions Weft's rules load; runs as root
#                  (the init container needs NET_ADMIN as uid 0)
#   weft-proxy     the binary and its libraries, user 15100 (proxyUID)
#   weft-webhook   the binary and its libraries, user 65532
#   weft-identity  the binary and its libraries, user 65532
#   weft-discovery the binary and its libraries, user 65532
#   pause          images/pause/pause.c built static: the e2e node's sandbox image
#   busybox        Debian's busybox-static: the e2e suite's test app (--test)
#
# With --apps DIR (tests/e2e/setup-apps.sh builds DIR), the Gateway API
# conformance suite's test apps too, named as the suite's manifests name them
# (it pulls nothing: imagePullPolicy IfNotPresent):
#   registry.k8s.io/gateway-api/echo-basic:v1.5.1, :v1.6.0-dev.2, :v1.6.0-dev.3
#                  (one image, every tag the suite's YAML names)
#                  /echo-basic (sigs.k8s.io/gateway-api/conformance), user
#                  65532 as upstream's distroless:nonroot base
#   registry.k8s.io/gateway-api/echo-advanced:v1.5.1
#                  Istio's echo /usr/local/bin/server and client, /cert.crt,
#                  /cert.key, user 1338 as upstream's image (Istio's app image)
# --apps-only DIR builds only these two (no Weft binaries needed).
#
# Names are the ones manifests/ and templates/mesh.yaml use
# (ghcr.io/weft-mesh/<name>:$VERSION). Labels: org.opencontainers.image.version
# (VERSION) and .revision (the git commit, "-dirty" if the sources differ).
# The same inputs give the same archive bytes (make images twice: same digest).
#
# Usage: scripts/images.sh [--test] [--apps DIR | --apps-only DIR] [OUT [BIN]]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
test_images=0
apps=""
weft=1
while [ $# -gt 0 ]; do
  case "$1" in
    --test) test_images=1; shift ;;
    --apps) apps="${2:?--apps needs the directory setup-apps.sh printed}"; shift 2 ;;
    --apps-only) apps="${2:?--apps-only needs the directory setup-apps.sh printed}"; weft=0
                 shift 2 ;;
    *) break ;;
  esac
done
OUT="${1:-$ROOT/build/images}"
BIN="${2:-$ROOT/build/bin}"
VERSION=$(cat "$ROOT/VERSION")
REGISTRY="ghcr.io/weft-mesh"
mkdir -p "$OUT"

rev=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
if [ "$rev" != unknown ] &&
   [ -n "$(git -C "$ROOT" status --porcelain -- lib proxy init webhook identity discovery images 2>/dev/null)" ]; then
  rev="$rev-dirty"
fi
labels=(--label "org.opencontainers.image.version=$VERSION"
        --label "org.opencontainers.image.revision=$rev"
        --label "org.opencontainers.image.licenses=Apache-2.0")
img() { python3 "$ROOT/scripts/oci-image.py" "$@"; }
passwd() {  # /etc/passwd and /etc/group naming uid $1 as $2
  echo --data "/etc/passwd=root:x:0:0:root:/:/sbin/nologin\n$2:x:$1:$1:$2:/:/sbin/nologin\n" \
       --data "/etc/group=root:x:0:\n$2:x:$1:\n"
}

if [ "$weft" = 1 ]; then
  for b in weft-init weft-proxy weft-webhook weft-identity weft-discovery; do
    [ -x "$BIN/$b" ] || { echo "images: $BIN/$b not built (run make)" >&2; exit 1; }
  done

  # weft-init picks iptables-<nft|legacy>-{save,restore} at run time (--mode).
  xt=/usr/lib/x86_64-linux-gnu/xtables
  init_args=(--file "$BIN/weft-init:/usr/local/bin/weft-init"
             --file /usr/sbin/xtables-nft-multi --file /usr/sbin/xtables-legacy-multi)
  for fam in iptables ip6tables; do
    for be in nft legacy; do
      for op in save restore; do
        init_args+=(--link "/usr/sbin/$fam-$be-$op=xtables-$be-multi")
      done
    done
  done
  for ext in standard tcp owner REDIRECT; do   # what Weft's nat rules load (LD_DEBUG=files)
    init_args+=(--file "$xt/libxt_$ext.so")
  done
  img --name "$REGISTRY/weft-init:$VERSION" --out "$OUT/weft-init.tar" "${init_args[@]}" \
      --dir /run:0755 --user 0:0 --entrypoint /usr/local/bin/weft-init \
      --label org.opencontainers.image.title=weft-init "${labels[@]}"

  # shellcheck disable=SC2046
  img --name "$REGISTRY/weft-proxy:$VERSION" --out "$OUT/weft-proxy.tar" \
      --file "$BIN/weft-proxy:/usr/local/bin/weft-proxy" $(passwd 15100 weft-proxy) \
      --user 15100:15100 --entrypoint /usr/local/bin/weft-proxy \
      --label org.opencontainers.image.title=weft-proxy "${labels[@]}"
  for b in weft-webhook weft-identity weft-discovery; do
    # shellcheck disable=SC2046
    img --name "$REGISTRY/$b:$VERSION" --out "$OUT/$b.tar" \
        --file "$BIN/$b:/usr/local/bin/$b" $(passwd 65532 nonroot) \
        --user 65532:65532 --entrypoint "/usr/local/bin/$b" \
        --label "org.opencontainers.image.title=$b" "${labels[@]}"
  done

  # pause: static, stripped; the same compiler gives the same bytes.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  ${CC:-cc} -static -Os -s -o "$work/pause" "$ROOT/images/pause/pause.c"
  img --name "$REGISTRY/pause:$VERSION" --out "$OUT/pause.tar" --file "$work/pause:/pause" \
      --user 65535:65535 --entrypoint /pause \
      --label org.opencontainers.image.title=pause "${labels[@]}"

  if [ "$test_images" = 1 ]; then
    # The e2e suite's app: sh, httpd, wget, nc, nslookup in one static binary;
    # /cgi-bin/slow answers after 4 s (a request in flight while a pod goes).
    bb_args=(--file /bin/busybox:/bin/busybox)
    for a in sh httpd wget nc nslookup sleep cat echo ls env id hostname true false; do
      bb_args+=(--link "/bin/$a=busybox")
    done
    img --name "weft.local/e2e/busybox:1" --out "$OUT/busybox.tar" "${bb_args[@]}" \
        --dir /tmp:1777 --dir /www --data "/www/index.html=ok\n" \
        --script "/www/cgi-bin/slow=#!/bin/sh\necho Content-Type: text/plain\necho\nsleep 4\necho done\n" \
        --env PATH=/bin --user 65534:65534 --entrypoint /bin/sh
  fi
fi

if [ -n "$apps" ]; then
  # Versions from the apps' stamp: "gateway-api=vX istio=vY".
  stamp=$(cat "$apps/APPS-STAMP")
  gwv=$(sed -n 's/.*gateway-api=\([^ ]*\).*/\1/p' <<<"$stamp")
  isv=$(sed -n 's/.*istio=\([^ ]*\).*/\1/p' <<<"$stamp")
  [ -n "$gwv" ] && [ -n "$isv" ] || { echo "images: bad $apps/APPS-STAMP: $stamp" >&2; exit 1; }
  # Every name the suite's YAML uses for each (echo-basic under several tags:
  # v1.5.1, and v1.6.0-dev.N for the TCP/UDP and retry backends, all served
  # by the pinned release's source); the content is what setup-apps.sh built.
  names() {
    local n args=()
    while read -r n; do args+=(--name "$n"); done < <(grep "/$1:" "$apps/conformance-images.txt")
    [ ${#args[@]} -gt 0 ] || { echo "images: no $1 in $apps/conformance-images.txt" >&2; exit 1; }
    echo "${args[@]}"
  }
  # shellcheck disable=SC2046
  img $(names echo-basic) --out "$OUT/echo-basic.tar" \
      --file "$apps/echo-basic:/echo-basic" $(passwd 65532 nonroot) \
      --user 65532:65532 --entrypoint /echo-basic \
      --label org.opencontainers.image.title=echo-basic \
      --label org.opencontainers.image.source=sigs.k8s.io/gateway-api/conformance/echo-basic \
      --label "org.opencontainers.image.version=$gwv" \
      --label "org.opencontainers.image.revision=$gwv" \
      --label org.opencontainers.image.licenses=Apache-2.0
  # shellcheck disable=SC2046
  img $(names echo-advanced) --out "$OUT/echo-advanced.tar" \
      --file "$apps/server:/usr/local/bin/server" --file "$apps/client:/usr/local/bin/client" \
      --file "$apps/cert.crt:/cert.crt" --file "$apps/cert.key:/cert.key" \
      $(passwd 1338 application) --dir /tmp:1777 \
      --user 1338:1338 --entrypoint /usr/local/bin/server \
      --label org.opencontainers.image.title=echo-advanced \
      --label org.opencontainers.image.source=istio.io/istio/pkg/test/echo \
      --label "org.opencontainers.image.version=$isv" \
      --label "org.opencontainers.image.revision=$isv" \
      --label org.opencontainers.image.licenses=Apache-2.0
fi
