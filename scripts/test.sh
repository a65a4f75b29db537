#!/usr/bin/env bash
# Install everything the tests need, then run every test. This is what CI runs (.ci/run).
#
#   bash scripts/test.sh               # everything
#   bash scripts/test.sh -m "not k8s"  # extra arguments go to pytest
#
# Builds the real Kubernetes control plane from source on the first run (cached under
# ~/.cache/kubesweep; later runs reuse it).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
echo "== installing kubesweep and test dependencies" >&2
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e '.[test]'

echo "== installing kubectl and helm" >&2
TOOLS_BIN=$(bash scripts/install-tools.sh)
export PATH="$TOOLS_BIN:$PATH"

echo "== installing Prometheus and promtool (Debian package)" >&2
bash scripts/install-prometheus.sh >&2

echo "== installing Chromium (headless, for the HTML report's tests)" >&2
bash scripts/install-chromium.sh

echo "== building the Kubernetes control plane (cached)" >&2
bash scripts/build-control-plane.sh >&2

echo "== ruff" >&2
"$PYTHON" -m ruff check .

echo "== pytest" >&2
exec "$PYTHON" -m pytest "$@"
