#!/usr/bin/env bash
# Sets up and runs the Python and Go client tests against the real retryd binary.
#
#   bash scripts/test-clients.sh            # expects the server built (bash scripts/build.sh)
#   RETRYD_BIN=/path/to/retryd bash scripts/test-clients.sh
#
# On a fresh Debian 12 it installs what it needs: python3-venv (Debian), a virtualenv in
# build/pyenv with the retryd package installed from client/python (pip generates the gRPC stubs
# from proto/ with grpcio-tools at build time), pytest and the optional requests/httpx; Go
# (preinstalled, or Debian's golang-go; go.mod asks for Go 1.23, which Go >= 1.21 fetches itself
# through the module proxy), protoc for the generated-code check.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
export RETRYD_BIN="${RETRYD_BIN:-$repo/$BUILD_DIR/server/retryd}"
if [[ ! -x "$RETRYD_BIN" ]]; then
  echo "test-clients: retryd binary not found at $RETRYD_BIN (build it first: bash scripts/build.sh)" >&2
  exit 1
fi

apt_install() {
  if [[ $(id -u) -ne 0 ]]; then echo "test-clients: need root to apt-get install $*" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# --- Python -------------------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
venv="$repo/$BUILD_DIR/pyenv"
if [[ ! -x "$venv/bin/python" ]]; then
  if ! "$PYTHON" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    apt_install python3-venv python3-pip
    PYTHON=/usr/bin/python3
    "$PYTHON" -m venv "$venv"
  fi
fi
vpy="$venv/bin/python"
"$vpy" -m pip install -q --upgrade pip
# A regular (non-editable) install: exercises the build hook that generates the stubs.
"$vpy" -m pip install -q --force-reinstall --no-deps "$repo/client/python"
"$vpy" -m pip install -q "$repo/client/python[test]" requests httpx

echo "== pytest (client/python)"
(cd "$repo/client/python" && "$vpy" -m pytest -q -p no:cacheprovider)

# --- Go -----------------------------------------------------------------------------------------
if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    apt_install golang-go
  fi
fi
command -v protoc >/dev/null 2>&1 || apt_install protobuf-compiler
export GOBIN="$repo/$BUILD_DIR/gobin"
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"

echo "== go: generated code up to date"
bash "$repo/client/go/generate.sh" --check
echo "== go vet + go test (client/go)"
(cd "$repo/client/go" && go vet ./... && \
  RETRYD_PYTHON="$vpy" RETRYD_REQUIRE_PYTHON=1 go test -count=1 ./...)
if [[ -f "$repo/examples/go-consumer/go.mod" ]]; then
  echo "== go vet (examples/go-consumer)"
  (cd "$repo/examples/go-consumer" && go vet ./...)
fi
echo "test-clients: all client tests passed"
