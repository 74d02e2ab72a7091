#!/usr/bin/env bash
# Install Debian's prometheus package, which provides the `prometheus` server and `promtool`.
# The observability tests need both: promtool for `check metrics` / `test rules`, the server for
# the integration test that evaluates every dashboard and alert expression against live data.
# Idempotent: returns at once when both binaries are already on PATH.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    echo "prometheus already installed: $(prometheus --version 2>&1 | head -n 1)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends prometheus

# The package starts a system service where an init system runs; the tests start their own
# server on an ephemeral loopback port, so a running service does no harm, but stop it when
# we can so it does not compete for CPU.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
fi

prometheus --version 2>&1 | head -n 1
promtool --version 2>&1 | head -n 1
