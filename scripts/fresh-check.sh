#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make fresh-check` (root): proves the README's two commands work the first
# time on a fresh Debian 12 machine. It builds a minimal new bookworm root
# with debootstrap from this machine's own apt sources, and for each command
# (`make demo`, then `make test`; FRESH_CHECK_CMDS="cmd;cmd..." for others)
# takes its own fresh copy of that root, puts a clean `git clone` of the
# repository's committed HEAD at /root/weft and runs the command there as a
# new user would: `cd /root/weft && <command>`, as root, with the root as
# the / (pivot_root, not chroot) of new mount, PID, IPC and UTS namespaces
# with their own /proc, /sys, /dev (a tmpfs with the few standard nodes),
# /run and /tmp (tmpfs). The network namespace is this machine's: apt and
# the Go module proxy must be reachable.
#
#   scripts/fresh-check.sh [--repo DIR] [--cache DIR]
#     --repo   the repository to test, its committed HEAD (default: this
#              checkout; FRESH_CHECK_REPO); uncommitted changes are not tested
#     --cache  where the debootstrap tarball is kept between runs (default
#              /var/cache/weft-fresh-check; FRESH_CHECK_CACHE)
#
# What the root has, like a fresh machine of this project's kind: Debian's
# minbase plus make, git, ca-certificates and python3 from apt (no compiler,
# no -dev package: `make deps` installs those), and the Go toolchain, which
# such a machine ships outside Debian at /usr/local/go: it is bind-mounted
# read-only from this machine and put first on PATH. Nothing else of this
# machine is shared. The Go module cache starts empty, as on a fresh machine:
# the e2e suite's first control-plane build downloads its modules from the
# proxy (about 0.9 GB) rather than reading this machine's, so a module the
# build cannot fetch fails here and not later for a user; the build itself
# (minutes) happens either way because the build cache is empty too.
#
# The package sources are read at run time from /etc/apt/sources.list and
# /etc/apt/sources.list.d/*.{list,sources} (the first enabled `deb` source of
# bookworm/main is debootstrap's mirror) and copied into the root with
# /etc/apt/apt.conf.d, /etc/apt/preferences.d and the keyrings they name, so
# apt inside uses exactly this machine's sources; credentials
# (/etc/apt/auth.conf*) are not copied. /etc/resolv.conf is copied, and so
# are the CA certificates added locally to this machine's trust store
# (/usr/local/share/ca-certificates, then update-ca-certificates in the
# root): where egress goes through a TLS-inspecting proxy, the Go module
# proxy is reachable only with them, as on any machine of that network.
#
# It prints each command's exit status and wall time and fails if any
# failed. Everything it makes lives in one directory under /var/tmp and is
# removed at the end, also on failure and on Ctrl-C: processes die with
# their PID namespace, mounts are made in the private mount namespace (and
# unmounted there in reverse order), and a safety net lazily unmounts
# anything left under the directory before removing it (never across a
# mount). Only the tarball stays in the cache; debootstrap, when missing, is
# installed on this machine with apt-get and stays. As the network namespace
# is shared, it compares this machine's interfaces and iptables rules before
# and after each command and shows a change as a warning (on a shared
# machine it may be another user's).
set -euo pipefail

SUITE=bookworm
VARIANT=minbase
INCLUDE=make,git,ca-certificates,python3
GO_ROOT=/usr/local/go
NODE_LOCK=/run/weft-e2e-node.lock  # tests/e2e/node.py LOCK
ROOT_PATH=$GO_ROOT/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { echo "fresh-check: $*" >&2; }
die() { log "$*"; exit 1; }

# Mount points at or under $1 in this mount namespace, deepest first
# (mountinfo's fifth field, with its octal escapes decoded).
mounts_under() {
  local dir=${1%/}
  awk '{ print $5 }' /proc/self/mountinfo |
    while IFS= read -r m; do
      m=$(printf '%b' "$m")
      case "$m" in "$dir"|"$dir"/*) echo "$m" ;; esac
    done | awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2-
}

# Unmounts everything at or under $1, deepest first; lazily if it is busy.
unmount_under() {
  local m
  while IFS= read -r m; do
    [ -n "$m" ] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done < <(mounts_under "$1")
}

# ---------------------------------------------------------------------------
# Inside: PID 1 of the new namespaces. Mounts the root's file systems,
# runs the command with the root as its / (pivot_root), then kills what is
# left, unmounts in reverse order and exits with the command's status.
if [ "${1:-}" = "--inside" ]; then
  root=$2 cmd=$3
  mounts=()
  m() { mount "$@"; mounts+=("${*: -1}"); }
  hostname weft-fresh
  m --bind "$root" "$root"
  m -t proc -o nosuid,nodev,noexec proc "$root/proc"
  m -t sysfs -o nosuid,nodev,noexec sysfs "$root/sys"
  # The cgroup hierarchy, as a machine has it mounted: the e2e node's
  # kubelet needs it (a new sysfs carries none). Its changes are the host's,
  # as they would be without the root; the node's teardown removes them.
  if mountpoint -q /sys/fs/cgroup; then
    m --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
    mount --make-rslave "$root/sys/fs/cgroup"
  fi
  m -t tmpfs -o nosuid,mode=755,size=64m dev "$root/dev"
  mknod -m 666 "$root/dev/null" c 1 3
  mknod -m 666 "$root/dev/zero" c 1 5
  mknod -m 666 "$root/dev/full" c 1 7
  mknod -m 666 "$root/dev/random" c 1 8
  mknod -m 666 "$root/dev/urandom" c 1 9
  mknod -m 666 "$root/dev/tty" c 5 0
  # The kernel log, as a machine has it: the e2e node's kubelet opens it for
  # its OOM watcher and refuses to start without it.
  mknod -m 644 "$root/dev/kmsg" c 1 11
  mkdir -m 755 "$root/dev/pts" "$root/dev/net"
  mkdir -m 1777 "$root/dev/shm"
  mknod -m 666 "$root/dev/net/tun" c 10 200
  ln -s /proc/self/fd "$root/dev/fd"
  ln -s /proc/self/fd/0 "$root/dev/stdin"
  ln -s /proc/self/fd/1 "$root/dev/stdout"
  ln -s /proc/self/fd/2 "$root/dev/stderr"
  ln -s pts/ptmx "$root/dev/ptmx"
  m -t devpts -o newinstance,nosuid,noexec,ptmxmode=0666,mode=620,gid=5 devpts "$root/dev/pts"
  m -t tmpfs -o nosuid,nodev,mode=1777 shm "$root/dev/shm"
  m -t tmpfs -o nosuid,nodev,mode=755 run "$root/run"
  # The e2e node's lock is this machine's: the root shares its network
  # namespace, so a node inside and one outside would share the bridge.
  touch "$NODE_LOCK"
  touch "$root$NODE_LOCK"
  m --bind "$NODE_LOCK" "$root$NODE_LOCK"
  mkdir -m 1777 "$root/run/lock"
  m -t tmpfs -o nosuid,nodev,mode=1777 tmp "$root/tmp"
  # The Go toolchain, read-only (see the top of this file).
  m --bind "$GO_ROOT" "$root$GO_ROOT"
  mount -o remount,bind,ro "$root$GO_ROOT"

  set +e
  # The root becomes the root of a mount namespace of its own (pivot_root,
  # then the old root detached), not a chroot: a chroot leaves this
  # machine's / as the namespace's root, and setns(2) into a mount
  # namespace sets the root to that namespace's root. So a container the
  # e2e node's runc starts below a chroot runs in its image, but `kubectl
  # exec` (runc exec, setns) into it lands in this machine's / instead:
  # "client" not found, this machine's GNU wget. A namespace nested in this
  # one, so that this PID 1 keeps seeing the mounts it unmounts below.
  unshare --mount --propagation private -- /bin/sh -c '
    cd "$1" && pivot_root . . && umount -l . && cd / || exit 125
    shift
    exec /usr/bin/env -i HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM=dumb \
      PATH="$1" /bin/bash -c "cd /root/weft && $2"' sh "$root" "$ROOT_PATH" "$cmd" </dev/null
  rc=$?
  [ "$rc" -ne 125 ] || log "cannot make $root the root of a mount namespace (pivot_root)"
  kill -KILL -1 2>/dev/null     # whatever the command left running here
  sleep 1
  # What the command mounted itself (ip netns's /run/netns/*) goes first.
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    unmount_under "${mounts[i]}"
  done
  exit $rc
fi

# ---------------------------------------------------------------------------
# Outside.
self=$(readlink -f "$0")
repo=${FRESH_CHECK_REPO:-$(cd "$(dirname "$self")/.." && pwd)}
cache=${FRESH_CHECK_CACHE:-/var/cache/weft-fresh-check}
while [ $# -gt 0 ]; do
  case "$1" in
    --repo) repo=$2; shift 2 ;;
    --cache) cache=$2; shift 2 ;;
    -h|--help) sed -n '3,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
IFS=';' read -ra cmds <<< "${FRESH_CHECK_CMDS:-make demo;make test}"

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, namespaces): sudo make fresh-check"
repo=$(git -C "$repo" rev-parse --show-toplevel) || die "not a git repository: $repo"
[ -x "$GO_ROOT/bin/go" ] || die "no Go toolchain at $GO_ROOT (the e2e build needs one; see the top of $0)"
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  log "note: $repo has uncommitted changes; only its committed HEAD is tested"
fi
if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap on this machine (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } ||
    die "cannot install debootstrap"
fi

# The host's apt source files, and from them debootstrap's mirror: the first
# enabled `deb` source whose suites include $SUITE and components main.
source_files() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && echo "$f"
  done
}
host_mirror() {
  local f
  while IFS= read -r f; do
    case "$f" in
      *.sources)
        # deb822: stanzas separated by blank lines; Enabled: no skips one.
        awk -v suite="$SUITE" '
          function flush() {
            if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") &&
                (" " comps " ") ~ / main /) { split(uris, u, " "); print u[1]; found = 1; exit }
            types = uris = suites = comps = ""; enabled = "yes"
          }
          BEGIN { enabled = "yes" }
          /^[ \t]*#/ { next }
          /^[ \t]*$/ { flush(); next }
          { line = $0; key = tolower(line); sub(/:.*/, "", key); sub(/^[^:]*:[ \t]*/, "", line)
            if (key == "types") types = line; else if (key == "uris") uris = line
            else if (key == "suites") suites = line; else if (key == "components") comps = line
            else if (key == "enabled") enabled = tolower(line) }
          END { if (!found) flush() }' "$f" ;;
      *)
        # one-line: deb [options] uri suite component...
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
          awk -v suite="$SUITE" '$1 == "deb" && $3 == suite {
            for (i = 4; i <= NF; i++) if ($i == "main") { print $2; exit } }' ;;
    esac
  done < <(source_files) | head -1
}
mirror=$(host_mirror)
[ -n "$mirror" ] || die "no enabled 'deb' source for $SUITE main in /etc/apt/sources.list{,.d}"
arch=$(dpkg --print-architecture)

work=$(mktemp -d /var/tmp/weft-fresh-check.XXXXXX)
# Runs "$@" as the one child, in its own process group (set -m): its signals
# are as in a login shell (not SIGINT-ignored like a plain background job),
# and `wait` lets this script's trap run at once on Ctrl-C or SIGTERM.
child=
run_child() {
  local rc=0
  set -m
  "$@" &
  child=$!
  set +m
  wait "$child" || rc=$?
  child=
  return $rc
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    log "stopping the running command"
    kill -TERM "$child" 2>/dev/null || true   # unshare --kill-child: its namespaces die with it
    sleep 1
    kill -KILL "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  # Safety net: nothing should be mounted under $work in this namespace.
  if [ -n "$(mounts_under "$work")" ]; then
    log "unmounting what is left under $work"
    unmount_under "$work"
  fi
  if [ -n "$(mounts_under "$work")" ]; then
    log "still mounted under $work, not removing it:"; mounts_under "$work" >&2
    rc=1
  else
    rm -rf --one-file-system "$work"
  fi
  rm -f "$cache"/.partial.*
  exit $rc
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# --- the debootstrap tarball (the only thing cached) ------------------------
key=$(printf '%s\n' "$SUITE" "$arch" "$VARIANT" "$INCLUDE" | sha256sum | cut -c1-12)
tarball=$cache/debootstrap-$SUITE-$arch-$VARIANT-$key.tgz
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
debootstrap_args=(--variant="$VARIANT" --arch="$arch" --include="$INCLUDE")
if [ ! -s "$tarball" ]; then
  log "downloading $SUITE $VARIANT +$INCLUDE into $tarball"
  partial=$(mktemp -u "$cache/.partial.XXXXXX").tgz
  run_child unshare --mount --pid --fork --kill-child --propagation private -- \
    debootstrap "${debootstrap_args[@]}" --make-tarball="$partial" "$SUITE" "$work/download" "$mirror" \
    > "$work/debootstrap-download.log" 2>&1 ||
    { tail -20 "$work/debootstrap-download.log" >&2; die "debootstrap --make-tarball failed"; }
  mv "$partial" "$tarball"
  rm -rf --one-file-system "$work/download"
fi
# Older tarballs (another package list) are not needed any more.
find "$cache" -maxdepth 1 -name 'debootstrap-*.tgz' ! -name "$(basename "$tarball")" -delete
flock -u 9

# --- the base root, configured like this machine's apt ------------------------
base=$work/base
t0=$EPOCHSECONDS
# debootstrap mounts /proc and /sys in the target: in a private namespace.
run_child unshare --mount --pid --fork --kill-child --propagation private -- \
  debootstrap "${debootstrap_args[@]}" --unpack-tarball="$tarball" "$SUITE" "$base" "$mirror" \
  > "$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; die "debootstrap --unpack-tarball failed"; }
rm -f "$base/etc/apt/sources.list"
while IFS= read -r f; do
  mkdir -p "$base$(dirname "$f")"
  cp -L "$f" "$base$f"
  # Keyrings a source names with Signed-By / signed-by= go along.
  for k in $(grep -ohiE '(signed-by:[[:space:]]*|signed-by=)/[^] ,]+' "$f" | sed -E 's/^[^/]*//'); do
    [ -f "$k" ] && [ ! -e "$base$k" ] && { mkdir -p "$base$(dirname "$k")"; cp -L "$k" "$base$k"; }
  done
done < <(source_files)
for d in apt.conf.d preferences.d trusted.gpg.d keyrings; do
  [ -d "/etc/apt/$d" ] && { mkdir -p "$base/etc/apt/$d"; cp -aL "/etc/apt/$d/." "$base/etc/apt/$d/"; }
done
[ -f /etc/apt/apt.conf ] && cp -L /etc/apt/apt.conf "$base/etc/apt/apt.conf"
rm -f "$base/etc/resolv.conf" && cp -L /etc/resolv.conf "$base/etc/resolv.conf"
if compgen -G '/usr/local/share/ca-certificates/*' >/dev/null; then
  cp -aL /usr/local/share/ca-certificates/. "$base/usr/local/share/ca-certificates/"
  chroot "$base" update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed in the root"
fi
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tweft-fresh\n' > "$base/etc/hosts"
echo weft-fresh > "$base/etc/hostname"
# The kubelet reads the machine's ID; a fresh install makes one.
[ -s "$base/etc/machine-id" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$base/etc/machine-id"
mkdir -p "$base$GO_ROOT"
log "base root ready in $((EPOCHSECONDS - t0)) s (debootstrap $SUITE from the tarball; mirror from this machine's apt sources)"

# What of this machine's network state a command could change from inside
# (it shares the network namespace): interfaces and iptables rules.
host_net_state() {
  ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print "link " $2 }' | sort
  local t
  for t in iptables-save ip6tables-save; do
    command -v $t >/dev/null && $t 2>/dev/null | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//'
  done
  return 0
}

# --- each command in its own copy -------------------------------------------
# One commit for every command, though others may commit meanwhile.
full_commit=$(git -C "$repo" rev-parse HEAD)
commit=$(git -C "$repo" rev-parse --short HEAD)
results=() failed=0 i=0
for cmd in "${cmds[@]}"; do
  cmd=$(echo "$cmd" | sed -E 's/^[[:space:]]+|[[:space:]]+$//g')
  [ -n "$cmd" ] || continue
  i=$((i + 1))
  root=$work/root$i
  cp -a "$base" "$root"
  git clone -q --no-hardlinks "$repo" "$root/root/weft"
  git -C "$root/root/weft" reset -q --hard "$full_commit"
  before=$(host_net_state)
  log "[$i] '$cmd' in a fresh root ($SUITE, clone of $commit)"
  start=$EPOCHREALTIME
  rc=0
  run_child unshare --mount --pid --ipc --uts --fork --kill-child --propagation private -- \
    bash "$self" --inside "$root" "$cmd" || rc=$?
  secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
  after=$(host_net_state)
  if [ "$before" != "$after" ]; then
    log "[$i] warning: this machine's interfaces or iptables rules changed while '$cmd' ran (another user's, or a leak):"
    diff <(echo "$before") <(echo "$after") | sed 's/^/  /' >&2 || true
  fi
  if [ -n "$(mounts_under "$root")" ]; then
    log "[$i] mounts of '$cmd' leaked into this machine's namespace:"; mounts_under "$root" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
  # No process of the command outlives it: all ran in its PID namespace,
  # whose PID 1 (--inside) has exited, and the kernel kills and reaps every
  # other process of a PID namespace before its PID 1 is reaped. (A check
  # by /proc/*/root cannot see them: the root is the / of their own mount
  # namespace; one by PID-namespace inode would be wrong, as a dead
  # namespace's inode number is reused.)
  line=$(printf "'%s': exit %d, %d s (%dm%02ds)" "$cmd" "$rc" "$secs" $((secs / 60)) $((secs % 60)))
  log "[$i] $line"
  results+=("$line")
  [ "$rc" -eq 0 ] || failed=1
  [ -n "$(mounts_under "$root")" ] || rm -rf --one-file-system "$root"   # else cleanup's safety net
done

echo "fresh-check: Debian $SUITE root, clone of $(basename "$repo") $commit, $(nproc) cores"
for r in "${results[@]}"; do echo "fresh-check:   $r"; done
if [ "$failed" -ne 0 ]; then
  echo "fresh-check: FAILED"
  exit 1
fi
echo "fresh-check: passed"
