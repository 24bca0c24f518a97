#!/usr/bin/env bash
# build-otelcol.sh builds a real OpenTelemetry Collector (core + a few contrib
# components) with the official builder (ocb), for use as a test peer of obs.
#
# Output: $HOME/.cache/obs/otelcol-<version>/otelcol; its path is printed as
# the last line of stdout. All build chatter goes to stderr.
#
# Idempotent: when the binary exists and reports the expected version the
# script only prints its path. Parallel callers serialise on a flock so the
# collector is built once. Generated sources live under the cache directory,
# never inside the repository.
#
# Environment:
#   OTELCOL_VERSION  collector version to build (default 0.165.0)
#   OTELCOL_STABLE_VERSION  matching 1.x version of stable core modules
#                    (default 1.71.0, the pair of 0.165.0)
#   OBS_CACHE_DIR    cache root (default $HOME/.cache/obs)
#   OTELCOL_REBUILD  set to 1 to force a rebuild
set -euo pipefail

version="${OTELCOL_VERSION:-0.165.0}"
cache_root="${OBS_CACHE_DIR:-${HOME}/.cache/obs}"
dir="${cache_root}/otelcol-${version}"
bin="${dir}/otelcol"

export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

log() { printf 'build-otelcol: %s\n' "$*" >&2; }

is_built() {
	[[ -x "${bin}" ]] || return 1
	local out
	out="$("${bin}" --version 2>/dev/null)" || return 1
	[[ "${out}" == *"${version}"* ]]
}

if [[ "${OTELCOL_REBUILD:-0}" != 1 ]] && is_built; then
	echo "${bin}"
	exit 0
fi

command -v go >/dev/null 2>&1 || { log "go not found in PATH"; exit 1; }
command -v flock >/dev/null 2>&1 || { log "flock not found in PATH"; exit 1; }

mkdir -p "${dir}"
exec 9>"${dir}/.lock"
log "waiting for build lock ${dir}/.lock"
flock 9

# Another caller may have finished the build while we waited for the lock.
if [[ "${OTELCOL_REBUILD:-0}" != 1 ]] && is_built; then
	echo "${bin}"
	exit 0
fi

start=$(date +%s)

# 1. The builder itself, installed into the cache (not into GOPATH/bin).
builder="${cache_root}/bin/builder-v${version}"
if [[ ! -x "${builder}" ]]; then
	log "installing builder v${version}"
	tmpbin="$(mktemp -d "${cache_root}/bin-tmp.XXXXXX")"
	GOBIN="${tmpbin}" go install "go.opentelemetry.io/collector/cmd/builder@v${version}" >&2
	mkdir -p "${cache_root}/bin"
	mv -f "${tmpbin}/builder" "${builder}"
	rmdir "${tmpbin}"
fi

# 2. The builder manifest. Confmap providers are versioned with pdata (1.x).
src="${dir}/src"
rm -rf "${src}"
mkdir -p "${src}"
core="go.opentelemetry.io/collector"
contrib="github.com/open-telemetry/opentelemetry-collector-contrib"
# Stable core modules (confmap providers) follow 1.x: 0.165.0 pairs with 1.71.0.
stable="v${OTELCOL_STABLE_VERSION:-1.71.0}"
cat >"${dir}/builder-config.yaml" <<YAML
dist:
  module: github.com/obs-dev/otelcol-peer
  name: otelcol
  description: OpenTelemetry Collector built as a test peer for obs
  version: ${version}
  output_path: ${src}
receivers:
  - gomod: ${core}/receiver/otlpreceiver v${version}
exporters:
  - gomod: ${core}/exporter/otlpexporter v${version}
  - gomod: ${core}/exporter/otlphttpexporter v${version}
  - gomod: ${core}/exporter/debugexporter v${version}
  - gomod: ${contrib}/exporter/fileexporter v${version}
extensions:
  - gomod: ${contrib}/extension/storage/filestorage v${version}
processors:
  - gomod: ${core}/processor/batchprocessor v${version}
  - gomod: ${core}/processor/memorylimiterprocessor v${version}
providers:
  - gomod: ${core}/confmap/provider/envprovider ${stable}
  - gomod: ${core}/confmap/provider/fileprovider ${stable}
  - gomod: ${core}/confmap/provider/yamlprovider ${stable}
YAML

# 3. Generate sources. The builder runs `go mod tidy`, which can fail on
# modules that only the components' tests import; then fall back to
# generating without module resolution and tidy tolerantly ourselves.
log "generating sources in ${src}"
if ! "${builder}" --config "${dir}/builder-config.yaml" --skip-compilation >&2; then
	log "builder module resolution failed; generating only and running go mod tidy -e"
	"${builder}" --config "${dir}/builder-config.yaml" --skip-compilation --skip-get-modules >&2
	(cd "${src}" && go mod tidy -e >&2)
fi

# 4. Compile. Write to a temporary name and rename so that a half-written
# binary is never mistaken for a finished one.
log "compiling"
(cd "${src}" && go build -trimpath -ldflags "-s -w" -o "${bin}.tmp" . >&2)
mv -f "${bin}.tmp" "${bin}"

if ! is_built; then
	log "built binary does not report version ${version}: $("${bin}" --version 2>&1 || true)"
	exit 1
fi
log "built ${bin} in $(( $(date +%s) - start ))s"
echo "${bin}"
