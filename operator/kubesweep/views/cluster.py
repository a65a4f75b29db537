"""Reading a Sweep, its Jobs and a trial's log through the user's kubeconfig, as kubectl
does: `KUBECONFIG`, `--kubeconfig`, `--context`, `-n` (default: the context's namespace).

Every failure becomes a `ClusterError` with a message a user can act on (no traceback):
no kubeconfig, no cluster reachable, no permission, no such Sweep, no Sweep CRD.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubesweep.k8s.crd import PLURAL, VERSION
from kubesweep.k8s.names import SWEEP_LABEL, label_value
from kubesweep.spec import API_GROUP

#: Seconds any single call may take.
TIMEOUT = 30


class ClusterError(Exception):
    """A problem talking to the cluster, worded for the user."""


@dataclass
class Cluster:
    """An API client for one kubeconfig context and namespace."""

    api_client: Any
    namespace: str
    context: str | None

    @classmethod
    def connect(cls, kubeconfig: str | None, context: str | None,
                namespace: str | None) -> Cluster:
        """Load the kubeconfig like kubectl; raises ClusterError when there is none."""
        from kubernetes import client, config

        try:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = active
            if context is not None:
                chosen = next((c for c in contexts if c["name"] == context), None)
                if chosen is None:
                    names = ", ".join(c["name"] for c in contexts) or "none"
                    raise ClusterError(f"context {context!r} not found in the kubeconfig "
                                       f"(contexts: {names})")
            configuration = client.Configuration()
            config.load_kube_config(config_file=kubeconfig, context=context,
                                    client_configuration=configuration)
        except ClusterError:
            raise
        except config.ConfigException as exc:
            why = str(exc).rstrip(".")
            raise ClusterError(f"no usable kubeconfig: {why}. Set KUBECONFIG or pass "
                               "--kubeconfig, as for kubectl") from None
        except OSError as exc:
            raise ClusterError(f"cannot read the kubeconfig: {exc}") from None
        ns = namespace or ((chosen or {}).get("context") or {}).get("namespace") or "default"
        return cls(client.ApiClient(configuration), ns,
                   (chosen or {}).get("name") if chosen else context)

    def _call(self, what: str, fn: Any) -> Any:
        from kubernetes.client.rest import ApiException

        try:
            return fn()
        except ApiException as exc:
            raise self._api_error(what, exc) from None
        except Exception as exc:  # noqa: BLE001 - connection errors come in many types
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException) -> ClusterError:
        where = f" (context {self.context})" if self.context else ""
        return ClusterError(f"cannot reach the cluster at {self.api_client.configuration.host}"
                            f"{where}: {_root_cause(exc)}")

    def _api_error(self, what: str, exc: Any) -> ClusterError:
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except ValueError:
            message = exc.reason
        if exc.status == 401:
            return ClusterError(f"{what}: not authenticated (401): {message}; check your "
                                "kubeconfig's credentials")
        if exc.status == 403:
            return ClusterError(f"{what}: no permission (403): {message}")
        return ClusterError(f"{what}: {exc.status} {message}")

    def get_sweep(self, name: str) -> dict[str, Any]:
        """The Sweep; ClusterError when missing, explaining whether the Sweep or the whole
        Sweep CRD is missing."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        api = client.CustomObjectsApi(self.api_client)
        try:
            resp = api.get_namespaced_custom_object(
                API_GROUP, VERSION, self.namespace, PLURAL, name, _preload_content=False,
                _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                raise ClusterError(self._not_found(name)) from None
            raise self._api_error(f"get sweep {name} in namespace {self.namespace}",
                                  exc) from None
        except Exception as exc:  # noqa: BLE001 - connection errors come in many types
            raise self._unreachable(exc) from None
        return json.loads(resp.data)

    def _not_found(self, name: str) -> str:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        try:
            client.ApiextensionsV1Api(self.api_client).read_custom_resource_definition(
                f"{PLURAL}.{API_GROUP}", _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return (f"the cluster has no Sweep resource type ({PLURAL}.{API_GROUP}); "
                        "install kubesweep (helm install kubesweep charts/kubesweep)")
        except Exception:  # noqa: BLE001, S110 - the plain message below still helps
            pass
        return (f"Sweep {name!r} not found in namespace {self.namespace!r} "
                "(kubectl get sweeps -A lists them; -n NAMESPACE picks another)")

    def jobs(self, sweep_name: str) -> list[dict[str, Any]]:
        """The sweep's trial Jobs (label selector)."""
        from kubernetes import client

        batch = client.BatchV1Api(self.api_client)
        resp = self._call(f"list jobs in namespace {self.namespace}",
                          lambda: batch.list_namespaced_job(
                              self.namespace, label_selector=_selector(sweep_name),
                              _preload_content=False, _request_timeout=TIMEOUT))
        return list(json.loads(resp.data).get("items") or [])

    def pods(self, sweep_name: str) -> list[dict[str, Any]]:
        """The sweep's trial pods."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        resp = self._call(f"list pods in namespace {self.namespace}",
                          lambda: core.list_namespaced_pod(
                              self.namespace, label_selector=_selector(sweep_name),
                              _preload_content=False, _request_timeout=TIMEOUT))
        return list(json.loads(resp.data).get("items") or [])

    def log(self, pod: str, container: str | None, tail: int | None = None) -> str:
        """A container's log."""
        from kubernetes import client

        core = client.CoreV1Api(self.api_client)
        kwargs: dict[str, Any] = {"container": container} if container else {}
        if tail is not None:
            kwargs["tail_lines"] = tail
        resp = self._call(f"read the log of pod {pod}", lambda: core.read_namespaced_pod_log(
            pod, self.namespace, _preload_content=False, _request_timeout=TIMEOUT, **kwargs))
        return resp.data.decode("utf-8", errors="replace")


def _selector(sweep_name: str) -> str:
    return f"{SWEEP_LABEL}={label_value(sweep_name)}"


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a urllib3 error (e.g. 'Connection refused')."""
    seen = exc
    while True:
        inner = getattr(seen, "reason", None)
        if isinstance(inner, BaseException) and inner is not seen:
            seen = inner
            continue
        if seen.__cause__ is not None and seen.__cause__ is not seen:
            seen = seen.__cause__
            continue
        break
    text = str(seen)
    return text.split(": ", 1)[-1] if "Errno" in text else text
