"""The full trial history in a compact, columnar form that fits in the Sweep's status.

A Kubernetes object must stay under ~1.5 MiB (etcd's request limit), and every status
write sends the whole history, so it is packed: one base64 column per parameter, typed
by what the values need (float32 for continuous values, which the search space rounds to
6 significant digits and so survive float32 exactly; int32; or an index into the list of
choices), float64 objective values, one letter per state. 10,000 trials × 10 parameters
take about 0.7 MB (tests/unit/test_k8s_history.py proves it).

Every trial's other metrics (loss, accuracy, step ...) are kept too, bounded: the last
value of at most `MAX_METRICS` metric names (those most trials reported), one float32
column per name (NaN where a trial did not report it). float32 keeps ~7 significant
digits, which is what a table or a plot shows; the objective keeps full precision in
`values`. A column with a value float32 cannot hold (beyond ±3.4e38, or so small it
would become 0) is float64, its text prefixed `f8:`: float32 would turn `acc=1e39` into
infinity, which no status write can carry. 4 metrics add ~0.2 MB at 10,000 trials, so
10,000 trials × 10 parameters × 4 metrics stay under 1 MiB
(tests/k8s/test_operator_scale.py proves it on the API server).

Each trial's run time (`durations`, float32 seconds, NaN when unknown) is kept as well: it
is known only while the trial's Job exists, and the operator prunes finished Jobs. The
intermediate curves (what early termination compares, and the report's intermediate-value
plot) are kept for the newest trials within `MAX_CURVE_BYTES`, and why each failed or
stopped trial ended within `MAX_REASON_BYTES` (each distinct text stored once). With both
budgets full, 10,000 trials × 10 parameters × 4 metrics take ~1,000 KiB.
"""

from __future__ import annotations

import base64
import json
import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from kubesweep.tuner import Trial

FORMAT = "v1"
_STATE_LETTER = {"succeeded": "s", "failed": "f", "stopped": "x"}
_LETTER_STATE = {v: k for k, v in _STATE_LETTER.items()}
#: Upper bound of the packed failure/stop reasons (the newest trials' are kept first;
#: Events hold every reason while they last). Reasons repeat a lot, so this holds
#: thousands of them.
MAX_REASON_BYTES = 32 * 1024
#: Upper bound of the bytes of intermediate curves kept (the newest trials' first).
MAX_CURVE_BYTES = 256 * 1024
#: Metric names whose last value is kept for every trial (the most reported ones).
MAX_METRICS = 8


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(zlib.compress(array.tobytes(), 6)).decode("ascii")


def _unpack(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype=dtype)


#: Prefix of a metric column stored as float64 (see the module docstring).
F8_PREFIX = "f8:"


def _finite(values: np.ndarray, field: str, nan_ok: bool = False) -> np.ndarray:
    """`values`, or ValueError naming `field` when one is infinite (or NaN where NaN
    means nothing): a hand-edited status must not put a number JSON cannot carry into
    the next status write."""
    bad = np.isinf(values) if nan_ok else ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"status.history.{field}: holds a non-finite number "
                         f"({values[bad][0]}); only finite numbers are recorded")
    return values


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON can carry")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400
        raise ValueError(f"{text} is not a finite number")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _f4_exact(values: list[Any]) -> bool:
    """True when every value is a float that float32 + '%.6g' gives back exactly."""
    if not all(isinstance(v, float) for v in values):
        return False
    f32 = np.asarray(values, dtype="<f4")
    return all(math.isnan(v) and math.isnan(b) or float(f"{b:.6g}") == v
               for v, b in zip(values, f32.tolist(), strict=True))


def _encode_column(values: list[Any], choices: list[Any] | None) -> dict[str, Any]:
    if choices is not None and all(any(v == c and type(v) is type(c) for c in choices)
                                   for v in values):
        index = [next(i for i, c in enumerate(choices) if v == c and type(v) is type(c))
                 for v in values]
        dtype = "<u1" if len(choices) <= 256 else "<u2" if len(choices) <= 65536 else "<u4"
        return {"type": "c" + dtype[-1], "choices": list(choices),
                "data": _pack(np.asarray(index, dtype=dtype))}
    if all(_is_int(v) and -(2**31) <= v < 2**31 for v in values):
        return {"type": "i4", "data": _pack(np.asarray(values, dtype="<i4"))}
    if all(_is_int(v) and -(2**63) <= v < 2**63 for v in values):
        return {"type": "i8", "data": _pack(np.asarray(values, dtype="<i8"))}
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        floats = [float(v) for v in values]
        if all(isinstance(v, float) for v in values) and _f4_exact(floats):
            return {"type": "f4", "data": _pack(np.asarray(floats, dtype="<f4"))}
        return {"type": "f8", "data": _pack(np.asarray(floats, dtype="<f8"))}
    return {"type": "json", "data": json.dumps(values, separators=(",", ":"))}


def _decode_column(col: Mapping[str, Any], count: int, field: str = "params") -> list[Any]:
    kind = col["type"]
    if kind == "json":
        # Python's json reads NaN, Infinity and 1e400, which no status write could send
        try:
            return list(json.loads(col["data"], parse_constant=_no_constant,
                                   parse_float=_finite_float))
        except ValueError as exc:
            raise ValueError(f"status.history.{field}: cannot be decoded ({exc})") from None
    if kind.startswith("c"):
        choices = list(col["choices"])
        return [choices[i] for i in _unpack(col["data"], "<u" + kind[1:]).tolist()]
    if kind in ("i4", "i8"):
        return _unpack(col["data"], "<" + kind).tolist()
    if kind == "f4":
        return [float(f"{v:.6g}")
                for v in _finite(_unpack(col["data"], "<f4"), field).tolist()]
    if kind == "f8":
        return _finite(_unpack(col["data"], "<f8"), field).tolist()
    raise ValueError(f"status.history: unknown column type {kind!r}")


def column_length(col: Mapping[str, Any], field: str) -> int:
    """How many values a parameter column holds, checked as `_decode_column` reads it
    (finite numbers, choice indices in range) but without building its values: a
    pass checks the whole history this way before trusting it."""
    kind = col["type"]
    if kind == "json" or kind not in ("i4", "i8", "f4", "f8") and not kind.startswith("c"):
        return len(_decode_column(col, 0, field))
    if kind.startswith("c"):
        index = _unpack(col["data"], "<u" + kind[1:])
        if index.size and int(index.max()) >= len(col["choices"]):
            raise ValueError(f"status.history.{field}: choice {int(index.max())} of "
                             f"{len(col['choices'])}")
        return int(index.size)
    values = _unpack(col["data"], "<" + kind)
    if kind.startswith("f"):
        _finite(values, field)
    return int(values.size)


def _choices(spec_parameters: Mapping[str, Any], name: str) -> list[Any] | None:
    param = spec_parameters.get(name)
    if param is None:
        return None
    if param.values is not None:
        return list(param.values)
    if param.value is not None:
        return [param.value]
    return None


def encode(trials: Iterable[Trial], spec_parameters: Mapping[str, Any],
           keep_curves: bool = True, metric_names: Iterable[str] = ()) -> dict[str, Any]:
    """The finished trials as a compact history (see the module docstring); the metrics
    in `metric_names` (several objectives, constrained metrics) are always kept, on top of
    the MAX_METRICS most reported ones."""
    done = sorted((t for t in trials if t.finished), key=lambda t: t.index)
    names = sorted({k for t in done for k in t.params} | set(spec_parameters))
    out: dict[str, Any] = {
        "format": FORMAT,
        "count": len(done),
        "indices": _pack(np.asarray([t.index for t in done], dtype="<u4")),
        "states": "".join(_STATE_LETTER[t.state] for t in done),
        "values": _pack(np.asarray([math.nan if t.value is None else t.value for t in done],
                                   dtype="<f8")),
        "params": {},
    }
    for name in names:
        present = [t for t in done if name in t.params]
        if len(present) != len(done):  # a parameter some trials lack: keep it as JSON
            out["params"][name] = {"type": "json", "data": json.dumps(
                [t.params.get(name) for t in done], separators=(",", ":"))}
            continue
        out["params"][name] = _encode_column([t.params[name] for t in done],
                                             _choices(spec_parameters, name))
    metrics = _encode_metrics(done, metric_names)
    if metrics:
        out["metrics"] = metrics
    if any(t.duration is not None for t in done):
        out["durations"] = _pack(np.asarray([_f32(t.duration) for t in done], dtype="<f4"))
    reasons = _encode_reasons(done)
    if reasons:
        out["reasonsPacked"] = reasons
    if keep_curves:
        out["curves"] = _encode_curves(done)
    return out


def metric_names(trials: Iterable[Trial], limit: int = MAX_METRICS) -> list[str]:
    """The names kept: those the most trials reported (ties by name), at most `limit`."""
    counts: dict[str, int] = {}
    for t in trials:
        for name in t.metrics:
            counts[name] = counts.get(name, 0) + 1
    return sorted(sorted(counts, key=lambda n: (-counts[n], n))[:limit])


def _encode_metrics(done: list[Trial], required: Iterable[str] = ()) -> dict[str, str]:
    names = sorted(set(required) | set(metric_names(done)))
    return {name: _metric_column(np.asarray([_f32(t.metrics.get(name)) for t in done],
                                            dtype="<f8"))
            for name in names}


def _metric_column(values: np.ndarray) -> str:
    """float32 when it holds every value (finite, and not 0 for a value that is not),
    else float64 prefixed `F8_PREFIX`."""
    with np.errstate(over="ignore", under="ignore"):
        f32 = values.astype("<f4")
    fits = np.isnan(values) | (np.isfinite(f32) & ((f32 != 0) | (values == 0)))
    if fits.all():
        return _pack(f32)
    return F8_PREFIX + _pack(values)


def metric_array(text: str, name: str) -> np.ndarray:
    """A metric column as stored (float32, or float64 after `F8_PREFIX`; NaN where a
    trial did not report the metric); ValueError naming the field when it holds an
    infinity."""
    f8 = text.startswith(F8_PREFIX)
    values = _unpack(text[len(F8_PREFIX):], "<f8") if f8 else _unpack(text, "<f4")
    return _finite(values, f"metrics.{name}", nan_ok=True)


def unpack_metric(text: str, name: str) -> list[float | None]:
    """A metric column's values (None where a trial did not report the metric)."""
    values = metric_array(text, name)
    if values.dtype == np.float64:
        return [None if math.isnan(v) else v for v in values.tolist()]
    return [_decode_f32(v) for v in values.tolist()]


def _f32(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan


def _decode_f32(value: float) -> float | None:
    # '%.7g' gives back the short decimal a trial printed (float32 holds ~7.2 digits)
    return None if math.isnan(value) else float(f"{value:.7g}")


def _pack_reasons(pairs: list[tuple[int, str]]) -> str:
    """{"texts": distinct reasons, "gaps": index deltas, "ids": text of each}, JSON,
    zlib, base64: a reason repeated by thousands of trials is stored once."""
    texts: dict[str, int] = {}
    ids = [texts.setdefault(reason, len(texts)) for _, reason in pairs]
    indices = [index for index, _ in pairs]
    gaps = [b - a for a, b in zip([0, *indices[:-1]], indices, strict=True)]
    text = json.dumps({"texts": list(texts), "gaps": gaps, "ids": ids},
                      separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(text, 6)).decode("ascii")


def _encode_reasons(done: list[Trial]) -> str | None:
    """The reasons of the newest failed/stopped trials whose packed text fits in
    MAX_REASON_BYTES (every one, unless a sweep has thousands of distinct reasons)."""
    pairs = [(t.index, t.reason) for t in done if t.reason]
    if not pairs:
        return None
    text = _pack_reasons(pairs)
    if len(text) <= MAX_REASON_BYTES:
        return text
    fits, too_many = 0, len(pairs)  # the newest `fits` fit, the newest `too_many` do not
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        if len(_pack_reasons(pairs[-middle:])) <= MAX_REASON_BYTES:
            fits = middle
        else:
            too_many = middle
    return _pack_reasons(pairs[-fits:]) if fits else None


def decode_reasons(history: Mapping[str, Any]) -> dict[str, str]:
    """Trial index (as text) -> why it failed or was stopped, from `reasonsPacked` or, in a
    history written before it existed, the plain `reasons` of the newest 50 trials."""
    packed = history.get("reasonsPacked")
    if not packed:
        return dict(history.get("reasons") or {})
    data = json.loads(zlib.decompress(base64.b64decode(packed)))
    texts, out, index = data["texts"], {}, 0
    for gap, which in zip(data["gaps"], data["ids"], strict=True):
        index += gap
        out[str(index)] = str(texts[which])
    return out


def _encode_curves(done: list[Trial]) -> dict[str, str]:
    curves: dict[str, str] = {}
    total = 0
    for t in reversed(done):  # newest first, so the budget keeps the recent ones
        if not t.history:
            continue
        arr = np.asarray([(s, v) for s, v in t.history], dtype="<f8")
        text = _pack(arr)
        total += len(text)
        if total > MAX_CURVE_BYTES:
            break
        curves[str(t.index)] = text
    return curves


def recorded_indices(history: Mapping[str, Any] | None) -> set[int]:
    """The indices of the trials `history` holds (reads one column only)."""
    if not history or not history.get("count"):
        return set()
    if history.get("format") != FORMAT:
        raise ValueError(f"status.history: unknown format {history.get('format')!r}")
    return set(_unpack(history["indices"], "<u4").tolist())


def decode(history: Mapping[str, Any] | None,
           name_of: Callable[[int], str] = str) -> list[dict[str, Any]]:
    """Trial records (for `Trial.from_dict`) from `encode`'s output; [] when empty.

    `name_of(index)` gives each trial's name (the Job name).
    """
    if not history or not history.get("count"):
        return []
    if history.get("format") != FORMAT:
        raise ValueError(f"status.history: unknown format {history.get('format')!r}")
    try:
        return _decode(history, name_of)
    except ValueError:
        raise
    except Exception as exc:  # noqa: BLE001 - zlib.error, IndexError ...: one kind for callers
        raise ValueError(f"status.history: cannot be decoded ({type(exc).__name__}: "
                         f"{exc})") from exc


def _decode(history: Mapping[str, Any], name_of: Callable[[int], str]) -> list[dict[str, Any]]:
    count = int(history["count"])
    indices = _unpack(history["indices"], "<u4").tolist()
    values = _finite(_unpack(history["values"], "<f8"), "values", nan_ok=True).tolist()
    states = history["states"]
    columns = {name: _decode_column(col, count, f"params.{name}")
               for name, col in history["params"].items()}
    curves = history.get("curves") or {}
    reasons = decode_reasons(history)
    metric_columns = {name: unpack_metric(text, name)
                      for name, text in (history.get("metrics") or {}).items()}
    durations = _finite(_unpack(history["durations"], "<f4"), "durations",
                        nan_ok=True).tolist() if history.get("durations") else [math.nan] * count
    records = []
    for i in range(count):
        index = indices[i]
        params = {name: col[i] for name, col in columns.items() if col[i] is not None}
        value = values[i]
        curve = curves.get(str(index))
        records.append({
            "index": index,
            "params": params,
            "state": _LETTER_STATE[states[i]],
            "value": None if math.isnan(value) else value,
            "history": _unpack(curve, "<f8").reshape(-1, 2).tolist() if curve else [],
            "name": name_of(index),
            "reason": reasons.get(str(index)),
            "metrics": {name: v for name, col in metric_columns.items()
                        if (v := col[i]) is not None},
            "duration": _decode_f32(durations[i]),
        })
    return records
