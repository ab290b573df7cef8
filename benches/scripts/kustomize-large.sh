#!/usr/bin/env bash
# Times `gitops build` against `kubectl kustomize` on the same large generated overlay
# (gitops_benches::generate_overlay: APPS bases of ten objects, generators, namePrefix,
# commonLabels, images, replicas, patches), in one run, and prints both times, both peak RSS
# figures and the ratios. Both are whole processes, start-up included.
#
# Usage: benches/scripts/kustomize-large.sh   (env: APPS=40 RUNS=5, CARGO_TARGET_DIR)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
apps=${APPS:-40}
runs=${RUNS:-5}
target=${CARGO_TARGET_DIR:-$root/target}
command -v kubectl >/dev/null || { echo "kubectl is needed (the reference)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is needed (apt-get install time)" >&2; exit 1; }

(cd "$root" && cargo build --release -q -p gitops-examples --bin gitops -p gitops-benches --bin gen-overlay)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
overlay=$("$target/release/gen-overlay" "$work/repo" "$apps")

export RUST_BACKTRACE=0
if ! "$target/release/gitops" build "$overlay" > "$work/ours.yaml" 2> "$work/ours.err"; then
  echo "gitops build failed on $overlay:" >&2
  cat "$work/ours.err" >&2
  exit 1
fi
kubectl kustomize "$overlay" > "$work/kubectl.yaml" 2>/dev/null
objects=$(grep -c '^---$' "$work/kubectl.yaml" || true)
objects=$((objects + 1))
bytes=$(wc -c < "$work/kubectl.yaml")
if cmp -s "$work/ours.yaml" "$work/kubectl.yaml"; then same="byte-identical"; else same="DIFFERENT"; fi

# measure NAME CMD...: sets <NAME>_s (median wall seconds) and <NAME>_kb (max peak RSS, KB).
measure() {
  local name=$1; shift
  local times=() peak=0
  for _ in $(seq "$runs"); do
    local t0 t1 kb
    t0=$(date +%s%N)
    /usr/bin/time -o "$work/time" -f "%M" "$@" > /dev/null 2>&1
    t1=$(date +%s%N)
    kb=$(tail -1 "$work/time")
    times+=($((t1 - t0)))
    [ "$kb" -gt "$peak" ] && peak=$kb
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  printf -v "${name}_s" '%s' "$(awk -v n="$median" 'BEGIN { printf "%.3f", n / 1e9 }')"
  printf -v "${name}_kb" '%s' "$peak"
}
measure kubectl kubectl kustomize "$overlay"
measure ours "$target/release/gitops" build "$overlay"

echo "large overlay: $apps bases, $objects objects, $bytes bytes of YAML; outputs $same"
echo "kubectl kustomize: ${kubectl_s} s, peak RSS ${kubectl_kb} KB (median of $runs)"
echo "gitops build:      ${ours_s} s, peak RSS ${ours_kb} KB (median of $runs)"
awk -v k="$kubectl_s" -v o="$ours_s" -v km="$kubectl_kb" -v om="$ours_kb" 'BEGIN {
  printf "speed ratio: %.1fx faster\nmemory ratio: %.2f of kubectl'"'"'s peak RSS\n", k / o, om / km }'
