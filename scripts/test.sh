#!/usr/bin/env bash
# test.sh runs every test of obs: vet, unit tests with -race, and the
# integration suites in test/ against real peers: a real OpenTelemetry
# Collector (scripts/build-otelcol.sh), a real kube-apiserver with etcd
# (scripts/k8s-build.sh), Debian's node exporter, and Docker for the chaos
# suite. Big builds are cached under $HOME/.cache. With CI=true a missing
# peer fails the run instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$bad" ]]; then echo "gofmt would change: $bad"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== real peers"
scripts/build-otelcol.sh >/dev/null
scripts/k8s-build.sh >/dev/null
scripts/install-node-exporter.sh

# Both stages run even when the first fails, so one run shows everything.
status=0
echo "== unit tests (-race)"
go test -race -timeout 20m $(go list ./... | grep -v /test/) || status=1

echo "== integration tests"
# -count=1: these drive real processes and peers; never trust a cached pass.
go test -count=1 -timeout 30m -p 1 ./test/... || status=1
exit $status
