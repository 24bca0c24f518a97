#!/bin/sh
# Installs Debian's prometheus-node-exporter (a real scrape target for the
# scrape/ tests) when it is missing. CI runs as root; elsewhere it uses sudo.
set -eu
if command -v prometheus-node-exporter >/dev/null 2>&1 || [ -x /usr/bin/prometheus-node-exporter ]; then
	exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
# The package's service is not started: tests run the binary themselves.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-node-exporter ||
	{ $SUDO apt-get update && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus-node-exporter; }
