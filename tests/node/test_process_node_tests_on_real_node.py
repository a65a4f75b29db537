"""Tests written against the process node that must hold on the real node as well.

Two of them passed only because the node agent runs pods as host processes: a pod
reaching the API server through the `kubernetes` Service's ClusterIP (needs kube-proxy),
and trials that `import kubesweep` (needs kubesweep in the trial image, which
scripts/build-images.sh now installs). Here they run unchanged on the real node (this
directory's `cluster` is the real-node cluster), against the built trial image. The
security tests of trial output and values run here too: a Secret the trial prints stays
in its container's log; `$(VAR)` references in values reach the container verbatim.
"""

from __future__ import annotations

import pytest

from tests.k8s.operator_fixtures import crd_fixture, operator_fixture  # noqa: F401
from tests.k8s.test_cluster import (  # noqa: F401 (collected here, on the real node)
    test_pod_talks_to_the_api_as_its_service_account,
    test_termination_message_is_reported,
)
from tests.k8s.test_operator import (  # noqa: F401
    test_failing_trials_are_recorded_with_reasons,
)
from tests.k8s.test_reliability import (  # noqa: F401 (the security ones, in containers)
    test_a_secret_the_trial_prints_stays_in_its_log,
    test_dollar_references_in_values_arrive_verbatim,
)

pytestmark = [pytest.mark.k8s, pytest.mark.real_node]
