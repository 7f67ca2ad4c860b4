#!/usr/bin/env bash
# Runs every benchmark suite (bench/<part>/run.sh); each appends nothing by
# itself: copy the numbers it prints into bench/RESULTS.md with its command.
set -u
here=$(cd "$(dirname "$0")" && pwd)
# A failed suite does not stop the others, but fails the run.
failed=()
for suite in "$here"/*/run.sh; do
  [ -e "$suite" ] || continue
  echo "== $suite"
  bash "$suite" || { echo "bench: $suite failed" >&2; failed+=("$suite"); }
done
[ ${#failed[@]} -eq 0 ] || { echo "bench: ${#failed[@]} suite(s) failed: ${failed[*]}" >&2; exit 1; }
