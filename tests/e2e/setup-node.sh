#!/usr/bin/env bash
# Builds what the e2e node runs (node.py), once, into the control plane's
# cache directory, and reuses it afterwards (idempotent):
#
#   kubelet, kube-scheduler, kube-proxy   k8s.io/kubernetes $K8S_VERSION, the same module
#                                         setup-control-plane.sh builds from
#   containerd, containerd-shim-runc-v2,  github.com/containerd/containerd/v2 $CONTAINERD_VERSION
#   ctr                                   (runc itself is Debian's: scripts/deps.sh)
#   coredns                               github.com/coredns/coredns $COREDNS_VERSION
#
# The CNI plugins (bridge, host-local, loopback) are Debian's
# containernetworking-plugins in /usr/lib/cni (scripts/deps.sh).
# It first runs setup-control-plane.sh (which builds the control plane if it
# is missing), then builds the node parts under the same lock. Prints the bin
# directory; with --check it only says whether everything is there.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CONTAINERD_VERSION="${WEFT_CONTAINERD_VERSION:-v2.4.2}"
COREDNS_VERSION="${WEFT_COREDNS_VERSION:-v1.15.0}"

log() { echo "setup-node: $*" >&2; }

BIN=$(bash "$HERE/setup-control-plane.sh" "$@" | tail -1) || exit 1
K8S_VERSION=$(sed -n 's/^k8s=\([^ ]*\).*/\1/p' "$BIN/STAMP")
CACHE="$(dirname "$BIN")"
STAMP_WANT="k8s=$K8S_VERSION containerd=$CONTAINERD_VERSION coredns=$COREDNS_VERSION"
NODE_BINS="kubelet kube-scheduler kube-proxy containerd containerd-shim-runc-v2 ctr coredns"

have_all() {
  local b
  for b in $NODE_BINS; do
    [ -x "$BIN/$b" ] || return 1
  done
  [ -f "$BIN/NODE-STAMP" ] && [ "$(cat "$BIN/NODE-STAMP")" = "$STAMP_WANT" ]
}
have_host_parts() {
  local p
  for p in /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback; do
    [ -x "$p" ] || { log "missing $p: run 'make deps' (containernetworking-plugins)"; return 1; }
  done
  command -v runc >/dev/null || { log "missing runc: run 'make deps'"; return 1; }
}

if have_all; then
  have_host_parts || exit 1
  echo "$BIN"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  log "node not built: $BIN (run $0, or set WEFT_E2E_BUILD=1 for the e2e suite)"
  exit 1
fi
have_host_parts || exit 1

exec 9>"$CACHE/.lock"
flock 9
if have_all; then
  echo "$BIN"
  exit 0
fi

export GOFLAGS="${WEFT_E2E_GOFLAGS:--p=2} -mod=mod -trimpath -buildvcs=false"
export CGO_ENABLED=0
export GOTOOLCHAIN=local
slow() { nice -n 19 ionice -c 3 "$@"; }
start=$(date +%s)
# The wrapper modules below say this toolchain's language version (go1.26.8 -> 1.26).
gover=$(go env GOVERSION | sed -n 's/^go\([0-9]*\.[0-9]*\).*/\1/p')

# --- kubelet, kube-scheduler, kube-proxy --------------------------------------
# The module setup-control-plane.sh generated (src/k8s/go.mod), same flags.
minor="${K8S_VERSION#v1.}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
cd "$CACHE/src/k8s"
log "building kubelet, kube-scheduler, kube-proxy $K8S_VERSION (low priority)"
slow go build -ldflags "$ldflags" -o "$BIN/" \
  k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kube-proxy
t_k8s=$(date +%s)

# --- containerd ----------------------------------------------------------------
# containerd v2 from its Go module rather than Debian 12's containerd 1.6: the
# kubelets after 1.37 need v2 (they take the cgroup driver from the runtime
# over CRI), and a pinned module builds the same everywhere. Static, without
# the snapshotters this node does not use (btrfs, devmapper, zfs need cgo).
mkdir -p "$CACHE/src/containerd"
cd "$CACHE/src/containerd"
if [ ! -f go.mod ] || ! grep -q "containerd/v2 $CONTAINERD_VERSION" go.mod; then
  rm -f go.mod go.sum
  printf 'module weft.dev/e2e-containerd\n\ngo %s\n\nrequire github.com/containerd/containerd/v2 %s\n' \
    "$gover" "$CONTAINERD_VERSION" > go.mod
fi
log "building containerd $CONTAINERD_VERSION"
cdpkg=github.com/containerd/containerd/v2
slow go build -tags "no_btrfs no_devmapper no_zfs" \
  -ldflags "-s -w -X $cdpkg/version.Version=$CONTAINERD_VERSION" -o "$BIN/" \
  $cdpkg/cmd/containerd $cdpkg/cmd/containerd-shim-runc-v2 $cdpkg/cmd/ctr
t_cd=$(date +%s)

# --- CoreDNS -------------------------------------------------------------------
mkdir -p "$CACHE/src/coredns"
cd "$CACHE/src/coredns"
if [ ! -f go.mod ] || ! grep -q "coredns/coredns $COREDNS_VERSION" go.mod; then
  rm -f go.mod go.sum
  printf 'module weft.dev/e2e-coredns\n\ngo %s\n\nrequire github.com/coredns/coredns %s\n' \
    "$gover" "$COREDNS_VERSION" > go.mod
fi
log "building CoreDNS $COREDNS_VERSION"
slow go build -ldflags "-s -w" -o "$BIN/coredns" github.com/coredns/coredns
end=$(date +%s)

echo "$STAMP_WANT" > "$BIN/NODE-STAMP"
echo "node build wall time: $((end - start)) s (kubelet+scheduler+proxy $((t_k8s - start)) s, containerd $((t_cd - t_k8s)) s, coredns $((end - t_cd)) s; $STAMP_WANT, $(go env GOVERSION), $(nproc) cores)" |
  tee -a "$CACHE/build-time.txt" >&2
echo "$BIN"
