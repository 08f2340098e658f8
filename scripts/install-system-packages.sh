#!/usr/bin/env bash
# Debian packages the test suite uses: promtool and prometheus (rule tests, a real scrape), wrk (bench).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus wrk >/dev/null
command -v promtool
