"""A real Prometheus server for the tests: 127.0.0.1, a free port, temporary storage,
scraping given targets every second and evaluating the chart's alert rules."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.chart.chart import RULES, tool


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    """One Prometheus process; `start()`, query, `stop()`."""

    workdir: Path
    targets: list[str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server logs."""
        return self.workdir / "prometheus.log"

    def start(self, timeout: float = 60.0) -> None:
        """Write the config (1 s scrapes, the chart's rules) and wait until ready."""
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "kubesweep-operator",
                                "static_configs": [{"targets": self.targets}]}],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [tool("prometheus", "run scripts/install-prometheus.sh"),
             f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}:\n"
                                     f"{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"prometheus not ready after {timeout}s:\n"
                             f"{self.log_path.read_text()}")

    def stop(self) -> None:
        """Terminate the server (kill if it lingers)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        """GET /api/v1/<path>; the decoded body, whatever its status (errors included)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:  # 400/422 carry a JSON error body
            return json.loads(e.read())

    def query_range(self, expr: str, start: float, end: float,
                    step: float = 1.0) -> dict[str, Any]:
        """A range query, as a Grafana time series panel runs it."""
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                        step=f"{step:g}")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; raises on a query error."""
        body = self.api("query", query=expr)
        assert body.get("status") == "success", body
        return body["data"]["result"]

    def target_health(self) -> list[str]:
        """Health of every scrape target ("up", "down", "unknown")."""
        body = self.api("targets")
        return [t["health"] for t in body["data"]["activeTargets"]]


def finite_points(body: dict[str, Any]) -> int:
    """How many non-NaN samples a successful range query returned."""
    return sum(1 for series in body["data"]["result"] for _, v in series["values"]
               if not math.isnan(float(v)))
