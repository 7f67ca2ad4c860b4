#!/usr/bin/env bash
# Runs each libFuzzer target for a few seconds (first argument), seeded from
# fuzz/corpus/<target>/ when present and from the golden cases of its part
# (tests/golden/<part>/), from the repository root. A crash fails the run and
# leaves its reproducer in build-fuzz/.
set -u
secs=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rc=0
for bin in "$@"; do
  name=$(basename "$bin")
  part=$(echo "$name" | cut -d_ -f2)
  work=build-fuzz/corpus/$name
  mkdir -p "$work"
  seeds=()
  [ -d "fuzz/corpus/$name" ] && seeds+=("fuzz/corpus/$name")
  [ -d "tests/golden/$part" ] && seeds+=("tests/golden/$part")
  # libFuzzer reads seed directories flat: gather the golden files into one.
  seeddir=build-fuzz/seeds/$name
  rm -rf "$seeddir" && mkdir -p "$seeddir"
  for s in "${seeds[@]}"; do
    while IFS= read -r f; do
      cp "$f" "$seeddir/$(echo "$f" | tr / _)"
    done < <(find "$s" -type f -size -1000k)
  done
  echo "fuzz: $name for ${secs}s ($(ls "$seeddir" | wc -l) seeds)"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ \
       -print_final_stats=0 "$work" "$seeddir" > "build-fuzz/$name.log" 2>&1; then
    echo "fuzz: $name FAILED, see build-fuzz/$name.log" >&2
    tail -30 "build-fuzz/$name.log" >&2
    rc=1
  fi
done
exit $rc
