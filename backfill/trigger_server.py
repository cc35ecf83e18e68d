"""`backfill triggers serve`: the trigger question over HTTP, for orchestrators without this package.

The users' phase transitions are Cloud Functions fed by Pub/Sub: they can make an HTTP request,
but they run no Python of ours and cannot reach the backfill's Redis. So one small, read-only
endpoint answers the same question as `backfill triggers check`:

    GET /triggers/<name>      (the name URL-encoded: phase3-%3Ephase4; or ?name=phase3->phase4)
    Authorization: Bearer <token>

    200  the live side may fire          423  paused (JSON names holders, reasons, expiry)
    503  Redis unreachable and the policy fails closed        401  no or wrong token
    404  a trigger name the pipeline does not have (the JSON lists the known ones)

It only reads Redis (never prunes, pauses or releases), answers nothing else, and compares the
token in constant time. The token comes from BACKFILL_TRIGGERS_TOKEN and is never printed or
logged. The standard library's threading HTTP server is enough: one request per trigger
decision, a few per night.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from backfill.triggers import TriggerAnswer

log = logging.getLogger(__name__)
Asker = Callable[[str], TriggerAnswer]


class TriggerServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows how to answer, which names exist, and the token."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], asker: Asker, known: Sequence[str], token: str) -> None:
        if not token:
            raise ValueError("a token is required")
        super().__init__(address, _Handler)
        self.asker = asker
        self.known = list(known)
        self.token = token.encode()


class _Handler(BaseHTTPRequestHandler):
    server: TriggerServer
    server_version = "backfill-triggers"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        parts = urlsplit(self.path)
        if parts.path == "/healthz":
            self._send(200, {"ok": True})
            return
        if not self._authorized():
            self._send(401, {"error": "missing or wrong token (Authorization: Bearer <token>)"})
            return
        name = parse_qs(parts.query).get("name", [""])[0]
        if parts.path.startswith("/triggers/"):
            name = unquote(parts.path[len("/triggers/"):])
        elif parts.path not in ("/triggers", "/triggers/"):
            self._send(404, {"error": "GET /triggers/<name>, e.g. /triggers/phase3-%3Ephase4"})
            return
        if name not in self.server.known:
            self._send(404, {"error": f"unknown trigger {name!r}", "known": self.server.known})
            return
        answer = self.server.asker(name)
        self._send(answer.http_status, answer.to_json())

    def do_POST(self) -> None:  # noqa: N802
        self._send(405, {"error": "read-only: GET /triggers/<name>"})

    do_PUT = do_DELETE = do_PATCH = do_POST  # noqa: N815

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer":
            value = self.headers.get("X-Backfill-Token", "")
        return hmac.compare_digest(value.strip().encode(), self.server.token)

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        # The request line only (never headers, so never the token).
        log.info("%s %s", self.address_string(), format % args)
