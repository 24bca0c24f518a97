#!/usr/bin/env bash
# build-image.sh [TAG]: builds the obs container image (deploy/Dockerfile) with the local
# Docker engine. The binary is static (CGO_ENABLED=0), stripped of paths (-trimpath) and
# stamped with the git revision through Go's build info (`obs version` prints it); the CA
# bundle of the build machine is copied in for TLS exporters. No base image is pulled.
# Env: OBS_IMAGE (default obs:dev; TAG wins), CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-${OBS_IMAGE:-obs:dev}}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cd "$root"
CGO_ENABLED=0 go build -trimpath -buildvcs=auto -ldflags="-s -w" -o "$ctx/obs" .
cp deploy/Dockerfile "$ctx/Dockerfile"
if [ -f "$ca" ]; then cp "$ca" "$ctx/ca-certificates.crt"; else echo "build-image: no CA bundle at $ca; the image has no roots" >&2; fi
docker build -q --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" -t "$tag" "$ctx" >/dev/null
echo "$tag"
