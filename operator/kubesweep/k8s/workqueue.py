"""A work queue of Sweep keys: deduplicated, delayed adds, one worker per key at a time.

Job and Sweep events only say "look at sweep X again"; many events for one sweep while
it waits in the queue collapse into one pass, and a key never runs on two workers at
once (two passes over one sweep could both create the same trial's Job: harmless, but
wasteful).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Hashable


class WorkQueue:
    """Keys to reconcile; `get` blocks until one is due."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._ready: deque[Hashable] = deque()
        self._queued: set[Hashable] = set()
        self._active: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}
        self._seq = 0
        self._closed = False

    def add(self, key: Hashable, delay: float = 0.0) -> None:
        """Schedule `key` now, or after `delay` seconds (the earliest request wins)."""
        with self._cv:
            if delay > 0:
                when = time.monotonic() + delay
                if key in self._queued or self._due.get(key, float("inf")) <= when:
                    return
                self._due[key] = when
                self._seq += 1
                heapq.heappush(self._timers, (when, self._seq, key))
            elif key in self._active:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
            self._cv.notify()

    def forget(self, key: Hashable) -> None:
        """Drop pending timers of `key` (its object is gone)."""
        with self._cv:
            self._due.pop(key, None)

    def get(self, timeout: float | None = None) -> Hashable | None:
        """The next due key (marked active until `done`), or None on timeout/close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._closed:
                self._promote_timers()
                while self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    if key in self._active:  # running elsewhere: run again after it
                        self._dirty.add(key)
                        continue
                    self._active.add(key)
                    return key
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    return None
                waits = [t - now for t in (deadline, self._timers[0][0] if self._timers
                                           else None) if t is not None]
                self._cv.wait(max(min(waits), 0.001) if waits else None)
            return None

    def _promote_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            when, _, key = heapq.heappop(self._timers)
            if self._due.get(key) != when:
                continue  # superseded by an earlier request, or forgotten
            del self._due[key]
            if key in self._active:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)

    def done(self, key: Hashable) -> None:
        """Mark `key` finished; it runs again if it was added meanwhile."""
        with self._cv:
            self._active.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
                self._cv.notify()

    def close(self) -> None:
        """Wake every waiting worker and make `get` return None."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
