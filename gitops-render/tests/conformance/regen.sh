#!/usr/bin/env bash
# Rewrites every expected.out under this folder with what `kubectl kustomize` prints for its
# folder (Kustomize v5.5.0 is the reference). Cases with expected.err are only checked to fail.
# Usage: gitops-render/tests/conformance/regen.sh [case-folder...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -gt 0 ]; then dirs=("$@"); else
  mapfile -t dirs < <(find "$here" \( -name expected.out -o -name expected.err \) -printf '%h\n' | sort)
fi
for d in "${dirs[@]}"; do
  if [ -f "$d/expected.err" ] && [ ! -f "$d/expected.out" ]; then
    if kubectl kustomize "$d" >/dev/null 2>&1; then echo "UNEXPECTED SUCCESS: $d" >&2; exit 1; fi
    continue
  fi
  kubectl kustomize "$d" > "$d/expected.out"
done
