#!/usr/bin/env bash
# Build the real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler) and the real node's binaries (kubelet, kube-proxy, plus the test node's
# own pause, fake-gpu-plugin and probe from tests/cluster/go/kubernetes/cmd) from source
# via the Go module proxy, for the tests in tests/k8s; then packages pause and probe as
# OCI image archives for the node's containerd (no registry).
#
# Output: ~/.cache/kubesweep/k8s-<version>/bin  (version: tests/cluster/VERSION)
#         ~/.cache/kubesweep/images/{pause,probe}.tar   (tests/cluster/oci_archive.py)
# Idempotent: does nothing when the binaries are there and were built from the current
# tests/cluster/go/*/go.{mod,sum}. Go caches live under ~/.cache/kubesweep/go so CI can
# cache that one directory. Set KUBESWEEP_CACHE to move everything elsewhere.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLUSTER="$ROOT/tests/cluster"
CACHE=${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}

die() { echo "build-control-plane: ERROR: $*" >&2; exit 1; }
log() { echo "build-control-plane: $*" >&2; }

K8S_VERSION=$(tr -d '[:space:]' < "$CLUSTER/VERSION") || die "cannot read $CLUSTER/VERSION"
[[ $K8S_VERSION =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "bad version '$K8S_VERSION' in $CLUSTER/VERSION"
K8S_MINOR=${BASH_REMATCH[1]}
BIN="$CACHE/k8s-$K8S_VERSION/bin"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
          pause fake-gpu-plugin probe)
IMAGES="$CACHE/images"

export GOMODCACHE="$CACHE/go/mod"
export GOCACHE="$CACHE/go/build"
export CGO_ENABLED=0
# go.sum is committed: never let a build rewrite the pins.
export GOFLAGS="-mod=readonly -buildvcs=false"
export GOWORK=off

# The stamp ties the binaries to the exact module pins and build flags, so bumping a
# version (or changing this script's flags) rebuilds instead of silently reusing.
STAMP_INPUT=$(cat "$CLUSTER"/go/kubernetes/go.mod "$CLUSTER"/go/kubernetes/go.sum \
  "$CLUSTER"/go/etcd/go.mod "$CLUSTER"/go/etcd/go.sum; \
  cat "$CLUSTER"/go/kubernetes/cmd/*/*.go; echo "flags-v2")
STAMP=$(printf '%s' "$STAMP_INPUT" | sha256sum | cut -d' ' -f1)

up_to_date() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$BIN/$b" ] || return 1; done
  [ "$(cat "$BIN/.stamp" 2>/dev/null)" = "$STAMP" ]
}

# The node's images (pause: the sandbox; probe: the tests' tool) are cheap to (re)make;
# each archive's own stamp is the binary's hash plus the packer and the image name.
node_images() {
  local b name stamp
  mkdir -p "$IMAGES"
  for b in pause probe; do
    name=$(python3 "$CLUSTER/oci_archive.py" --print-name "$b") || die "cannot run tests/cluster/oci_archive.py"
    stamp=$( (sha256sum < "$BIN/$b"; sha256sum < "$CLUSTER/oci_archive.py"; echo "$name") | sha256sum | cut -d' ' -f1)
    if [ -f "$IMAGES/$b.tar" ] && [ "$(cat "$IMAGES/.$b.stamp" 2>/dev/null)" = "$stamp" ]; then
      continue
    fi
    python3 "$CLUSTER/oci_archive.py" --name "$name" --binary "$BIN/$b" \
      --output "$IMAGES/$b.tar.tmp" || die "packaging the $b image failed"
    mv "$IMAGES/$b.tar.tmp" "$IMAGES/$b.tar"
    echo "$stamp" > "$IMAGES/.$b.stamp"
    log "image $name: $IMAGES/$b.tar"
  done
}

if up_to_date && [ "${1:-}" != "--force" ]; then
  node_images
  log "up to date: $BIN"
  exit 0
fi

# --- Go toolchain --------------------------------------------------------------------
# Prefer the machine's go; the module's `go` line lets it fetch a newer toolchain from
# the module proxy itself (GOTOOLCHAIN=auto). Without any go, bootstrap the official
# toolchain module (golang.org/toolchain) straight from the proxy.
if ! command -v go >/dev/null; then
  GO_BOOTSTRAP=${GO_BOOTSTRAP:-go1.26.8}
  TC="$CACHE/go/toolchain/$GO_BOOTSTRAP"
  if [ ! -x "$TC/bin/go" ]; then
    command -v curl >/dev/null && command -v unzip >/dev/null \
      || die "go is not installed and curl/unzip are missing to bootstrap it"
    PROXY=${GOPROXY:-https://proxy.golang.org}; PROXY=${PROXY%%,*}
    URL="$PROXY/golang.org/toolchain/@v/v0.0.1-$GO_BOOTSTRAP.linux-amd64.zip"
    log "go not found; downloading $URL"
    TMPD=$(mktemp -d)
    curl -fsSL "$URL" -o "$TMPD/go.zip" || die "cannot download the Go toolchain from $URL"
    unzip -q "$TMPD/go.zip" -d "$TMPD" || die "cannot unzip the Go toolchain"
    mkdir -p "$(dirname "$TC")"
    rm -rf "$TC"; mv "$TMPD/golang.org/toolchain@v0.0.1-$GO_BOOTSTRAP.linux-amd64" "$TC"
    chmod +x "$TC"/bin/* "$TC"/pkg/tool/*/* 2>/dev/null || true
    rm -rf "$TMPD"
  fi
  export PATH="$TC/bin:$PATH"
fi
log "using $(go version)"

# --- build -----------------------------------------------------------------------------
OUT="$CACHE/k8s-$K8S_VERSION/bin.tmp.$$"
rm -rf "$OUT"; mkdir -p "$OUT"
trap 'rm -rf "$OUT"' EXIT

# Without these the components report v0.0.0 on /version and clients complain about skew.
VPKG=k8s.io/component-base/version
LDFLAGS="-s -w -X $VPKG.gitVersion=$K8S_VERSION -X $VPKG.gitMajor=1 -X $VPKG.gitMinor=$K8S_MINOR"
LDFLAGS="$LDFLAGS -X $VPKG.gitTreeState=clean -X $VPKG.buildDate=1970-01-01T00:00:00Z"
# The compile is CPU-bound and the machine is shared: stay nice.
BUILD=(nice -n 10 go build -trimpath)

start=$SECONDS
log "building etcd ($(tr -d '[:space:]' < "$CLUSTER/ETCD_VERSION")) ..."
(cd "$CLUSTER/go/etcd" && "${BUILD[@]}" -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3) \
  || die "etcd build failed (module: tests/cluster/go/etcd)"
log "etcd built after $((SECONDS - start))s"

for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
  log "building $cmd $K8S_VERSION ..."
  (cd "$CLUSTER/go/kubernetes" && "${BUILD[@]}" -ldflags "$LDFLAGS" -o "$OUT/$cmd" \
      "k8s.io/kubernetes/cmd/$cmd") \
    || die "$cmd build failed (module: tests/cluster/go/kubernetes)"
  log "$cmd built after $((SECONDS - start))s"
done

# The test node's helpers: static (CGO_ENABLED=0), no version stamping needed.
for cmd in pause fake-gpu-plugin probe; do
  (cd "$CLUSTER/go/kubernetes" && "${BUILD[@]}" -ldflags "-s -w" -o "$OUT/$cmd" "./cmd/$cmd") \
    || die "$cmd build failed (tests/cluster/go/kubernetes/cmd/$cmd)"
done
log "pause, fake-gpu-plugin, probe built after $((SECONDS - start))s"

echo "$STAMP" > "$OUT/.stamp"
rm -rf "$BIN"; mv "$OUT" "$BIN"
trap - EXIT
node_images
log "done in $((SECONDS - start))s: $BIN"
