"""The Kubernetes back end: the Sweep CRD, trial Jobs, status, and the kopf operator.

Modules, top to bottom: `crd` (schema from the spec models), `names` (labels, Job names),
`jobs` (render a trial's Job), `history` (compact trial history), `observe` (what a Job
and its pods say about a trial), `status` (the Sweep's status), `reconcile` (one pass of
the control loop), `api` (the Kubernetes calls), `metrics` (Prometheus), `handlers`
(kopf wiring) and `main` (`kubesweep operator`).
"""
