#!/usr/bin/env bash
# Runs each part's golden suite (tests/golden/<part>/run.sh). Each suite
# compares exact output with the files kept beside its input; --update
# rewrites those files from the current binaries (make golden-update).
set -u
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for suite in "$here"/*/run.sh; do
  [ -e "$suite" ] || continue
  bash "$suite" "$@" || rc=1
done
exit $rc
