#!/usr/bin/env bash
# Runs every benchmark suite (bench/<part>/run.sh); each appends nothing by
# itself: copy the numbers it prints into bench/RESULTS.md with its command.
set -u
here=$(cd "$(dirname "$0")" && pwd)
for suite in "$here"/*/run.sh; do
  [ -e "$suite" ] || continue
  echo "== $suite"
  bash "$suite" || echo "bench: $suite failed" >&2
done
