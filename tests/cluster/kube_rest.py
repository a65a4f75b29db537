"""A minimal JSON REST client for the node agent and the harness's readiness checks.

Credentials come from a kubeconfig via the `kubernetes` package; requests go through
urllib3 directly. Why not the generated API classes: the node agent patches status for
every pod of a throughput benchmark, and the generated clients both validate/convert
every call (slow in kubernetes>=35) and pick different PATCH content types across
versions; plain dicts with explicit content types behave the same everywhere.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class KubeRest:
    """JSON requests against the API server named in a kubeconfig."""

    def __init__(self, kubeconfig: Path, maxsize: int = 32) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        self.host = cfg.host.rstrip("/")
        self.ca_file: str | None = cfg.ssl_ca_cert
        self._headers = {"Accept": "application/json", "User-Agent": "kubesweep-test-cluster"}
        token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get(
            "BearerToken")
        if token:
            prefix = (cfg.api_key_prefix or {}).get("authorization", "")
            self._headers["Authorization"] = token if token.startswith("Bearer") else (
                f"{prefix or 'Bearer'} {token}")
        self._http = urllib3.PoolManager(
            maxsize=maxsize,
            block=False,
            cert_reqs=ssl.CERT_REQUIRED if cfg.verify_ssl else ssl.CERT_NONE,
            ca_certs=cfg.ssl_ca_cert,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
            retries=False,
        )

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        return self.host + path + (("?" + urlencode(query)) if query else "")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        """Send one request and return the decoded JSON answer (ApiError if not 2xx)."""
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        resp = self._http.request(method, self._url(path, params), body=data,
                                  headers=headers, timeout=timeout)
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, resp.data.decode(errors="replace"))
        return json.loads(resp.data) if resp.data else None

    def get(self, path: str, **params: Any) -> Any:
        """GET `path` with query parameters."""
        return self.request("GET", path, params=params)

    def watch(self, path: str, *, timeout_seconds: int,
              **params: Any) -> Iterator[dict[str, Any]]:
        """Stream watch events of a collection until the server ends the watch."""
        query = dict(params, watch="true", timeoutSeconds=timeout_seconds,
                     allowWatchBookmarks="true")
        resp = self._http.request(
            "GET", self._url(path, query), headers=self._headers, preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=timeout_seconds + 30))
        try:
            if resp.status != 200:
                raise ApiError(resp.status, resp.read().decode(errors="replace"))
            buf = b""
            for chunk in resp.stream(64 * 1024, decode_content=True):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            resp.release_conn()
