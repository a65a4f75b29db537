"""Container log files in the kubelet's CRI format, and reading them the way the
kubelet serves `pods/log` (tailLines, sinceSeconds/sinceTime, timestamps, follow)."""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def _now_rfc3339() -> str:
    # Nanosecond precision like the kubelet; Python has microseconds, pad with zeros.
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def parse_time(value: str) -> datetime.datetime:
    """Parse an RFC 3339 time as written in log lines or sent as `sinceTime`."""
    m = re.fullmatch(r"([^.]+?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", value.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    head, frac, zone = m.groups()
    # fromisoformat takes at most 6 fractional digits before Python 3.11.
    text = head + (f".{frac[:6]:0<6}" if frac else "") + ("+00:00" if zone == "Z" else zone)
    return datetime.datetime.fromisoformat(text)


@dataclass
class ContainerLog:
    """One container's log across restarts: attempt N writes `<base>.<N>.log`."""

    base: Path
    attempt: int = 0
    finished: threading.Event = field(default_factory=threading.Event)

    def path(self, attempt: int | None = None) -> Path:
        """Log file of `attempt` (default: the current one)."""
        n = self.attempt if attempt is None else attempt
        return self.base.with_name(f"{self.base.name}.{n}.log")

    def tail_text(self, max_lines: int, max_bytes: int) -> str:
        """Last lines of the current attempt without timestamps (for
        FallbackToLogsOnError termination messages)."""
        try:
            with open(self.path(), encoding="utf-8", errors="replace") as f:
                lines = deque((_content(line) for line in f), maxlen=max_lines)
        except FileNotFoundError:
            return ""
        return "".join(lines)[-max_bytes:]


def pump(stream: IO[bytes], path: Path) -> None:
    """Copy a process's output into `path`, one CRI line (`<time> stdout F <text>`) per
    line, until EOF. Lines are flushed as they come so `follow` sees them at once."""
    with open(path, "ab", buffering=0) as out:
        for raw in iter(stream.readline, b""):
            if not raw.endswith(b"\n"):
                raw += b"\n"
            out.write(_now_rfc3339().encode() + b" stdout F " + raw)


def _split(line: str) -> tuple[str, str]:
    ts, _stream, _tag, content = line.split(" ", 3)
    return ts, content


def _content(line: str) -> str:
    try:
        return _split(line)[1]
    except ValueError:
        return line


@dataclass(frozen=True)
class LogQuery:
    """The kubelet's `containerLogs` query parameters."""

    follow: bool = False
    tail_lines: int | None = None
    since: datetime.datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False


def read(log: ContainerLog, query: LogQuery, poll: float = 0.1) -> Iterator[bytes]:
    """Yield the log as the kubelet would send it; with `follow`, keep yielding new lines
    until the container attempt has finished and everything was sent."""
    attempt = log.attempt - 1 if query.previous else log.attempt
    if attempt < 0:
        raise FileNotFoundError("previous terminated container not found")
    path = log.path(attempt)
    following = query.follow and not query.previous
    sent = 0

    def render(line: str) -> bytes | None:
        try:
            ts, content = _split(line)
        except ValueError:
            return None
        if query.since is not None and parse_time(ts) < query.since:
            return None
        return ((ts + " " + content) if query.timestamps else content).encode()

    def over_limit() -> bool:
        return query.limit_bytes is not None and sent >= query.limit_bytes

    def finished() -> bool:
        return log.finished.is_set() or log.attempt != attempt

    # The agent creates the file before starting the process; a follower that comes
    # early waits for it.
    while not path.exists():
        if not following or finished():
            return
        time.sleep(poll)

    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()
        partial = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        if query.tail_lines is not None:
            lines = lines[-query.tail_lines:] if query.tail_lines > 0 else []
        while True:
            for line in lines:
                line, partial = partial + line, ""
                if not line.endswith("\n"):  # still being written: wait for the rest
                    partial = line
                    continue
                out = render(line)
                if not out:
                    continue
                if query.limit_bytes is not None:
                    out = out[: query.limit_bytes - sent]
                sent += len(out)
                yield out
                if over_limit():
                    return
            if not following:
                return
            # Read "finished" before reading the file: whatever was written before the
            # process ended is then guaranteed to be in this read.
            done = finished()
            lines = f.readlines()
            if not lines:
                if done:
                    return
                time.sleep(poll)
