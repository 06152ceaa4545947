#!/usr/bin/env bash
# Regenerates client/go/gen/retryd/v1 from proto/retryd/v1 with pinned plugins.
#   bash client/go/generate.sh            # write the generated code (committed)
#   bash client/go/generate.sh --check    # fail if the committed code differs from a fresh run
# Needs protoc (Debian: protobuf-compiler) and Go; the plugins are `go install`ed from the module
# proxy into $GOBIN (default <repo>/build/gobin).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
PROTOC_GEN_GO_VERSION=v1.36.6
PROTOC_GEN_GO_GRPC_VERSION=v1.5.1
export GOBIN="${GOBIN:-$repo/build/gobin}"
mkdir -p "$GOBIN"
want_go="protoc-gen-go $PROTOC_GEN_GO_VERSION"
if [[ ! -x "$GOBIN/protoc-gen-go" ]] || [[ "$("$GOBIN/protoc-gen-go" --version 2>/dev/null)" != "$want_go" ]]; then
  go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [[ ! -x "$GOBIN/protoc-gen-go-grpc" ]] || [[ "$("$GOBIN/protoc-gen-go-grpc" --version 2>/dev/null)" != "protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION#v}" ]]; then
  go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi
out="$here"
check=0
if [[ "${1:-}" == "--check" ]]; then
  check=1
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/gen/retryd/v1"
PATH="$GOBIN:$PATH" protoc -I "$repo/proto" \
  --go_out="$out" --go_opt=module=github.com/retryd/retryd/client/go \
  --go-grpc_out="$out" --go-grpc_opt=module=github.com/retryd/retryd/client/go \
  "$repo"/proto/retryd/v1/*.proto
if [[ $check == 1 ]]; then
  if ! diff -ru "$here/gen" "$out/gen"; then
    echo "client/go/gen is stale: run bash client/go/generate.sh" >&2
    exit 1
  fi
  echo "client/go/gen is up to date"
fi
