#!/usr/bin/env bash
# build-helm.sh: builds the helm CLI (helm.sh/helm/v3 HELM_VERSION, default v3.22.0) from the
# Go module proxy into $OBS_CACHE/bin (default $HOME/.cache/obs/bin) and prints its path.
# Skips the build when that version is already there. A throwaway module under
# $OBS_CACHE/src pins the version, so nothing touches the obs module's go.mod.
set -euo pipefail
CACHE=${OBS_CACHE:-$HOME/.cache/obs}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
BIN=$CACHE/bin
mkdir -p "$BIN" "$CACHE/src"
exec 9>"$CACHE/helm-build.lock"; flock 9
if [ -x "$BIN/helm" ] && "$BIN/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx -- "$HELM_VERSION"; then
  echo "$BIN/helm"; exit 0
fi
src=$CACHE/src/helm-$HELM_VERSION
mkdir -p "$src"; cd "$src"
if [ ! -f go.mod ]; then
  printf 'module obs.local/helmbuild\n\ngo 1.26\n' >go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n' >tools.go
  GOFLAGS=-mod=mod go get "helm.sh/helm/v3@$HELM_VERSION" >&2
fi
# helm reads its version from this variable; build info alone would say (devel).
CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$BIN/helm" helm.sh/helm/v3/cmd/helm >&2
echo "$BIN/helm"
