#!/usr/bin/env bash
# Install what tests/test_browser.py needs: Debian's chromium and the npm packages of this
# folder (igv = the page under test, playwright-core = drives chromium, @gmod/ucsc-hub = a
# second hub parser for tests/test_hub.py). Idempotent; .ci/run calls it before pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/bin/chromium ]; then
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends chromium
fi
if ! command -v node >/dev/null 2>&1; then
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends nodejs npm
fi
# playwright-core 1.65 wants node >= 20 (the machine image ships 20)
npm ci --prefix "$here" --no-audit --no-fund --loglevel=error
