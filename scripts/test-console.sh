#!/usr/bin/env bash
# The web console's end-to-end tests (issue 21): Debian's headless Chromium, driven by Selenium
# through Debian's chromedriver (nothing downloads a browser), against the real retryd binary with
# seeded data (tests/console/). Screenshots of every page go to build/artifacts/console/.
#
#   bash scripts/test-console.sh            # expects the server built (bash scripts/build.sh)
#
# Installs what it needs: `scripts/install-deps.sh console` (chromium, chromium-driver,
# python3-venv, openssl), then the virtualenv build/pyenv (scripts/client-pyenv.sh) with the
# retryd package and selenium from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) build="$BUILD_DIR" ;; *) build="$repo/$BUILD_DIR" ;; esac
export RETRYD_BIN="${RETRYD_BIN:-$build/server/retryd}"
if [[ ! -x "$RETRYD_BIN" ]]; then
  echo "test-console: retryd binary not found at $RETRYD_BIN (build it first: bash scripts/build.sh)" >&2
  exit 1
fi

bash scripts/install-deps.sh console
for tool in chromium chromedriver openssl; do
  type -P "$tool" >/dev/null || { echo "test-console: $tool is missing after install-deps.sh console" >&2; exit 1; }
done
export RETRYD_CHROMIUM="$(type -P chromium)" RETRYD_CHROMEDRIVER="$(type -P chromedriver)"
echo "test-console: $("$RETRYD_CHROMIUM" --version 2>/dev/null | head -1), $("$RETRYD_CHROMEDRIVER" --version | head -1)"

vpy="$(BUILD_DIR="$build" bash scripts/client-pyenv.sh "$repo/client/python[test]" "selenium>=4.10,<5")"
export RETRYD_CONSOLE_ARTIFACTS="$build/artifacts/console"
rm -rf "$RETRYD_CONSOLE_ARTIFACTS"
mkdir -p "$RETRYD_CONSOLE_ARTIFACTS"
# Selenium must use the chromedriver given, never fetch one.
export SE_OFFLINE=true
(cd "$repo/tests/console" && "$vpy" -m pytest -q -p no:cacheprovider -o addopts="" .)
echo "test-console: screenshots in $RETRYD_CONSOLE_ARTIFACTS: $(cd "$RETRYD_CONSOLE_ARTIFACTS" && ls *.png | tr '\n' ' ')"
