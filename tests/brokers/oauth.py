"""An OAuth 2.0 token endpoint for the OAUTHBEARER tests: the client-credentials grant, for
one client, answering with unsecured JWTs (`"alg": "none"`), which Apache Kafka's default
OAUTHBEARER validator (meant for tests) accepts. It counts the tokens it issues."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["TokenEndpoint"]


class TokenEndpoint:
    """`with TokenEndpoint("client", "secret", lifetime_s=30) as endpoint: endpoint.url`."""

    def __init__(self, client_id: str, secret: str, *, lifetime_s: float = 3600.0) -> None:
        self.client_id = client_id
        self.secret = secret
        self.lifetime_s = lifetime_s
        self.issued = 0
        self.refused = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                status, answer = endpoint.answer(self.headers.get("Authorization", ""), form)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/oauth2/token"

    def answer(self, authorization: str, form: dict[str, list[str]]) -> tuple[int, Any]:
        expected = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        if form.get("grant_type") != ["client_credentials"] or authorization != f"Basic {expected}":
            with self._lock:
                self.refused += 1
            return 401, {"error": "invalid_client"}
        now = time.time()
        claims = {"sub": self.client_id, "iat": int(now), "exp": int(now + self.lifetime_s)}
        with self._lock:
            self.issued += 1
        return 200, {
            "access_token": _unsecured_jwt(claims),
            "token_type": "Bearer",
            "expires_in": int(self.lifetime_s),
        }

    def __enter__(self) -> TokenEndpoint:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def _unsecured_jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}."
