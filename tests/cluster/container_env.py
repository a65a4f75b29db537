"""The environment and argv a pod's container process gets from the node agent."""

from __future__ import annotations

import base64
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

# Variables that make the process see the harness's Python environment (and little
# else from the host, as a container would).
_INHERITED = ("HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "TZ")

_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")

# Looks up a ConfigMap's or Secret's data: (kind, namespace, name) -> data or None.
DataLookup = Callable[[str, str, str], "Mapping[str, str] | None"]


class ContainerConfigError(Exception):
    """The container cannot start (kubelet's CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known variables are replaced, `$$` escapes `$`,
    unknown references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, text)


def base_env(run_id_env: Mapping[str, str]) -> dict[str, str]:
    """Host variables every container starts from: PATH with this interpreter's directory
    first, so `python` in a pod is the harness's Python, and the run-id marker."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    py_dir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join([py_dir, os.environ.get("PATH", "/usr/bin:/bin")])
    env.update(run_id_env)
    return env


def service_env(host: str, port: int) -> dict[str, str]:
    """The `kubernetes` Service variables the kubelet injects, pointing at the real API
    server on loopback (there is no service proxy to reach the ClusterIP)."""
    return {
        "KUBERNETES_SERVICE_HOST": host,
        "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
        "KUBERNETES_PORT": f"tcp://{host}:{port}",
        f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}",
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": str(port),
        f"KUBERNETES_PORT_{port}_TCP_ADDR": host,
    }


def _field_ref(pod: Mapping[str, Any], path: str) -> str:
    meta = pod.get("metadata") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path in simple:
        return simple[path] or ""
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return (meta.get(m.group(1)) or {}).get(m.group(2), "")
    raise ContainerConfigError(f"fieldRef {path!r} is not supported by the node agent")


def _decode(kind: str, value: str) -> str:
    return base64.b64decode(value).decode() if kind == "Secret" else value


def _key_ref(pod: Mapping[str, Any], kind: str, ref: Mapping[str, Any],
             lookup: DataLookup) -> str | None:
    ns = pod["metadata"]["namespace"]
    data = lookup(kind, ns, ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise ContainerConfigError(
            f'couldn\'t find key {ref["key"]} in {kind} {ns}/{ref["name"]}')
    return _decode(kind, data[ref["key"]])


def container_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    base: Mapping[str, str],
    lookup: DataLookup,
) -> dict[str, str]:
    """The process environment of `container`: `base`, then envFrom, then env (later
    entries win and may reference earlier ones with $(VAR), as in Kubernetes)."""
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if not ref:
                continue
            data = lookup(kind, pod["metadata"]["namespace"], ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref["name"]}" not found')
            for k, v in data.items():
                env[prefix + k] = _decode(kind, v)
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value") or "", env)
            continue
        src = var["valueFrom"]
        value: str | None
        if "fieldRef" in src:
            value = _field_ref(pod, src["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in src:
            value = _key_ref(pod, "ConfigMap", src["configMapKeyRef"], lookup)
        elif "secretKeyRef" in src:
            value = _key_ref(pod, "Secret", src["secretKeyRef"], lookup)
        else:
            raise ContainerConfigError(
                f"env {name}: only value, fieldRef, configMapKeyRef and secretKeyRef are "
                "supported by the node agent")
        if value is not None:
            env[name] = value
    return env


def container_argv(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """`command` + `args` with $(VAR) expanded. The image is ignored, so there is no
    image entrypoint to fall back on: a container without `command` cannot run."""
    command = container.get("command") or []
    if not command:
        raise ContainerConfigError(
            f"container {container['name']!r} has no command: the kubesweep test node runs "
            "processes on the host and ignores the image, so its ENTRYPOINT is unknown")
    return [expand(a, env) for a in [*command, *(container.get("args") or [])]]
