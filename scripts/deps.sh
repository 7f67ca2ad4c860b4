#!/usr/bin/env bash
# Installs the Debian packages Weft builds, tests and benchmarks with.
# Idempotent: installs only what is missing. As root it runs apt-get;
# otherwise it names what is missing and fails.
set -euo pipefail

packages=(
  build-essential pkg-config
  libmicrohttpd-dev libgnutls28-dev libjansson-dev libyaml-dev libssl-dev openssl
  libcmocka-dev libnghttp2-dev
  clang libclang-rt-14-dev
  iptables iproute2 procps
  curl python3 python3-pytest python3-jsonpatch python3-yaml python3-h11
  nghttp2-client haproxy wrk valgrind
  python3-cryptography python3-grpcio
  runc containernetworking-plugins busybox-static
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]} (run 'make deps' as root or apt-get install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Some packages (prometheus) start their service from postinst; tests run
# their own instances on loopback, so none may start here (it would take
# :9090). invoke-rc.d and deb-systemd-invoke ask policy-rc.d(8): where the
# host has none, one that refuses every start is in place for this install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
# An old package list may not know a package yet; refresh once, then install.
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
