#!/usr/bin/env bash
# Golden suite of weft-webhook: each case directory holds request.json (an
# AdmissionReview), optionally namespace.json (the namespace's annotations as
# the API would return them), and the exact expected response.json (stdout)
# plus the decoded patch.json. `check`'s exit status and stderr are compared
# too: 0 and nothing, unless the case holds exit-status and stderr files
# saying otherwise. `run.sh --update` rewrites the expected files (and writes
# exit-status and stderr only where they are not 0 and empty).
# Runs from the repository root with relative paths, so messages naming a
# file read the same in every checkout.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${WEFT_BIN:-$root/build/bin}/weft-webhook
cd "$root" || exit 1
update=0
[ "${1:-}" = "--update" ] && update=1
passed=0 failed=0
errfile=$(mktemp)
trap 'rm -f "$errfile"' EXIT
for dir in "$here"/*/; do
  case=$(basename "$dir")
  rel=tests/golden/webhook/$case
  args=(check --config templates/mesh.yaml --templates templates)
  [ -f "$rel/namespace.json" ] && args+=(--namespace-annotations "$rel/namespace.json")
  got=$("$bin" "${args[@]}" < "$rel/request.json" 2>"$errfile")
  status=$?
  stderr=$(cat "$errfile")
  patch=$(printf '%s' "$got" | /usr/bin/python3 -c '
import base64, json, sys
try:
    r = json.load(sys.stdin).get("response", {})
except ValueError:
    r = {}
print(json.dumps(json.loads(base64.b64decode(r["patch"])), indent=2) if "patch" in r else "[]")')
  if [ $update -eq 1 ]; then
    printf '%s\n' "$got" > "$dir/response.json"
    printf '%s\n' "$patch" > "$dir/patch.json"
    if [ $status -ne 0 ]; then printf '%s\n' "$status" > "$dir/exit-status"; else rm -f "$dir/exit-status"; fi
    if [ -n "$stderr" ]; then printf '%s\n' "$stderr" > "$dir/stderr"; else rm -f "$dir/stderr"; fi
    continue
  fi
  want_status=0 want_stderr=
  [ -f "$dir/exit-status" ] && want_status=$(cat "$dir/exit-status")
  [ -f "$dir/stderr" ] && want_stderr=$(cat "$dir/stderr")
  if [ "$got" = "$(cat "$dir/response.json")" ] && [ "$patch" = "$(cat "$dir/patch.json")" ] &&
     [ "$status" = "$want_status" ] && [ "$stderr" = "$want_stderr" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "golden webhook/$case: output differs" >&2
    [ "$status" = "$want_status" ] || echo "  exit status $status, expected $want_status" >&2
    [ "$stderr" = "$want_stderr" ] || diff <(printf '%s\n' "$stderr") <(printf '%s\n' "$want_stderr") | head -10 >&2
    [ "$got" = "$(cat "$dir/response.json")" ] || diff <(printf '%s\n' "$got") "$dir/response.json" | head -10 >&2
    diff <(printf '%s\n' "$patch") "$dir/patch.json" | head -20 >&2
  fi
done
[ $update -eq 1 ] && { echo "golden webhook: expected files rewritten"; exit 0; }
echo "golden webhook: $passed passed, $failed failed"
[ $failed -eq 0 ]
