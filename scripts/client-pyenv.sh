#!/usr/bin/env bash
# Makes (once) the virtualenv of the client tests, $BUILD_DIR/pyenv (default build/pyenv),
# installs the retryd package from client/python into it (a regular, non-editable install: it
# exercises the build hook that generates the stubs) and then the given pip requirements, and
# prints the virtualenv's python. Used by scripts/test-clients.sh and scripts/test-celery.sh.
#
#   vpy="$(bash scripts/client-pyenv.sh "client/python[test]" requests)"
#
# $PYTHON (default python3) makes the virtualenv; the default python3 may be a pyenv build, so
# Debian's /usr/bin/python3 (python3-venv, from install-deps.sh clients) is the fallback.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) venv="$BUILD_DIR/pyenv" ;; *) venv="$repo/$BUILD_DIR/pyenv" ;; esac
PYTHON="${PYTHON:-python3}"
if [[ ! -x "$venv/bin/python" ]]; then
  if ! "$PYTHON" -m venv "$venv" >&2 2>/dev/null; then
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv" >&2
  fi
fi
vpy="$venv/bin/python"
"$vpy" -m pip install -q --upgrade pip >&2
"$vpy" -m pip install -q --force-reinstall --no-deps "$repo/client/python" >&2
if [[ $# -gt 0 ]]; then
  "$vpy" -m pip install -q "$@" >&2
fi
echo "$vpy"
