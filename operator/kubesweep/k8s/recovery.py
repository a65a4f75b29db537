"""Checking a Sweep's status before trusting it: a hand edit (or a bug) must not freeze
the sweep.

`history_problem` names the first field of `status.history` that cannot be read (the
types are checked by the CRD's schema; the content is not). `decide` then reports it
(condition `StatusRecovered` and a `CorruptStatus` event) and rebuilds the trials from
what the cluster still holds: the Sweep's Jobs.
"""

from __future__ import annotations

import binascii
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from kubesweep.k8s import history

_LETTERS = set("sfx")


def _column(name: str, text: Any, dtype: str, count: int | None,
            nan_ok: bool | None = None) -> str | None:
    """Why column `name` cannot be read; `nan_ok` (for float columns): whether NaN
    (no value) is allowed, infinities never are."""
    try:
        values = history._unpack(text, dtype)
    except (binascii.Error, zlib.error, ValueError, TypeError) as exc:
        return f"status.history.{name}: cannot be decoded ({exc})"
    if count is not None and len(values) != count:
        return f"status.history.{name}: holds {len(values)} values, count says {count}"
    if nan_ok is not None:
        try:
            history._finite(values, name, nan_ok)
        except ValueError as exc:
            return str(exc)
    return None


def history_problem(hist: Mapping[str, Any] | None) -> str | None:
    """Why `status.history` cannot be read, naming the field; None when it can."""
    if not hist or not hist.get("count"):
        return None
    if hist.get("format") != history.FORMAT:
        return f"status.history.format: unknown format {hist.get('format')!r}"
    try:
        count = int(hist["count"])
    except (TypeError, ValueError):
        return f"status.history.count: not a number ({hist.get('count')!r})"
    for name, dtype, nan_ok in (("indices", "<u4", None), ("values", "<f8", True)):
        problem = _column(name, hist.get(name), dtype, count, nan_ok)
        if problem:
            return problem
    if hist.get("durations"):  # optional: histories written before it have none
        problem = _column("durations", hist["durations"], "<f4", count, nan_ok=True)
        if problem:
            return problem
    states = hist.get("states")
    if not isinstance(states, str) or len(states) != count or set(states) - _LETTERS:
        return (f"status.history.states: expected {count} letters of s, f, x, got "
                f"{str(states)[:40]!r}")
    for pname, col in (hist.get("params") or {}).items():
        try:
            length = history.column_length(col, f"params.{pname}")
        except Exception as exc:  # noqa: BLE001 - any decoding failure names the field
            if str(exc).startswith(f"status.history.params.{pname}:"):
                return str(exc)
            return f"status.history.params.{pname}: cannot be decoded ({exc})"
        if length != count:
            return (f"status.history.params.{pname}: holds {length} values, count "
                    f"says {count}")
    for mname, text in (hist.get("metrics") or {}).items():
        try:
            values = history.metric_array(text, mname)
        except Exception as exc:  # noqa: BLE001 - any decoding failure names the field
            if str(exc).startswith(f"status.history.metrics.{mname}:"):
                return str(exc)
            return f"status.history.metrics.{mname}: cannot be decoded ({exc})"
        if len(values) != count:
            return (f"status.history.metrics.{mname}: holds {len(values)} values, count "
                    f"says {count}")
    try:
        history.decode_reasons(hist)
    except Exception as exc:  # noqa: BLE001 - any decoding failure names the field
        return f"status.history.reasonsPacked: cannot be decoded ({exc})"
    for index, curve in (hist.get("curves") or {}).items():
        problem = _column(f"curves.{index}", curve, "<f8", None)
        if problem:
            return problem
    return None


def readable_indices(hist: Mapping[str, Any] | None) -> set[int] | None:
    """The trial indices `status.history` records; None when any of it cannot be read:
    then every Job's trial is rebuilt, and needs its pods and log read."""
    try:
        if history_problem(hist) is not None:
            return None
        return history.recorded_indices(hist)
    except Exception:  # noqa: BLE001 - any failure means unreadable; decide names it
        return None


def read_history(hist: Mapping[str, Any] | None, name_of: Callable[[int], str]
                 ) -> tuple[list[dict[str, Any]], str | None]:
    """The trial records of `status.history` and None, or [] and why it cannot be read
    (naming the field). The full check only runs when decoding fails: a readable history
    is decoded once per pass."""
    try:
        return history.decode(hist, name_of), None
    except Exception as exc:  # noqa: BLE001 - any decoding failure is reported
        return [], history_problem(hist) or f"status.history: cannot be decoded ({exc})"
