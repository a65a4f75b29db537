"""The operator's /healthz (liveness) and /readyz (readiness) endpoints.

Served from a thread of their own, before kopf starts, so an operator started while the
API server is down stays alive (liveness 200) and says it is not ready (readiness 503)
until it can reach the API server and its watches run.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds between two checks that the API server answers.
CHECK_INTERVAL = 5.0


class Probes:
    """Readiness = the API server answered the last check and the watches are running."""

    def __init__(self, api_alive: Callable[[], bool]) -> None:
        self.api_alive = api_alive
        self.api_ok = False
        self.watching = threading.Event()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def ready(self) -> bool:
        """True when the operator can do its work now."""
        return self.api_ok and self.watching.is_set()

    def check_api(self) -> bool:
        """Ask the API server once; remembers the answer for /readyz."""
        try:
            self.api_ok = bool(self.api_alive())
        except Exception as exc:  # noqa: BLE001 - any failure means not reachable
            log.debug("API server check failed: %s", exc)
            self.api_ok = False
        return self.api_ok

    def serve(self, address: str, port: int) -> None:
        """Serve /healthz and /readyz, and check the API server, from daemon threads."""
        probes = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                if self.path == "/healthz":
                    code, text = 200, "ok"
                elif self.path == "/readyz":
                    code, text = (200, "ready") if probes.ready else \
                        (503, "not ready: " + ("watches starting" if probes.api_ok
                                               else "API server unreachable"))
                else:
                    code, text = 404, "not found"
                body = (text + "\n").encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass  # probes every few seconds would flood the log

        class Server(http.server.ThreadingHTTPServer):
            # `::` (every address, IPv4 too on Linux) or an IPv6 address needs an IPv6
            # socket; http.server's default is IPv4 only, where `::` failed at startup
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

        self._server = Server((address, port), Handler)
        threading.Thread(target=self._server.serve_forever, name="probes", daemon=True).start()
        threading.Thread(target=self._check_forever, name="api-check", daemon=True).start()

    def _check_forever(self) -> None:
        while True:
            self.check_api()
            time.sleep(CHECK_INTERVAL)

    def wait_for_api(self, stop: threading.Event, first: float = 1.0,
                     cap: float = 30.0) -> bool:
        """Block until the API server answers (backing off from `first` to `cap`
        seconds), or `stop` is set; True when it answered."""
        delay = first
        while not stop.is_set():
            if self.check_api():
                return True
            log.warning("API server unreachable; retrying in %.0fs", delay)
            stop.wait(delay)
            delay = min(delay * 2, cap)
        return False
