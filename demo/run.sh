#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make demo` (after building): a whole Weft mesh on this machine. See demo/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "weft demo: needs root (network namespaces, iptables); run: sudo make demo" >&2
  exit 1
fi
bash scripts/deps.sh
exec /usr/bin/python3 demo/demo.py "$@"
