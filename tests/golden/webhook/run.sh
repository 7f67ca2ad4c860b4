#!/usr/bin/env bash
# Golden suite of weft-webhook: each case directory holds request.json (an
# AdmissionReview), optionally namespace.json (the namespace's annotations as
# the API would return them), and the exact expected response.json plus the
# decoded patch.json. `run.sh --update` rewrites the expected files.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${WEFT_BIN:-$root/build/bin}/weft-webhook
update=0
[ "${1:-}" = "--update" ] && update=1
passed=0 failed=0
for dir in "$here"/*/; do
  case=$(basename "$dir")
  args=(check --config "$root/templates/mesh.yaml" --templates "$root/templates")
  [ -f "$dir/namespace.json" ] && args+=(--namespace-annotations "$dir/namespace.json")
  got=$("$bin" "${args[@]}" < "$dir/request.json")
  patch=$(printf '%s' "$got" | /usr/bin/python3 -c '
import base64, json, sys
r = json.load(sys.stdin).get("response", {})
print(json.dumps(json.loads(base64.b64decode(r["patch"])), indent=2) if "patch" in r else "[]")')
  if [ $update -eq 1 ]; then
    printf '%s\n' "$got" > "$dir/response.json"
    printf '%s\n' "$patch" > "$dir/patch.json"
    continue
  fi
  if [ "$got" = "$(cat "$dir/response.json")" ] && [ "$patch" = "$(cat "$dir/patch.json")" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "golden webhook/$case: output differs" >&2
    diff <(printf '%s\n' "$patch") "$dir/patch.json" | head -20 >&2
  fi
done
[ $update -eq 1 ] && { echo "golden webhook: expected files rewritten"; exit 0; }
echo "golden webhook: $passed passed, $failed failed"
[ $failed -eq 0 ]
