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


def _job_queued(name: str, type_: str) -> bool:
    body = {"metadata": {"name": name, "namespace": "ns", "ownerReferences": [
        {"kind": "Sweep", "apiVersion": "kubesweep.io/v1alpha1", "name": "s"}]}}
    asyncio.run(handlers._job_event(event={"type": type_}, body=body, namespace="ns"))
    key = handlers.OPERATOR.queue.get(timeout=handlers.JOB_EVENT_DELAY + 1)
    if key is not None:
        handlers.OPERATOR.queue.done(key)
    return key == ("ns", "s")


def test_deleting_a_job_the_operator_pruned_wakes_no_pass_but_other_job_events_do():
    api = Api(client.ApiClient(client.Configuration()))
    handlers.install(handlers.Operator(api, Settings(), workers=0))
    try:
        api.pruned[("ns", "s-3")] = None  # as prune_job records it before the DELETE
        assert not _job_queued("s-3", "DELETED")
        assert _job_queued("s-3", "DELETED")  # remembered once: a second one is news
        assert _job_queued("s-4", "DELETED")  # deleted by someone else (kubectl, GC)
        api.pruned[("ns", "s-5")] = None
        assert _job_queued("s-5", "MODIFIED")  # only its deletion is expected
        assert not _job_queued("s-5", "DELETED")
    finally:
        handlers.install(None)  # type: ignore[arg-type]


def test_the_pruned_memory_is_bounded():
    from kubesweep.k8s import api as api_module

    api = Api(client.ApiClient(client.Configuration()))
    api.delete_job = lambda namespace, name: None  # type: ignore[method-assign]
    for i in range(api_module.MAX_PRUNED_REMEMBERED + 10):
        api.prune_job("ns", f"s-{i}")
    assert len(api.pruned) == api_module.MAX_PRUNED_REMEMBERED
    assert not api.was_pruned("ns", "s-0") and api.was_pruned("ns", f"s-{i}")
