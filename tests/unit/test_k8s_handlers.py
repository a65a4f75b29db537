"""Which Sweep watch events wake a pass: not the operator's own status writes, but any
other change, a status edited by hand included."""

from __future__ import annotations

import asyncio
import collections

from kubernetes import client

from kubesweep.k8s import handlers
from kubesweep.k8s.api import Api
from kubesweep.settings import Settings


def _event(resource_version: str, generation: int = 1, observed: int = 1) -> dict:
    return {"metadata": {"name": "s", "namespace": "ns", "generation": generation,
                         "resourceVersion": resource_version},
            "status": {"observedGeneration": observed}}


def _queued(body: dict, type_: str = "MODIFIED") -> bool:
    asyncio.run(handlers._sweep_event(event={"type": type_}, body=body, namespace="ns",
                                      name="s"))
    key = handlers.OPERATOR.queue.get(timeout=0)
    if key is not None:
        handlers.OPERATOR.queue.done(key)
    return key == ("ns", "s")


def test_own_status_writes_do_not_wake_a_pass_but_other_edits_do():
    api = Api(client.ApiClient(client.Configuration()))  # no request is made
    handlers.install(handlers.Operator(api, Settings(), workers=0))
    try:
        api.own_writes[("ns", "s")] = collections.deque(["41", "42"])
        assert not _queued(_event("42"))  # the operator's own write coming back
        assert _queued(_event("43"))  # kubectl edit --subresource=status
        assert _queued(_event("44", generation=2))  # a spec edit
        assert _queued(_event("45"), type_="ADDED")
    finally:
        handlers.install(None)  # type: ignore[arg-type]
