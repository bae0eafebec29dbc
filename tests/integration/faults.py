"""An HTTP proxy in front of the moto S3 server that answers some requests with S3 errors.

`FaultyS3Proxy(upstream, fail=...)` forwards every request to `upstream` unless `fail`
(called with the method and path, under a lock) returns an error to answer instead, such as
`SLOW_DOWN` (503) or `INTERNAL_ERROR` (500). What it answered is counted in `injected`.
`hold` (called first, outside the lock) may block a request, to catch a client mid-sync.
Every request is kept in `requests` (method, path, headers, body). `corrupt` flips a bit of
the bodies it picks, and a body that no longer matches its Content-MD5 is answered
`BadDigest`, as S3 does (moto's server does not check it).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from stream.kafka.embedded import free_port

SLOW_DOWN = (503, "SlowDown", "Please reduce your request rate.")
INTERNAL_ERROR = (500, "InternalError", "We encountered an internal error. Please try again.")

Fault = tuple[int, str, str]


class FaultyS3Proxy:
    def __init__(
        self,
        upstream: str,
        fail: Callable[[str, str], Fault | None] = lambda method, path: None,
        hold: Callable[[str, str], None] = lambda method, path: None,
        corrupt: Callable[[str, str], bool] = lambda method, path: False,
    ) -> None:
        self.upstream = urlsplit(upstream)
        if self.upstream.hostname is None:
            raise ValueError(f"the proxy's upstream names no host: {upstream}")
        self.upstream_host: str = self.upstream.hostname
        self.fail = fail
        self.hold = hold
        self.corrupt = corrupt
        self.injected: Counter[str] = Counter()
        self.forwarded = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        """Every request received: method, path, headers, body."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultyS3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _decide(self, method: str, path: str) -> Fault | None:
        self.hold(method, path)
        with self._lock:
            fault = self.fail(method, path)
            if fault is None:
                self.forwarded += 1
            else:
                self.injected[fault[1]] += 1
            return fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:  # keep the test output quiet
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.requests.append((self.command, self.path, dict(self.headers), body))
                    if body and proxy.corrupt(self.command, self.path):
                        body = body[:-1] + bytes([body[-1] ^ 1])  # one bit flipped on the way
                fault = proxy._decide(self.command, self.path) or _digest_fault(self.headers, body)
                if fault is not None:
                    status, code, message = fault
                    self._answer(
                        status, [("Content-Type", "application/xml")], _error(code, message)
                    )
                    return
                upstream = http.client.HTTPConnection(
                    proxy.upstream_host, proxy.upstream.port, timeout=30
                )
                try:
                    upstream.request(self.command, self.path, body, dict(self.headers))
                    response = upstream.getresponse()
                    data = response.read()
                    headers = [
                        (name, value)
                        for name, value in response.getheaders()
                        if name.lower() not in ("transfer-encoding", "connection")
                    ]
                    self._answer(response.status, headers, data)
                finally:
                    upstream.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                if not any(name.lower() == "content-length" for name, _ in headers):
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        return Handler


def _digest_fault(headers: Any, body: bytes) -> Fault | None:
    """What S3 answers a body that does not match its Content-MD5 (moto does not check)."""
    sent = headers.get("Content-MD5")
    if sent is None or base64.b64encode(hashlib.md5(body).digest()).decode() == sent:
        return None
    return (400, "BadDigest", "The Content-MD5 you specified did not match what we received.")


def _error(code: str, message: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        "<RequestId>cohort-sync-test</RequestId></Error>"
    ).encode()
