"""A counting loopback HTTP proxy in front of an S3-compatible server (moto), for tests and bench/s3.py.

It forwards every request unchanged and counts them; it can also answer like a store under load
(503 SlowDown) or disappear altogether (connection refused), which moto itself cannot do.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class CountingProxy:
    """Forwards to `upstream` (http://host:port) and counts requests by kind (head, list, get, put, other)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        #: "forward", or "slowdown" to answer 503 SlowDown to everything.
        self.mode = "forward"
        self.connections: set[socket.socket] = set()
        #: Client connections open now; `closed` is notified as each one ends.
        self.open = 0
        self.closed = threading.Condition(self.lock)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy.lock:
                    proxy.connections.add(self.connection)
                    proxy.open += 1

            def finish(self) -> None:
                super().finish()
                with proxy.lock:
                    proxy.open -= 1
                    proxy.closed.notify_all()

            def do_HEAD(self) -> None:
                proxy._handle(self)

            def do_GET(self) -> None:
                proxy._handle(self)

            def do_PUT(self) -> None:
                proxy._handle(self)

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_DELETE(self) -> None:
                proxy._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        """The proxy's URL, for AWS_ENDPOINT_URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def total(self, *kinds: str) -> int:
        """Requests counted so far of these kinds (all when none given)."""
        with self.lock:
            return sum(n for k, n in self.counts.items() if not kinds or k in kinds)

    def wait_all_closed(self, timeout: float) -> bool:
        """Block until every client connection has ended (True), or `timeout` seconds pass (False)."""
        with self.closed:
            return self.closed.wait_for(lambda: self.open == 0, timeout)

    def reset(self) -> None:
        """Forget the counts."""
        with self.lock:
            self.counts.clear()

    def stop(self) -> None:
        """Stop listening and drop open connections: clients now get connection refused."""
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    @staticmethod
    def kind(method: str, path: str) -> str:
        """head, list (a bucket GET with list-type), get, put or other."""
        if method == "HEAD":
            return "head"
        if method == "GET":
            return "list" if "list-type=" in path or "delimiter=" in path else "get"
        return "put" if method == "PUT" else "other"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        with self.lock:
            self.counts[self.kind(handler.command, handler.path)] += 1
        if self.mode == "slowdown":
            xml = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
            handler.send_response(503)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(xml)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(xml)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection",)}
            conn.request(handler.command, handler.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            handler.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                    handler.send_header(key, value)
            # A HEAD's Content-Length is the object's size, not this (empty) body's.
            size = response.getheader("Content-Length") if handler.command == "HEAD" else None
            handler.send_header("Content-Length", size or str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
        finally:
            conn.close()
