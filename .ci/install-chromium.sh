#!/usr/bin/env bash
# Install Debian's chromium package: tests/test_backtest_report.py opens the backtest's report.html
# in headless Chromium over the DevTools protocol and checks every plot renders with no console error.
# Idempotent: returns at once when chromium is already on PATH.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    # (Debian's chromium is a wrapper script whose --version chatters on some machines: ask dpkg)
    echo "chromium already installed: $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo '?')"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium

echo "chromium installed: $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo '?')"
