#!/usr/bin/env bash
# Builds the pinned control-plane binaries through the Go module proxy into a cache outside the
# clone, keyed by the versions, and reuses them when present. No Docker, no downloads of prebuilt
# binaries: everything is compiled from modules.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
cache_root=${DAYZERO_CACHE:-$HOME/.cache/dayzero}
key="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
out="$cache_root/k8s/$key"
bin="$out/bin"
if [[ -f "$out/.complete" ]]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
log() { echo "[cluster-build] $*" >&2; }
start=$(date +%s)

# --- Kubernetes: a wrapper module that replaces each staging module with its published v0.Y.Z.
if [[ ! -x "$bin/kube-apiserver" || ! -x "$bin/kubectl" ]]; then
  log "kubernetes $K8S_VERSION"
  minor=$(echo "$K8S_VERSION" | cut -d. -f2)
  patch=$(echo "$K8S_VERSION" | cut -d. -f3)
  staging_version="v0.${minor}.${patch}"
  modfile=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  mkdir -p "$work/k8s"
  {
    echo "module dayzero.dev/k8s-wrapper"
    echo
    echo "go $(sed -n 's/^go //p' "$modfile")"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#replace \1 => \1 '"$staging_version"'#p' "$modfile"
  } > "$work/k8s/go.mod"
  cat > "$work/k8s/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubectl/pkg/cmd"
)
GO
  # The module proxy records the tag's time but not its commit, so only the time is stamped.
  info=$(dirname "$modfile")/$K8S_VERSION.info
  built=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info")
  pkg=k8s.io/component-base/version
  cgo=k8s.io/client-go/pkg/version
  ld="-s -w"
  for p in $pkg $cgo; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=${built:-1970-01-01T00:00:00Z}"
  done
  (cd "$work/k8s" && go mod tidy -e >/dev/null 2>&1 || true; go mod tidy)
  (cd "$work/k8s" && go build -trimpath -ldflags "$ld" -o "$bin/" \
     k8s.io/kubernetes/cmd/kube-apiserver \
     k8s.io/kubernetes/cmd/kube-controller-manager \
     k8s.io/kubernetes/cmd/kube-scheduler \
     k8s.io/kubernetes/cmd/kubectl)
  log "kubernetes built in $(( $(date +%s) - start ))s"
fi

# --- etcd 3.6: a wrapper main around etcdmain; no replaces needed.
if [[ ! -x "$bin/etcd" ]]; then
  log "etcd $ETCD_VERSION"
  mkdir -p "$work/etcd"
  cat > "$work/etcd/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  printf 'module dayzero.dev/etcd-wrapper\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$work/etcd/go.mod"
  (cd "$work/etcd" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$bin/etcd" .)
  log "etcd built at $(( $(date +%s) - start ))s"
fi

# --- kwok and helm install straight from their modules.
if [[ ! -x "$bin/kwok" ]]; then
  log "kwok $KWOK_VERSION"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
fi
if [[ ! -x "$bin/helm" ]]; then
  log "helm $HELM_VERSION"
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
# kwok's stage YAMLs (pods Running, Jobs Succeeded) ship in its module.
kwokdir=$(cd "$work" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
rm -rf "$out/kwok-stages" && mkdir -p "$out/kwok-stages"
cp -r "$kwokdir/kustomize/stage/." "$out/kwok-stages/"
chmod -R u+w "$out/kwok-stages"
touch "$out/.complete"
log "done in $(( $(date +%s) - start ))s; cache $(du -sh "$out" | cut -f1) at $out"
echo "$bin"
