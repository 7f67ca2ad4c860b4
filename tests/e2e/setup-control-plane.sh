#!/usr/bin/env bash
# Builds the control plane the e2e suite runs against, once, into a cache
# outside the repository, and reuses it afterwards (idempotent).
#
#   kube-apiserver, kube-controller-manager, kubectl  from k8s.io/kubernetes $K8S_VERSION
#   etcd                                               from go.etcd.io/etcd/server/v3 $ETCD_VERSION
#
# Everything is built with this machine's Go toolchain from the Go module
# proxy. k8s.io/kubernetes refers to its staging modules (k8s.io/api, ...)
# by relative path; a tiny module in the cache replaces each of them by the
# published k8s.io/* module of the same release (v1.X.Y -> v0.X.Y).
#
# Layout (WEFT_E2E_CACHE defaults to /var/cache/weft-e2e as root, else
# ~/.cache/weft-e2e):
#   $WEFT_E2E_CACHE/$K8S_VERSION/bin/{kube-apiserver,kube-controller-manager,kubectl,etcd}
#   $WEFT_E2E_CACHE/$K8S_VERSION/bin/STAMP         versions the binaries were built from
#   $WEFT_E2E_CACHE/$K8S_VERSION/src/{k8s,etcd}/  the generated go.mod/go.sum
#   $WEFT_E2E_CACHE/$K8S_VERSION/build.log         output and wall time of the build
# Go's module and build caches stay where `go env GOMODCACHE GOCACHE` says.
#
# Prints the bin directory on stdout when done. With --check it only says
# whether the cache is complete (exit 0 and the bin directory, or exit 1).
# The build runs at the lowest
# CPU and I/O priority; WEFT_E2E_GOFLAGS (default -p=2) bounds its parallelism.
set -euo pipefail

K8S_VERSION="${WEFT_K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${WEFT_ETCD_VERSION:-v3.6.16}"
if [ "$(id -u)" -eq 0 ]; then default_cache=/var/cache/weft-e2e
else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/weft-e2e"; fi
CACHE_ROOT="${WEFT_E2E_CACHE:-$default_cache}"
CACHE="$CACHE_ROOT/$K8S_VERSION"
BIN="$CACHE/bin"
# The versions the binaries were built from (the Go toolchain that built them
# does not matter once they exist, so it is not part of the stamp).
STAMP_WANT="k8s=$K8S_VERSION etcd=$ETCD_VERSION"

log() { echo "setup-control-plane: $*" >&2; }

have_all() {
  local b
  for b in kube-apiserver kube-controller-manager kubectl etcd; do
    [ -x "$BIN/$b" ] || return 1
  done
  [ -f "$BIN/STAMP" ] && [ "$(cat "$BIN/STAMP")" = "$STAMP_WANT" ]
}

if have_all; then
  echo "$BIN"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  log "not built: $BIN (run $0, or set WEFT_E2E_BUILD=1 for the e2e suite)"
  exit 1
fi

command -v go >/dev/null || { log "go is not installed"; exit 1; }
mkdir -p "$CACHE/src/k8s" "$CACHE/src/etcd" "$BIN"

# One build at a time per cache (a second caller waits for the first).
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

# --- Kubernetes ------------------------------------------------------------
minor="${K8S_VERSION#v1.}"          # 37.2
staging_version="v0.$minor"         # v0.37.2
cd "$CACHE/src/k8s"
if [ ! -f go.mod ] || ! grep -q "k8s.io/kubernetes $K8S_VERSION" go.mod; then
  rm -f go.mod go.sum
  # On failure go prints its reason in the JSON's "Error" field, not on
  # stderr: say it (under set -e a failed pipe here used to exit silently).
  dl=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION") || true
  kgomod=$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' <<< "$dl")
  [ -f "$kgomod" ] || {
    log "cannot download k8s.io/kubernetes@$K8S_VERSION: $(sed -n 's/^[[:space:]]*"Error": "\(.*\)"$/\1/p' <<< "$dl")"
    exit 1
  }
  gover=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kgomod" | head -1)
  {
    echo "module weft.dev/e2e-control-plane"
    echo
    echo "go ${gover:-1.24}"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    # Every `k8s.io/X => ./staging/src/k8s.io/X` of the kubernetes go.mod.
    grep -Eo 'k8s\.io/[A-Za-z0-9._-]+ => \./staging/src/k8s\.io/[A-Za-z0-9._-]+' "$kgomod" |
      awk -v v="$staging_version" '{ print "replace " $1 " => " $1 " " v }' | sort -u
    # godebug settings of the release apply to its binaries.
    sed -n '/^godebug/,/^)/p' "$kgomod"
  } > go.mod
  grep -c '^replace' go.mod | sed 's/^/setup-control-plane: staging replaces: /' >&2
fi
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
log "building Kubernetes $K8S_VERSION (low priority, GOFLAGS=$GOFLAGS)"
slow go build -ldflags "$ldflags" -o "$BIN/" \
  k8s.io/kubernetes/cmd/kube-apiserver \
  k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl

# --- etcd --------------------------------------------------------------------
cd "$CACHE/src/etcd"
if [ ! -f go.mod ] || ! grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" go.mod; then
  rm -f go.mod go.sum
  printf 'module weft.dev/e2e-etcd\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > go.mod
fi
log "building etcd $ETCD_VERSION"
slow go build -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3

end=$(date +%s)
echo "$STAMP_WANT" > "$BIN/STAMP"
echo "build wall time: $((end - start)) s ($STAMP_WANT, $(go env GOVERSION), GOFLAGS=$GOFLAGS, $(nproc) cores)" | tee -a "$CACHE/build-time.txt" >&2
"$BIN/kube-apiserver" --version >&2
echo "$BIN"
