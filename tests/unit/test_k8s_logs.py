"""Reading a trial's log in bounded memory: only metric lines and the last line are kept."""

from __future__ import annotations

import tracemalloc

from kubesweep.k8s.logs import MAX_KEPT_BYTES, MAX_LINE_BYTES, MetricLines, metric_text
from kubesweep.k8s.objects import read_metrics


def _chunks(total: int, size: int = 256 * 1024):
    """`total` bytes of noise with a metric report every 1,000 lines, in odd-sized chunks."""
    line = b"x" * 99 + b"\n"
    block = bytearray()
    n = 0
    sent = 0
    while sent < total:
        n += 1
        block += f"step={n} loss={1 / n}\n".encode() if n % 1000 == 0 else line
        if len(block) >= size:
            yield bytes(block[:size - 7])
            block = block[size - 7:]
            sent += size - 7
    yield bytes(block) + b"Traceback: the end\n"


def test_a_large_log_is_read_in_bounded_memory():
    tracemalloc.start()
    text = metric_text(_chunks(32 * 1024 * 1024))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # a few chunks and the kept lines, not the 32 MiB (tests/k8s measures the operator)
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
    log = read_metrics(text, None, "loss")
    assert len(log.history) > 300 and log.history[0] == (1000, 0.001)
    assert log.last_line == "Traceback: the end"


def test_metric_lines_keep_order_and_the_last_line():
    lines = MetricLines()
    for piece in (b"epoch=1 acc=0.5\nnoise\n{\"acc\": 0.7", b", \"epoch\": 2}\nbye"):
        lines.feed(piece)
    assert lines.text() == 'epoch=1 acc=0.5\n{"acc": 0.7, "epoch": 2}\nbye\n'


def test_an_endless_line_and_too_many_reports_are_cut():
    lines = MetricLines()
    lines.feed(b"acc=0.1 " + b"y" * (3 * MAX_LINE_BYTES))
    lines.feed(b"\n")
    assert len(lines.last_line) == MAX_LINE_BYTES
    many = MetricLines()
    report = b"acc=0.5 " + b"z" * 1000 + b"\n"
    for _ in range(2 * MAX_KEPT_BYTES // len(report)):
        many.feed(report)
    assert MAX_KEPT_BYTES // 2 < len(many.text()) <= MAX_KEPT_BYTES + len(report)
