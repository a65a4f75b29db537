#!/usr/bin/env bash
# Install everything the tests need, then run every test. This is what CI runs (.ci/run).
#
#   bash scripts/test.sh               # everything
#   bash scripts/test.sh -m "not k8s"  # quick loop: no control plane, images, Prometheus
#   bash scripts/test.sh tests/unit    # extra arguments go to pytest
#
# Everything is installed into the virtualenv .venv of this checkout (created on the first
# run), never into the system Python: on a fresh clone (as in CI) that is a fresh
# virtualenv, so a test cannot rely on what happens to be installed. Builds the real
# Kubernetes control plane, kubelet and kube-proxy from source on the first full run
# (cached under ~/.cache/kubesweep; later runs reuse it). Run as root on Debian 12: the
# real node's packages come from apt and its tests need root.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=""
for arg in "$@"; do
  # `-m "not k8s"` deselects every test that needs the control plane, the images or
  # Prometheus (tests/conftest.py refuses a test using them that is not marked k8s)
  [ "$arg" = "not k8s" ] && QUICK=1
done

VENV=${KUBESWEEP_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating the virtualenv $VENV" >&2
  if ! python3 -c "import ensurepip" 2>/dev/null; then
    # Debian's python3 has no venv support until python3-venv is installed
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO=sudo
    $SUDO apt-get update -qq >&2
    $SUDO apt-get install -y -qq python3-venv >&2
  fi
  python3 -m venv "$VENV"
fi
PYTHON="$PWD/$VENV/bin/python"
export PATH="$PWD/$VENV/bin:$PATH" VIRTUAL_ENV="$PWD/$VENV"
export PYTHON

echo "== installing kubesweep and test dependencies into $VENV" >&2
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== installing kubectl and helm" >&2
TOOLS_BIN=$(bash scripts/install-tools.sh)
export PATH="$TOOLS_BIN:$PATH"

# the HTML report's tests open it in a real browser (no cluster needed: also when QUICK)
echo "== installing Chromium (Debian package, headless)" >&2
bash scripts/install-chromium.sh

if [ -z "$QUICK" ]; then
  echo "== installing Prometheus and promtool (Debian package)" >&2
  bash scripts/install-prometheus.sh >&2

  echo "== installing the real node's packages (containerd, runc, CNI plugins, buildah, ...)" >&2
  bash scripts/install-node-deps.sh

  echo "== building the Kubernetes control plane, kubelet, kube-proxy and node images (cached)" >&2
  bash scripts/build-control-plane.sh >&2

  echo "== building the operator and trial images (buildah, mmdebstrap; cached)" >&2
  bash scripts/build-images.sh >&2
fi

echo "== ruff" >&2
"$PYTHON" -m ruff check .

echo "== pytest" >&2
exec "$PYTHON" -m pytest "$@"
