"""A counting loopback HTTP proxy in front of an object-store server (moto's S3, fake-gcs-server, Azurite),
for tests and bench/stores.py.

It forwards every request unchanged and counts them by kind; it can also answer as each store does
under trouble, which the servers themselves cannot: throttling (503 or 429), a server error (500),
permission denied (403), no answer at all (a hang), or disappear altogether (connection refused).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

#: What each mode answers: (status, S3 error code, Azure error code).
FAULTS = {
    "slowdown": (503, "SlowDown", "ServerBusy"),
    "throttle": (429, "TooManyRequests", "TooManyRequests"),
    "error": (500, "InternalError", "InternalError"),
    "deny": (403, "AccessDenied", "AuthorizationPermissionMismatch"),
}
#: GCS JSON API paths: /storage/v1/b/BUCKET/o (a listing) and /storage/v1/b/BUCKET/o/OBJECT.
_GCS_LIST = re.compile(r"^/storage/v1/b/[^/]+/o/?$")


class CountingProxy:
    """Forwards to `upstream` (http://host:port) and counts requests by kind (head, list, get, put, other).

    `store` (s3, gcs or azure) picks how a fault is spelled, so each client sees its own store's errors.
    """

    def __init__(self, upstream: str, store: str = "s3") -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.store = store
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        #: "forward"; a key of FAULTS to answer that to everything; "deny-list" to deny listings only;
        #: "hang" to accept and never answer.
        self.mode = "forward"
        self.connections: set[socket.socket] = set()
        #: Client connections open now; `closed` is notified as each one ends.
        self.open = 0
        self.closed = threading.Condition(self.lock)
        self._released = threading.Event()
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

            def forward(self) -> None:
                proxy._handle(self)

            do_HEAD = do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = forward

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A client that gave up (its timeout, a stopped connector) closes its end: not news.
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        """The proxy's URL, for AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST or an Azure BlobEndpoint."""
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
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    @staticmethod
    def kind(method: str, path: str) -> str:
        """head, list (a bucket or container listing on any of the three stores), get, put or other."""
        if method == "HEAD":
            return "head"
        if method == "GET":
            listing = "list-type=" in path or "delimiter=" in path or "comp=list" in path
            return "list" if listing or _GCS_LIST.match(urlsplit(path).path) else "get"
        return "put" if method == "PUT" else "other"

    def _fault(self, handler: BaseHTTPRequestHandler, status: int, s3_code: str, azure_code: str) -> None:
        reason = "simulated by the test proxy"
        if self.store == "gcs":
            ctype = "application/json"
            body = json.dumps({"error": {"code": status, "message": reason, "errors": [{"message": reason}]}})
        elif self.store == "azure":
            ctype = "application/xml"
            body = f"<Error><Code>{azure_code}</Code><Message>{reason}</Message></Error>"
        else:
            ctype = "application/xml"
            body = f"<Error><Code>{s3_code}</Code><Message>{reason}</Message></Error>"
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        if self.store == "azure":
            handler.send_header("x-ms-error-code", azure_code)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        with self.lock:
            self.counts[self.kind(handler.command, handler.path)] += 1
        mode = self.mode
        if mode == "hang":
            self._released.wait(60)  # until the proxy stops: the client's own timeout must give up first
            handler.close_connection = True
            return
        if mode in FAULTS:
            self._fault(handler, *FAULTS[mode])
            return
        if mode == "deny-list" and self.kind(handler.command, handler.path) == "list":
            self._fault(handler, *FAULTS["deny"])
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
