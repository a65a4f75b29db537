"""The operator's probe endpoints: /healthz always, /readyz only when it can work, on the
address `--liveness-address` names (IPv4 or IPv6)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kubesweep.k8s.probes import Probes
from tests.cluster.processes import free_port


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def test_readyz_follows_the_api_check_and_the_watches():
    alive = {"api": False}
    probes = Probes(lambda: alive["api"])
    port = free_port()
    probes.serve("127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    assert _get(base + "/healthz") == 200
    assert _get(base + "/readyz") == 503
    alive["api"] = True
    probes.check_api()
    assert _get(base + "/readyz") == 503  # the watches do not run yet
    probes.watching.set()
    assert _get(base + "/readyz") == 200
    assert _get(base + "/other") == 404


@pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_address_is_served():
    """`--liveness-address ::` failed at startup: http.server opens an IPv4 socket."""
    port = free_port()
    Probes(lambda: True).serve("::", port)
    assert _get(f"http://[::1]:{port}/healthz") == 200
    v6only = Path("/proc/sys/net/ipv6/bindv6only")
    if not v6only.exists() or v6only.read_text().strip() == "0":  # Linux's default
        assert _get(f"http://127.0.0.1:{port}/healthz") == 200  # `::` takes IPv4 too
