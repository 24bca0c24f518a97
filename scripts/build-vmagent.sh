#!/usr/bin/env bash
# build-vmagent.sh builds VictoriaMetrics' vmagent from the Go module proxy,
# for use as the scraping peer of obs in the benchmarks (bench/).
#
# How: a throwaway module under the cache directory requires
# github.com/VictoriaMetrics/VictoriaMetrics at the wanted version, and
# `go build` compiles its app/vmagent package (the repository's vendor
# directory and Makefile are not used; replace directives of the
# VictoriaMetrics module do not apply to a dependency).
#
# Output: $HOME/.cache/obs/vmagent-<version>/vmagent; its path is printed as
# the last line of stdout. All build chatter goes to stderr.
#
# Idempotent: when the binary exists and reports the expected version the
# script only prints its path. Parallel callers serialise on a flock.
#
# Environment:
#   VMAGENT_VERSION  VictoriaMetrics version to build (default 1.151.0)
#   OBS_CACHE_DIR    cache root (default $HOME/.cache/obs)
#   VMAGENT_REBUILD  set to 1 to force a rebuild
set -euo pipefail

version="${VMAGENT_VERSION:-1.151.0}"
cache_root="${OBS_CACHE_DIR:-${HOME}/.cache/obs}"
dir="${cache_root}/vmagent-${version}"
bin="${dir}/vmagent"
vm="github.com/VictoriaMetrics/VictoriaMetrics"

export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

log() { printf 'build-vmagent: %s\n' "$*" >&2; }

is_built() {
	[[ -x "${bin}" ]] || return 1
	local out
	out="$("${bin}" -version 2>/dev/null)" || return 1
	[[ "${out}" == *"v${version}"* ]]
}

if [[ "${VMAGENT_REBUILD:-0}" != 1 ]] && is_built; then
	echo "${bin}"
	exit 0
fi

command -v go >/dev/null 2>&1 || { log "go not found in PATH"; exit 1; }
command -v flock >/dev/null 2>&1 || { log "flock not found in PATH"; exit 1; }

mkdir -p "${dir}"
exec 9>"${dir}/.lock"
log "waiting for build lock ${dir}/.lock"
flock 9

if [[ "${VMAGENT_REBUILD:-0}" != 1 ]] && is_built; then
	echo "${bin}"
	exit 0
fi

start=$(date +%s)
src="${dir}/src"
rm -rf "${src}"
mkdir -p "${src}"
cd "${src}"
cat >go.mod <<EOF
module github.com/obs-dev/vmagent-peer

go 1.26
EOF
log "resolving ${vm}/app/vmagent@v${version}"
go get "${vm}/app/vmagent@v${version}" >&2

# buildinfo.Version is what -version prints, as VictoriaMetrics' Makefile sets it.
log "compiling"
go build -trimpath \
	-ldflags "-s -w -X ${vm}/lib/buildinfo.Version=vmagent-obs-peer-v${version}" \
	-o "${bin}.tmp" "${vm}/app/vmagent" >&2
mv -f "${bin}.tmp" "${bin}"

if ! is_built; then
	log "built binary does not report version v${version}: $("${bin}" -version 2>&1 || true)"
	exit 1
fi
log "built ${bin} in $(( $(date +%s) - start ))s"
echo "${bin}"
