"""Reading a trial's log with memory bounded independently of its size.

A trial may print gigabytes (progress bars, debug output). The operator needs only the
lines that report metrics and the last line (quoted when the trial crashes), so the log
is streamed and only those are kept: at most `MAX_KEPT_BYTES` of metric lines (the
newest), each line cut at `MAX_LINE_BYTES`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from kubesweep.trial_output import parse_line

#: Bytes of metric lines kept per log (the newest win; 4 MiB is ~50,000 reports).
MAX_KEPT_BYTES = 4 * 1024 * 1024
#: A longer line is cut here (the rest of it until the newline is dropped).
MAX_LINE_BYTES = 64 * 1024


class MetricLines:
    """Collects, from a stream of log bytes, the metric lines and the last line."""

    def __init__(self) -> None:
        self._kept: collections.deque[str] = collections.deque()
        self._kept_bytes = 0
        self._partial = bytearray()
        self._last_raw = b""
        self.bytes_read = 0

    def feed(self, chunk: bytes) -> None:
        """Take the next piece of the log."""
        self.bytes_read += len(chunk)
        parts = chunk.split(b"\n")
        if len(parts) == 1:
            self._partial += chunk[:max(0, MAX_LINE_BYTES - len(self._partial))]
            return
        self._partial += parts[0][:max(0, MAX_LINE_BYTES - len(self._partial))]
        self._line(bytes(self._partial))
        for raw in parts[1:-1]:
            self._line(raw[:MAX_LINE_BYTES])
        self._partial = bytearray(parts[-1][:MAX_LINE_BYTES])

    def _line(self, raw: bytes) -> None:
        if not raw or raw.isspace():
            return
        self._last_raw = raw
        # cheap filter first: only a `name=value` pair or a JSON object can report a metric
        if b"=" not in raw and not raw.lstrip().startswith(b"{"):
            return
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if parse_line(line):
            self._kept.append(line)
            self._kept_bytes += len(line) + 1
            while self._kept_bytes > MAX_KEPT_BYTES and len(self._kept) > 1:
                self._kept_bytes -= len(self._kept.popleft()) + 1

    @property
    def last_line(self) -> str:
        """The last non-empty line seen so far."""
        return self._last_raw.decode("utf-8", errors="replace").strip()

    def text(self) -> str:
        """The kept lines (the last line of the log last), as a log text."""
        if self._partial:
            self._line(bytes(self._partial))
            self._partial.clear()
        lines = list(self._kept)
        if self.last_line and (not lines or lines[-1] != self.last_line):
            lines.append(self.last_line)
        return "\n".join(lines) + ("\n" if lines else "")


def metric_text(chunks: Iterable[bytes]) -> str:
    """The metric lines and the last line of a log given as chunks of bytes."""
    lines = MetricLines()
    for chunk in chunks:
        lines.feed(chunk)
    return lines.text()
