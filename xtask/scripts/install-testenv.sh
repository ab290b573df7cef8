#!/usr/bin/env bash
# Installs the envtest-style control plane (etcd + kube-apiserver + kube-controller-manager)
# built from Debian's `kubernetes` source package (v1.20.2) into $1 (the assets folder).
# Idempotent: exits early when binaries of this recipe are already there (the marker file records
# the recipe; bump RECIPE when the build changes so stale caches are rebuilt).
set -euo pipefail
dest=${1:?usage: install-testenv.sh <assets-dir>}
RECIPE=2
if [ -x "$dest/kube-apiserver" ] && [ -x "$dest/kube-controller-manager" ] && [ -e "$dest/etcd" ] \
   && [ "$(cat "$dest/.recipe" 2>/dev/null)" = "$RECIPE" ]; then
  echo "testenv assets already in $dest" >&2; exit 0
fi
export DEBIAN_FRONTEND=noninteractive
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$suite" \
    | $sudo tee /etc/apt/sources.list.d/gitops-testenv-src.sources >/dev/null
fi
$sudo apt-get update -qq
# golang-github-modern-go-reflect2-dev: Kubernetes 1.20 vendors reflect2 v1.0.1, which crashes
# kube-apiserver (fatal error: fault in UnsafeMapType.UnsafeIterate) on the first custom resource
# write when built with Go >= 1.18; Debian's v1.0.2 replaces it below.
$sudo apt-get install -y -qq --no-install-recommends golang-go etcd-server rsync dpkg-dev make \
  golang-github-modern-go-reflect2-dev >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source --download-only kubernetes >/dev/null
dsc=$(ls kubernetes_*.dsc | head -n1)
dpkg-source --no-check -x "$dsc" src >/dev/null
cd src
fixed=/usr/share/gocode/src/github.com/modern-go/reflect2
vendored=vendor/github.com/modern-go/reflect2
rm -f "$vendored"/*.go "$vendored"/*.s
for f in "$fixed"/*.go "$fixed"/*.s; do
  case "$f" in *_test.go) ;; *) [ -e "$f" ] && cp "$f" "$vendored/" ;; esac
done
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
GOPATH=$PWD/.go CGO_ENABLED=0 HOME=$work GOFLAGS=-mod=vendor GOCACHE=$work/gocache \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1 || { tail -n 50 "$work/build.log" >&2; exit 1; }
mkdir -p "$dest"
for bin in kube-apiserver kube-controller-manager; do
  # Copy then rename: replacing a binary that a running test still executes fails with ETXTBSY.
  cp "_output/bin/$bin" "$dest/.$bin.new" && mv -f "$dest/.$bin.new" "$dest/$bin"
done
ln -sf /usr/bin/etcd "$dest/etcd"
echo "$RECIPE" > "$dest/.recipe"
echo "testenv assets installed in $dest" >&2
