#!/usr/bin/env bash
# Copies templates/ into manifests/base/config/ (kustomize loads files only from
# under the kustomization's directory). Run after changing templates/;
# tests/e2e/test_manifests.py fails while the copies differ.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cp "$root/templates/mesh.yaml" "$root/manifests/base/config/mesh.yaml"
rm -f "$root"/manifests/base/config/templates/*.yaml
for f in "$root"/templates/*.yaml; do
  [ "$(basename "$f")" = mesh.yaml ] && continue
  cp "$f" "$root/manifests/base/config/templates/"
done
