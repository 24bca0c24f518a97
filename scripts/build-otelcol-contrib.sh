#!/usr/bin/env bash
# build-otelcol-contrib.sh builds a second OpenTelemetry Collector: the
# core peer of scripts/build-otelcol.sh plus the contrib prometheus,
# filelog and hostmetrics receivers, the peer of obs in the scrape,
# filelog and hostmetrics benchmarks (bench/ -scenario scrape|filelog|hostmetrics).
#
# It is a separate binary because the prometheus receiver pulls in
# Prometheus' service discovery (Kubernetes client, cloud SDKs): a cold
# build of it took 20 minutes on the project's loaded 2-core machine, too
# long to put in front of every test that only needs the OTLP peer.
#
# Output: $HOME/.cache/obs/otelcol-contrib-peer-<version>/otelcol-contrib-peer;
# its path is printed as the last line of stdout. Rebuilt only when the
# version or the component list below changes (see build-otelcol.sh for
# the environment it reads).
set -euo pipefail

exec "$(dirname "$0")/build-otelcol.sh" \
	--name otelcol-contrib-peer \
	--module github.com/obs-dev/otelcol-contrib-peer \
	--description "OpenTelemetry Collector with prometheus, filelog and hostmetrics receivers, a benchmark peer for obs" \
	receiver/prometheusreceiver \
	receiver/filelogreceiver \
	receiver/hostmetricsreceiver
