#!/usr/bin/env bash
# Build kwok (sigs.k8s.io/kwok, the `kwok` controller: fake nodes and pod lifecycles with
# no processes) from Go modules via the Go module proxy, for benchmarks/scale_kwok.py.
# Not needed by the tests or CI.
#
# Output: ~/.cache/kubesweep/kwok-<version>/bin/kwok  (version pinned in
#         tests/cluster/go/kwok/go.mod; go.sum is committed)
# Idempotent: does nothing when the binary was built from the current go.{mod,sum}.
# Uses the same Go caches as scripts/build-control-plane.sh (~/.cache/kubesweep/go) and
# the same toolchain rule (the machine's go; run build-control-plane.sh first otherwise).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODULE="$ROOT/tests/cluster/go/kwok"
CACHE=${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}

die() { echo "build-kwok: ERROR: $*" >&2; exit 1; }
log() { echo "build-kwok: $*" >&2; }

VERSION=$(awk '$1 == "require" && $2 == "sigs.k8s.io/kwok" {print $3}' "$MODULE/go.mod")
[ -n "$VERSION" ] || die "no 'require sigs.k8s.io/kwok vX.Y.Z' line in $MODULE/go.mod"
BIN="$CACHE/kwok-$VERSION/bin"

export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/build"
export CGO_ENABLED=0
# go.sum is committed: never let a build rewrite the pins.
export GOFLAGS="-mod=readonly -buildvcs=false"
export GOWORK=off

STAMP=$( (cat "$MODULE/go.mod" "$MODULE/go.sum"; echo "flags-v1") | sha256sum | cut -d' ' -f1)
if [ -x "$BIN/kwok" ] && [ "$(cat "$BIN/.stamp" 2>/dev/null)" = "$STAMP" ] \
    && [ "${1:-}" != "--force" ]; then
  log "up to date: $BIN/kwok"
  echo "$BIN/kwok"
  exit 0
fi

if ! command -v go >/dev/null; then
  TC=$(ls -d "$CACHE"/go/toolchain/go*/bin 2>/dev/null | tail -1 || true)
  [ -n "$TC" ] || die "go not found: run scripts/build-control-plane.sh first (it bootstraps Go)"
  export PATH="$TC:$PATH"
fi
log "using $(go version); building kwok $VERSION ..."

mkdir -p "$BIN"
OUT="$BIN/kwok.tmp.$$"
trap 'rm -f "$OUT"' EXIT
start=$SECONDS
# The compile is CPU-bound and the machine is shared: stay nice.
(cd "$MODULE" && nice -n 10 go build -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$VERSION" \
    -o "$OUT" sigs.k8s.io/kwok/cmd/kwok) || die "kwok build failed (module: $MODULE)"
mv "$OUT" "$BIN/kwok"
echo "$STAMP" > "$BIN/.stamp"
log "built $BIN/kwok in $((SECONDS - start))s"
echo "$BIN/kwok"
