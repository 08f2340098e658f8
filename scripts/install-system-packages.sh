#!/usr/bin/env bash
# Debian packages the test suite uses: promtool and prometheus (rule tests, a real scrape), wrk (bench),
# chromium (the dashboard's browser test, driven by Playwright with executable_path=/usr/bin/chromium), a font,
# and libboost-dev (to build the dev reference confseq).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus wrk chromium fonts-dejavu-core libboost-dev >/dev/null
command -v promtool
command -v chromium
