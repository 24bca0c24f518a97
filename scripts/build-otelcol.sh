#!/usr/bin/env bash
# build-otelcol.sh builds a real OpenTelemetry Collector with the official
# builder (ocb), for use as a test or benchmark peer of obs. Without
# arguments it builds the core peer (OTLP in and out, batch, memory
# limiter, file exporter, file storage); scripts/build-otelcol-contrib.sh
# calls it with more contrib components and another name.
#
# Usage: build-otelcol.sh [--name N] [--module M] [--description D] [component...]
#   component  a contrib module path below opentelemetry-collector-contrib,
#              e.g. receiver/hostmetricsreceiver; its kind (receiver,
#              exporter, processor, extension) is its first element. It is
#              added after the core peer's components of that kind.
#
# Output: $HOME/.cache/obs/<name>-<version>/<name> (the core peer's name is
# otelcol, so otelcol-<version>/otelcol); its path is printed as the last
# line of stdout. All build chatter goes to stderr.
#
# Idempotent: the builder manifest of the last successful build is kept
# next to the binary; when the binary reports the expected version and the
# manifest is unchanged the script only prints its path, so a rebuild
# happens only when the version or the component list changes. Parallel
# callers serialise on a flock so the collector is built once. Generated
# sources live under the cache directory, never inside the repository.
#
# Environment:
#   OTELCOL_VERSION  collector version to build (default 0.165.0)
#   OTELCOL_STABLE_VERSION  matching 1.x version of stable core modules
#                    (default 1.71.0, the pair of 0.165.0)
#   OBS_CACHE_DIR    cache root (default $HOME/.cache/obs)
#   OTELCOL_REBUILD  set to 1 to force a rebuild
set -euo pipefail

name=otelcol
module=github.com/obs-dev/otelcol-peer
description="OpenTelemetry Collector built as a test peer for obs"
extra=()
while (($#)); do
	case "$1" in
	--name) name="$2"; shift 2 ;;
	--module) module="$2"; shift 2 ;;
	--description) description="$2"; shift 2 ;;
	-*) printf 'build-otelcol: unknown flag %s\n' "$1" >&2; exit 2 ;;
	receiver/* | exporter/* | processor/* | extension/*) extra+=("$1"); shift ;;
	*) printf 'build-otelcol: component %s: want receiver/..., exporter/..., processor/... or extension/...\n' "$1" >&2; exit 2 ;;
	esac
done

version="${OTELCOL_VERSION:-0.165.0}"
cache_root="${OBS_CACHE_DIR:-${HOME}/.cache/obs}"
dir="${cache_root}/${name}-${version}"
bin="${dir}/${name}"

export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

log() { printf '%s: %s\n' "$(basename "$0" .sh)" "$*" >&2; }

core="go.opentelemetry.io/collector"
contrib="github.com/open-telemetry/opentelemetry-collector-contrib"
# Stable core modules (confmap providers) follow 1.x: 0.165.0 pairs with 1.71.0.
stable="v${OTELCOL_STABLE_VERSION:-1.71.0}"

# The extra components of one kind, as manifest lines.
extra_of() {
	local c
	for c in "${extra[@]+"${extra[@]}"}"; do
		case "$c" in
		"$1"/*) printf '  - gomod: %s/%s v%s\n' "${contrib}" "$c" "${version}" ;;
		esac
	done
}

# 1. The builder manifest: the cache key, with the version. Without extra
# components it is byte for byte the manifest the core peer always had.
manifest="$(
	cat <<YAML
dist:
  module: ${module}
  name: ${name}
  description: ${description}
  version: ${version}
  output_path: ${dir}/src
receivers:
  - gomod: ${core}/receiver/otlpreceiver v${version}
$(extra_of receiver)
exporters:
  - gomod: ${core}/exporter/otlpexporter v${version}
  - gomod: ${core}/exporter/otlphttpexporter v${version}
  - gomod: ${core}/exporter/debugexporter v${version}
  - gomod: ${contrib}/exporter/fileexporter v${version}
$(extra_of exporter)
extensions:
  - gomod: ${contrib}/extension/storage/filestorage v${version}
$(extra_of extension)
processors:
  - gomod: ${core}/processor/batchprocessor v${version}
  - gomod: ${core}/processor/memorylimiterprocessor v${version}
$(extra_of processor)
providers:
  - gomod: ${core}/confmap/provider/envprovider ${stable}
  - gomod: ${core}/confmap/provider/fileprovider ${stable}
  - gomod: ${core}/confmap/provider/yamlprovider ${stable}
YAML
)"
# $(...) of an empty kind leaves an empty line: drop them
manifest="$(printf '%s\n' "${manifest}" | sed '/^$/d')"

is_built() {
	[[ -x "${bin}" ]] || return 1
	[[ "$(cat "${dir}/builder-config.yaml" 2>/dev/null)" == "${manifest}" ]] || return 1
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

# 2. The builder itself, installed into the cache (not into GOPATH/bin).
builder="${cache_root}/bin/builder-v${version}"
if [[ ! -x "${builder}" ]]; then
	log "installing builder v${version}"
	tmpbin="$(mktemp -d "${cache_root}/bin-tmp.XXXXXX")"
	GOBIN="${tmpbin}" go install "go.opentelemetry.io/collector/cmd/builder@v${version}" >&2
	mkdir -p "${cache_root}/bin"
	mv -f "${tmpbin}/builder" "${builder}"
	rmdir "${tmpbin}"
fi

# The manifest is kept as builder-config.yaml only once its binary is
# built: a failed build must not leave an old binary under a new key.
src="${dir}/src"
rm -rf "${src}"
mkdir -p "${src}"
printf '%s\n' "${manifest}" >"${dir}/builder-config.yaml.new"

# 3. Generate sources. The builder runs `go mod tidy`, which can fail on
# modules that only the components' tests import; then fall back to
# generating without module resolution and tidy tolerantly ourselves.
log "generating sources in ${src}"
if ! "${builder}" --config "${dir}/builder-config.yaml.new" --skip-compilation >&2; then
	log "builder module resolution failed; generating only and running go mod tidy -e"
	"${builder}" --config "${dir}/builder-config.yaml.new" --skip-compilation --skip-get-modules >&2
	(cd "${src}" && go mod tidy -e >&2)
fi

# 4. Compile. Write to a temporary name and rename so that a half-written
# binary is never mistaken for a finished one.
log "compiling"
(cd "${src}" && go build -trimpath -ldflags "-s -w" -o "${bin}.tmp" . >&2)
mv -f "${bin}.tmp" "${bin}"
mv -f "${dir}/builder-config.yaml.new" "${dir}/builder-config.yaml"

if ! is_built; then
	log "built binary does not report version ${version}: $("${bin}" --version 2>&1 || true)"
	exit 1
fi
log "built ${bin} in $(( $(date +%s) - start ))s"
echo "${bin}"
