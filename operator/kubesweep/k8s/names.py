"""Names and labels shared by everything the operator creates."""

from __future__ import annotations

import hashlib
import re

SWEEP_LABEL = "kubesweep.io/sweep"
TRIAL_LABEL = "kubesweep.io/trial"
#: Job annotation holding the trial's parameters (JSON): the operator rebuilds pending
#: trials from it after a restart.
PARAMS_ANNOTATION = "kubesweep.io/params"
#: Job annotation counting pod disruptions (evictions, preemptions) the trial survived.
DISRUPTIONS_ANNOTATION = "kubesweep.io/disruptions"
MAX_NAME = 63
_HASH_LEN = 8


def job_name(sweep: str, index: int) -> str:
    """The deterministic Job name of trial `index` of `sweep`: `SWEEP-INDEX`.

    Names must be DNS labels (≤ 63 chars) and the Job controller adds pod suffixes, so a
    long sweep name is cut and a hash of the full name keeps it unique.
    """
    name = f"{sweep}-{index}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(sweep.encode()).hexdigest()[:_HASH_LEN]
    suffix = f"-{digest}-{index}"
    head = re.sub(r"[-.]+$", "", sweep[: MAX_NAME - len(suffix)])
    return f"{head}{suffix}"


def label_value(text: str) -> str:
    """`text` as a valid label value (≤ 63 chars; long values cut and hashed)."""
    if len(text) <= MAX_NAME:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:_HASH_LEN]
    return re.sub(r"[-_.]+$", "", text[: MAX_NAME - _HASH_LEN - 1]) + "-" + digest
