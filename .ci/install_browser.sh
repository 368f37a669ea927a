#!/usr/bin/env bash
# Debian's Chromium (+ an emoji font, so screenshots show the app's icons) for the end-to-end browser
# test (tests/e2e) and `python -m flowers_core.bench.app_benchmark`. Playwright drives /usr/bin/chromium
# directly: never `playwright install` (it downloads browsers from the internet).
# Idempotent and quiet: nothing is fetched when both packages are already installed.
set -euo pipefail
PKGS="chromium fonts-noto-color-emoji"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
# shellcheck disable=SC2086
if ! { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
echo "installed:$missing ($(/usr/bin/chromium --version 2>/dev/null))"
