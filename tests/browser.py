"""A real headless Chromium (Debian's `chromium`, installed by scripts/test.sh) for tests
of the HTML report: the DOM after the page's scripts ran, and a screenshot.

Each call runs a fresh browser with a throwaway profile, no network services, and a
virtual-time budget so the page's scripts finish before the DOM is dumped.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # WebGL (plotly's parallel coordinates) on the software rasteriser, explicitly:
         # Chromium no longer falls back to it by itself
         "--enable-unsafe-swiftshader", "--hide-scrollbars",
         # the report must open offline: any network request it tried would fail
         "--host-resolver-rules=MAP * ~NOTFOUND"]


def chromium() -> str:
    """Path of the chromium binary (scripts/test.sh installs Debian's package)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError("chromium is not installed: run scripts/install-chromium.sh "
                             "(scripts/test.sh does)")
    return path


def _run(args: list[str], page: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout, check=False)


def dump_dom(page: Path, budget_ms: int = 30_000, timeout: float = 180) -> str:
    """The page's DOM once its scripts ran (serialised by Chromium)."""
    done = _run([f"--virtual-time-budget={budget_ms}", "--dump-dom"], page, timeout)
    if done.returncode != 0 or "<html" not in done.stdout:
        raise AssertionError(f"chromium --dump-dom failed ({done.returncode}):\n"
                             f"{done.stderr[-3000:]}")
    return done.stdout


def screenshot(page: Path, out: Path, size: tuple[int, int] = (1400, 3000),
               budget_ms: int = 30_000, timeout: float = 180) -> Path:
    """A PNG of the page at window `size` once its scripts ran."""
    done = _run([f"--virtual-time-budget={budget_ms}", f"--window-size={size[0]},{size[1]}",
                 f"--screenshot={out}"], page, timeout)
    if done.returncode != 0 or not out.exists():
        raise AssertionError(f"chromium --screenshot failed ({done.returncode}):\n"
                             f"{done.stderr[-3000:]}")
    return out


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit PNG, unfiltered (no Pillow)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), f"unsupported PNG type {depth}/{color}"
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        filt, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if filt == 1:
                line[i] = (line[i] + a) & 0xFF
            elif filt == 2:
                line[i] = (line[i] + b) & 0xFF
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) \
                    & 0xFF
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def ink(path: Path) -> tuple[float, int]:
    """(share of pixels that are not the background colour, number of distinct colours)
    of a PNG: a blank page gives (0, 1)."""
    width, height, rows = png_pixels(path)
    channels = len(rows[0]) // width
    background = rows[0][:3]
    colours: set[bytes] = set()
    inked = 0
    for row in rows[::4]:  # every 4th row: plenty for "is anything drawn"
        for x in range(0, width * channels, channels):
            pixel = row[x:x + 3]
            colours.add(pixel)
            inked += pixel != background
    return inked / (len(rows[::4]) * width), len(colours)
