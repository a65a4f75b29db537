"""The invalid-manifest corpus (tests/corpus/invalid) at `kubectl apply`: the CRD's schema
and CEL rules refuse every file except the few whose rule CEL cannot express, which
`kubesweep validate` refuses offline (tests/unit/test_invalid_manifests.py) and the
operator marks InvalidSpec on the cluster (tests/k8s/test_operator.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.fixtures import ClusterHandle
from tests.k8s.operator_fixtures import crd_fixture  # noqa: F401 (fixture crd)

pytestmark = pytest.mark.k8s

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "invalid"
#: Refused by `kubesweep validate` and the operator, admitted by the API server: their
#: rules need the grid's size, the placeholders inside a free-form Job template, a Job
#: template's container names, or float limits (q's multiples, a log-normal's reach) kept
#: out of CEL; two Sweeps in one file are fine for kubectl.
VALIDATE_ONLY = {
    "grid-larger-than-budget-limit", "grid-over-continuous",
    "grid-too-large", "log-normal-overflows", "multi-document-two-sweeps",
    "parameter-empty-mapping", "q-too-small-for-range",
    "primary-container-missing", "probabilities-without-values",
    "probabilities-wrong-length", "template-placeholder-unknown-param",
    "template-unknown-placeholder",
}


def test_kubectl_apply_refuses_the_corpus(cluster: ClusterHandle, namespace: str, crd: Path):
    admitted = []
    for path in sorted(CORPUS.glob("*.yaml")):
        proc = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path),
                               check=False, timeout=60)
        if proc.returncode == 0:
            admitted.append(path.stem)
        else:
            assert proc.stderr.strip(), f"{path.name}: refused without a message"
    assert sorted(admitted) == sorted(VALIDATE_ONLY), (
        "kubectl apply admitted a different set of invalid manifests than documented "
        f"(admitted: {sorted(admitted)})")
