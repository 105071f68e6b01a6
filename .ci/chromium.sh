#!/usr/bin/env bash
# Installs Debian's Chromium (/usr/bin/chromium) for the browser tests (dashboard, report),
# unless it is there already. Playwright drives this browser; it never downloads its own.
# When the install fails (no apt, no registry), the browser tests skip and say why.
# Usage: bash .ci/chromium.sh
set -uo pipefail
if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: no apt-get; the browser tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >&2; then
    echo "chromium.sh: could not install chromium; the browser tests will be skipped" >&2
fi
exit 0
