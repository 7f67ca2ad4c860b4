#!/usr/bin/env bash
# Golden suite of weftctl: each case directory holds `args` (weftctl's
# arguments one a line, paths relative to the repository root), optionally
# `stdin`, the input files the arguments name, and the exact expected
# `stdout`; the exit status and stderr are compared too: 0 and nothing,
# unless the case holds exit-status and stderr files saying otherwise. A case
# with an `equals` file (a path) also needs its stdout to be that file's
# content, in --update too: injecting twice gives what injecting once gave,
# uninjecting gives the original back. A case's `env` file holds NAME=value
# lines for weftctl's environment; every case runs without the caller's
# KUBECONFIG (or in-cluster service account variables) and with
# HOME=tests/golden/cli/no-home (which has no
# .kube/config), so no case reads the developer's cluster. `run.sh --update`
# rewrites the expected files (exit-status and stderr only where they are not
# 0 and empty).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${WEFT_BIN:-$root/build/bin}/weftctl
cd "$root" || exit 1
update=0
[ "${1:-}" = "--update" ] && update=1
passed=0 failed=0
errfile=$(mktemp) outfile=$(mktemp)
trap 'rm -f "$errfile" "$outfile"' EXIT
for dir in "$here"/*/; do
  case=$(basename "$dir")
  [ -f "$dir/args" ] || continue # no-home, shared inputs
  rel=tests/golden/cli/$case
  mapfile -t args < "$rel/args"
  stdin=/dev/null
  envs=()
  [ -f "$rel/env" ] && mapfile -t envs < "$rel/env"
  [ -f "$rel/stdin" ] && stdin=$rel/stdin
  env -u KUBECONFIG -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT HOME=tests/golden/cli/no-home "${envs[@]}" \
    "$bin" "${args[@]}" < "$stdin" > "$outfile" 2>"$errfile"
  status=$?
  stderr=$(cat "$errfile")
  same=1
  if [ -f "$rel/equals" ] && ! cmp -s "$outfile" "$(cat "$rel/equals")"; then
    same=0
    echo "golden cli/$case: stdout is not $(cat "$rel/equals")" >&2
    diff "$outfile" "$(cat "$rel/equals")" | head -20 >&2
  fi
  if [ $update -eq 1 ]; then
    cp "$outfile" "$dir/stdout"
    if [ $status -ne 0 ]; then printf '%s\n' "$status" > "$dir/exit-status"; else rm -f "$dir/exit-status"; fi
    if [ -n "$stderr" ]; then printf '%s\n' "$stderr" > "$dir/stderr"; else rm -f "$dir/stderr"; fi
    [ $same -eq 1 ] || failed=$((failed + 1))
    continue
  fi
  want_status=0 want_stderr=
  [ -f "$dir/exit-status" ] && want_status=$(cat "$dir/exit-status")
  [ -f "$dir/stderr" ] && want_stderr=$(cat "$dir/stderr")
  if [ $same -eq 1 ] && cmp -s "$outfile" "$dir/stdout" && [ "$status" = "$want_status" ] &&
     [ "$stderr" = "$want_stderr" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "golden cli/$case: output differs" >&2
    [ "$status" = "$want_status" ] || echo "  exit status $status, expected $want_status" >&2
    [ "$stderr" = "$want_stderr" ] || diff <(printf '%s\n' "$stderr") <(printf '%s\n' "$want_stderr") | head -10 >&2
    diff "$outfile" "$dir/stdout" | head -20 >&2
  fi
done
[ $update -eq 1 ] && { echo "golden cli: expected files rewritten, $failed not equal to what they should equal"; [ $failed -eq 0 ]; exit; }
echo "golden cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
