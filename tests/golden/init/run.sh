#!/usr/bin/env bash
# Golden tests of weft-init: each case directory holds `args` (one argument
# per line, so empty arguments are possible) and the exact expected `stdout`,
# `stderr` (log timestamps removed) and `exit` of `weft-init <args>`. Cases
# use --dry-run or fail in flag parsing, so nothing touches iptables.
# --update rewrites the expected files from the current binary.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${WEFT_BIN:-$here/../../../build/bin}/weft-init
update=0
[ "${1:-}" = "--update" ] && update=1
[ -x "$bin" ] || { echo "golden/init: $bin not built" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
for dir in "$here"/*/; do
  dir=${dir%/}
  name=${dir##*/}
  [ -f "$dir/args" ] || continue
  mapfile -t args < "$dir/args"
  code=0
  "$bin" "${args[@]}" > "$tmp/stdout" 2> "$tmp/stderr.raw" || code=$?
  sed -E 's/^ts=[^ ]+ //' "$tmp/stderr.raw" > "$tmp/stderr"
  echo "$code" > "$tmp/exit"
  if [ "$update" -eq 1 ]; then
    cp "$tmp/stdout" "$tmp/stderr" "$tmp/exit" "$dir/"
    continue
  fi
  ok=1
  for f in stdout stderr exit; do
    if ! diff -u "$dir/$f" "$tmp/$f" > "$tmp/diff"; then
      ok=0
      echo "golden/init: $name: $f differs" >&2
      cat "$tmp/diff" >&2
    fi
  done
  if [ "$ok" -eq 1 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
if [ "$update" -eq 1 ]; then
  echo "golden/init: expected files updated"
  exit 0
fi
echo "golden/init: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
