"""The node agent's kubelet HTTPS endpoint: `/containerLogs/<ns>/<pod>/<container>`,
which the API server proxies `pods/log` (and so `kubectl logs`) to."""

from __future__ import annotations

import datetime
import logging
import ssl
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from .container_logs import ContainerLog, LogQuery, parse_time, read

log = logging.getLogger(__name__)

# (namespace, pod, container) -> the container's log, or None if unknown.
LogLookup = Callable[[str, str, str], "ContainerLog | None"]


def parse_query(raw: str) -> LogQuery:
    """Translate kubelet log query parameters into a LogQuery."""
    q = {k: v[-1] for k, v in parse_qs(raw).items()}

    def flag(name: str) -> bool:
        return q.get(name, "false").lower() in ("true", "1")

    def number(name: str) -> int | None:
        return int(q[name]) if name in q else None

    since = None
    if "sinceTime" in q:
        since = parse_time(q["sinceTime"])
    elif "sinceSeconds" in q:
        since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            seconds=int(q["sinceSeconds"]))
    return LogQuery(
        follow=flag("follow"),
        tail_lines=number("tailLines"),
        since=since,
        timestamps=flag("timestamps"),
        limit_bytes=number("limitBytes"),
        previous=flag("previous"),
    )


def _handler(lookup: LogLookup) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: the body ends when the connection closes, which is what a
        # streamed `follow` response needs (the API server proxies it as is).
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("log server: " + format, *args)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            if parts[:1] == ["healthz"]:
                self._text(HTTPStatus.OK, "ok")
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._text(HTTPStatus.NOT_FOUND,
                           f"the kubesweep node agent only serves /containerLogs, not {url.path}")
                return
            _, ns, pod, container = parts
            try:
                query = parse_query(url.query)
            except ValueError as e:
                self._text(HTTPStatus.BAD_REQUEST, f"bad log query: {e}")
                return
            clog = lookup(ns, pod, container)
            if clog is None:
                self._text(HTTPStatus.NOT_FOUND,
                           f'container "{container}" in pod "{pod}" in namespace "{ns}" '
                           "is not known to this node")
                return
            try:
                chunks = read(clog, query)
                first = next(chunks, b"")
            except FileNotFoundError as e:
                self._text(HTTPStatus.BAD_REQUEST, str(e))
                return
            except Exception as e:  # answer instead of dropping the connection (EOF)
                log.exception("serving logs of %s/%s/%s", ns, pod, container)
                self._text(HTTPStatus.INTERNAL_SERVER_ERROR, f"node agent: {e!r}")
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                self.wfile.write(first)
                self.wfile.flush()
                for chunk in chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass  # the client stopped following

        def _text(self, status: HTTPStatus, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class LogServer:
    """HTTPS server on 127.0.0.1 for the API server's log requests. It does not check
    client certificates: it only listens on loopback and serves test logs."""

    def __init__(self, port: int, cert: Path, key: Path, lookup: LogLookup) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(lookup))
        self._httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
        self.port = int(self._httpd.server_address[1])

    def start(self) -> None:
        """Serve in a daemon thread."""
        threading.Thread(target=self._httpd.serve_forever, name="log-server",
                         daemon=True).start()

    def stop(self) -> None:
        """Stop accepting requests."""
        self._httpd.shutdown()
