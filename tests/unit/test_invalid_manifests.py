"""The corpus of invalid manifests (tests/corpus/invalid): `kubesweep validate` refuses each
with exit code 2 and a message naming the field, never a traceback, never a hang.

Each `NAME.yaml` starts with `# expect: TEXT` (or, for files that are not text, has a
`NAME.expect` beside it): TEXT must appear in what validate prints. The same files are
applied to a real API server in tests/k8s/test_invalid_manifests_apply.py.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from kubesweep.cli import EXIT_INVALID, main

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "invalid"
FILES = sorted(CORPUS.glob("*.yaml"))
#: Seconds one file may take: parsing a small file is instant, a hang is a bug.
LIMIT = 30


def expectation(path: Path) -> str:
    """The text validate's output must contain for `path`."""
    sidecar = path.with_suffix(".expect")
    if sidecar.exists():
        return sidecar.read_text().strip()
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect:"), f"{path.name} lacks its '# expect:' line"
    return first.removeprefix("# expect:").strip()


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def hung(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds}s")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_the_corpus_is_large_enough():
    assert len(FILES) >= 60


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_validate_refuses_with_the_field(path: Path, capsys: pytest.CaptureFixture[str]):
    with time_limit(LIMIT):
        code = main(["validate", str(path)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == EXIT_INVALID, f"exit {code}:\n{text}"
    assert "Traceback" not in text
    assert expectation(path) in text, text
    assert len(text) < 4000, "the message should be short enough to read"


def test_validate_refuses_a_huge_file_without_reading_it(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * (17 * 2**20) + b"\n")
    with time_limit(LIMIT):
        code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == EXIT_INVALID and "larger than 16 MiB" in err, err
