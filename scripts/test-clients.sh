#!/usr/bin/env bash
# Sets up and runs the Python and Go client tests against the real retryd binary.
#
#   bash scripts/test-clients.sh            # expects the server built (bash scripts/build.sh)
#   RETRYD_BIN=/path/to/retryd bash scripts/test-clients.sh
#
# On a fresh Debian 12 it installs what it needs: Debian's packages with
# `scripts/install-deps.sh clients` (python3-venv and pip, protoc for the generated-code check,
# golang-go when the machine has no Go of its own; go.mod asks for Go 1.23, which Go >= 1.21
# fetches itself through the module proxy), then a virtualenv in build/pyenv
# (scripts/client-pyenv.sh) with the retryd package installed from client/python (pip generates
# the gRPC stubs from proto/ with grpcio-tools at build time), pytest and the optional
# requests/httpx.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
export RETRYD_BIN="${RETRYD_BIN:-$repo/$BUILD_DIR/server/retryd}"
if [[ ! -x "$RETRYD_BIN" ]]; then
  echo "test-clients: retryd binary not found at $RETRYD_BIN (build it first: bash scripts/build.sh)" >&2
  exit 1
fi

bash scripts/install-deps.sh clients
# A machine of this project's kind has Go in /usr/local/go, not always on PATH.
if ! type -P go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
for tool in go protoc; do
  type -P "$tool" >/dev/null || { echo "test-clients: $tool is missing after install-deps.sh clients" >&2; exit 1; }
done

# --- Python -------------------------------------------------------------------------------------
vpy="$(bash scripts/client-pyenv.sh "$repo/client/python[test]" requests httpx)"

echo "== pytest (client/python)"
(cd "$repo/client/python" && "$vpy" -m pytest -q -p no:cacheprovider)

# --- Go -----------------------------------------------------------------------------------------
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
