#!/usr/bin/env bash
# Golden suite of weft-discovery's core. Each case directory holds objects/
# (Kubernetes objects as YAML or JSON files; a symlink to another case's
# objects/ shares one cluster), optionally events.jsonl (watch events, one a
# line, applied after the objects), args (the rest of the command line: the
# trust domain and the question), and the exact expected answer.json
# (stdout), stderr and exit. Run from the case directory, so messages name
# files as objects/<file>. `run.sh --update` rewrites the expected files.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${WEFT_BIN:-$root/build/bin}/weft-discovery
update=0
[ "${1:-}" = "--update" ] && update=1
passed=0 failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for dir in "$here"/*/; do
  case=$(basename "$dir")
  read -r -a args < "$dir/args"
  extra=()
  [ -f "$dir/events.jsonl" ] && extra+=(--events events.jsonl)
  (cd "$dir" && "$bin" answer --objects objects --config ../../../../templates/mesh.yaml "${extra[@]}" "${args[@]}" \
     > "$tmp/answer.json" 2> "$tmp/stderr")
  echo $? > "$tmp/exit"
  if [ $update -eq 1 ]; then
    cp "$tmp/answer.json" "$tmp/stderr" "$tmp/exit" "$dir"
    continue
  fi
  ok=1
  for f in answer.json stderr exit; do
    if ! cmp -s "$tmp/$f" "$dir/$f"; then
      ok=0
      echo "golden discovery/$case: $f differs" >&2
      diff "$tmp/$f" "$dir/$f" 2>&1 | head -20 >&2
    fi
  done
  if [ $ok -eq 1 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
[ $update -eq 1 ] && { echo "golden discovery: expected files rewritten"; exit 0; }
echo "golden discovery: $passed passed, $failed failed"
[ $failed -eq 0 ]
