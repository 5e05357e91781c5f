#!/usr/bin/env bash
# Headless Chromium for gpuvec's browser test of the dashboard pages
# (tests/integration/test_dashboard_browser.py).
#   chromium.sh ensure | path
# `ensure` installs Debian's chromium when no chromium binary is on PATH; `path` prints the
# binary the test will use (exit 1 when there is none).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/common.sh"

binary() { command -v chromium || command -v chromium-browser || return 1; }

ensure() {
  if binary >/dev/null; then return 0; fi
  log "installing chromium (Debian)"
  apt_install chromium
  binary >/dev/null || { log "chromium is still missing after apt-get install"; return 1; }
}

case "${1:-}" in
  ensure) ensure ;;
  path) binary ;;
  *) echo "usage: $0 ensure | path" >&2; exit 2 ;;
esac
