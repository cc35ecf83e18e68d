"""`http: {url, method, headers, timeout}` processors: a service (e.g. a Cloud Run processor) does the write.

One POST per write with `{processor, dates, run_id, task_id, attempt, options}`. The
`Idempotency-Key` header is the same for every retry of one attempt, so a service that already
did the work can say so instead of doing it twice. 429, 5xx and timeouts are retried a few
times within the attempt, then raised as transient (the engine retries the task); other 4xx
are final at once. The reply's `{rows, warnings}` is read back, but rows are counted in the
warehouse by the executor, never trusted from the reply.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from backfill.errors import TransientWarehouseError, WarehouseError
from backfill.outcome import ErrorCategory
from backfill.processors.base import Invocation, Reply

RETRIES_PER_ATTEMPT = 3
BACKOFF_SECONDS = 0.5


class HttpKind:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.url = str(config["url"])
        self.method = str(config.get("method", "POST")).upper()
        self.headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        self.timeout = float(config.get("timeout", 300))

    def write(self, inv: Invocation) -> Reply:
        body = json.dumps({"processor": inv.processor.name, "dates": [d.isoformat() for d in inv.dates],
                           "run_id": inv.run_id, "task_id": inv.task_id, "attempt": inv.attempt,
                           "options": dict(inv.options)}).encode()
        key = f"{inv.run_id}|{inv.task_id}|{inv.attempt}|{min(inv.dates)}:{max(inv.dates)}"
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, **self.headers, **_auth(inv, self.url)}
        notes: list[str] = []
        for n in range(1, RETRIES_PER_ATTEMPT + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method=self.method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
                    return _reply(resp.read(), notes)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode(errors="replace")
                if exc.code != 429 and exc.code < 500:
                    category = ErrorCategory.auth_config if exc.code in (401, 403) else ErrorCategory.processor_error
                    raise WarehouseError(f"{self.url} answered {exc.code}: {detail}", category=category) from exc
                why = f"HTTP {exc.code}"
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                why = f"{type(reason).__name__}: {reason}"
            notes.append(f"{self.url} call {n} of attempt {inv.attempt}: {why}")
            if n < RETRIES_PER_ATTEMPT:
                time.sleep(BACKOFF_SECONDS * 2 ** (n - 1) * random.uniform(0.5, 1.5))
        raise TransientWarehouseError(f"{self.url}: {notes[-1]} ({RETRIES_PER_ATTEMPT} calls)")


def _reply(raw: bytes, notes: list[str]) -> Reply:
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        doc = {}
    rows = doc.get("rows") if isinstance(doc, dict) else None
    warnings = [str(w) for w in (doc.get("warnings") or [])] if isinstance(doc, dict) else []
    return Reply(rows_claimed=int(rows) if isinstance(rows, int) else None, warnings=notes + warnings)


def _auth(inv: Invocation, url: str) -> dict[str, str]:
    """A bearer token from settings, or a Google ID token for Cloud Run (google-auth) when configured."""
    settings = inv.settings
    if settings is None:
        return {}
    token = settings.http_token.get_secret_value()
    if token:
        return {"Authorization": f"Bearer {token}"}
    if settings.http_auth == "google":
        import google.auth.transport.requests
        from google.oauth2 import id_token

        return {"Authorization": f"Bearer {id_token.fetch_id_token(google.auth.transport.requests.Request(), url)}"}
    return {}
