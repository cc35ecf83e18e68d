"""`http:` processors: a service (e.g. a Cloud Run processor) does the write.

By default one POST per write with `{processor, dates, run_id, task_id, attempt, options}`. A
service that expects its own request says so in the spec, so it needs no adapter:

- `body:` a JSON body template. A string value `$name` is replaced by a value of the write
  (types kept): `$start_date`, `$end_date`, `$dates`, `$processors` (the processor's
  `history_names`, the names the service knows, else its own name), `$run_id`, `$task_id`,
  `$attempt`, `$options` (all of them) or `$options.KEY` (one). A key `$options` splices every
  option into the mapping it stands in (`{"$options": true}`).
- `headers_from_env:` `{X-API-Key: NBA_API_KEY}`: header values read from environment variables
  at call time. They are secrets: never in a message, a log line or the run history.
- `reply:` how to read a 200 reply that carries one result per remote processor, as the users'
  `/process-date-range` does (`{"status": "partial_failure", "results": [...]}`): `results`
  (where the list is, dotted), `processor`, `status`, `message` and `category` (keys of each
  result) and `success` (the status values that mean success). A result of ours that is not a
  success fails the write with the service's message; a `timeout` category is transient.

The `Idempotency-Key` header is the same for every retry of one attempt, so a service that already
did the work can say so instead of doing it twice. 429, 5xx and timeouts are retried a few times
within the attempt, then raised as transient (the engine retries the task); other 4xx are final at
once. Rows are counted in the warehouse by the executor, never trusted from the reply.
"""

from __future__ import annotations

import json
import os
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
DEFAULT_REPLY = {"results": "results", "processor": "processor", "status": "status", "message": "error",
                 "category": "failure_category", "success": ["success"]}
# A service's failure category (the users' vocabulary) -> ours; anything else is `processor_error`.
_THEIR_CATEGORY = {"upstream_failure": ErrorCategory.dependency_gap, "no_data_available": ErrorCategory.empty_output,
                   "configuration_error": ErrorCategory.critical, "processing_error": ErrorCategory.processor_error}


class HttpKind:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.url = str(config["url"])
        self.method = str(config.get("method", "POST")).upper()
        self.headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        self.headers_from_env = {str(k): str(v) for k, v in (config.get("headers_from_env") or {}).items()}
        self.timeout = float(config.get("timeout", 300))
        self.body = config.get("body")
        self.reply = {**DEFAULT_REPLY, **config["reply"]} if config.get("reply") is not None else None

    def write(self, inv: Invocation) -> Reply:
        body = json.dumps(self._body(inv), default=str).encode()
        key = f"{inv.run_id}|{inv.task_id}|{inv.attempt}|{min(inv.dates)}:{max(inv.dates)}"
        headers = {"Content-Type": "application/json", "Idempotency-Key": key, **self.headers,
                   **self._secret_headers(), **_auth(inv, self.url)}
        notes: list[str] = []
        for n in range(1, RETRIES_PER_ATTEMPT + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method=self.method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
                    return self._read(resp.read(), notes, inv)
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

    # -- the request ----------------------------------------------------------------------
    def _body(self, inv: Invocation) -> Any:
        if self.body is None:
            return {"processor": inv.processor.name, "dates": [d.isoformat() for d in inv.dates],
                    "run_id": inv.run_id, "task_id": inv.task_id, "attempt": inv.attempt,
                    "options": dict(inv.options)}
        return fill_template(self.body, template_values(inv))

    def _secret_headers(self) -> dict[str, str]:
        out = {}
        for header, var in self.headers_from_env.items():
            value = os.environ.get(var)
            if not value:
                # Names only: the value is a secret and is never part of a message.
                raise WarehouseError(f"{self.url}: environment variable {var} (for header {header}) is not set "
                                     "where the worker runs", category=ErrorCategory.critical)
            out[header] = value
        return out

    # -- the reply ------------------------------------------------------------------------
    def _read(self, raw: bytes, notes: list[str], inv: Invocation) -> Reply:
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            doc = {}
        if self.reply is not None:
            self._check_results(doc, inv)
        rows = doc.get("rows") if isinstance(doc, dict) else None
        warnings = [str(w) for w in (doc.get("warnings") or [])] if isinstance(doc, dict) else []
        return Reply(rows_claimed=int(rows) if isinstance(rows, int) else None, warnings=notes + warnings)

    def _check_results(self, doc: Any, inv: Invocation) -> None:
        """Fail the write when the service's result for one of our names is not a success."""
        spec = self.reply or DEFAULT_REPLY
        results: Any = doc
        for part in str(spec["results"]).split("."):
            results = results.get(part) if isinstance(results, dict) else None
        if not isinstance(results, list):
            raise WarehouseError(f"{self.url}: the reply has no result list at `{spec['results']}`",
                                 category=ErrorCategory.processor_error)
        ok = spec["success"] if isinstance(spec["success"], list) else [spec["success"]]
        mine = set(remote_names(inv))
        seen = [r for r in results if isinstance(r, dict) and str(r.get(spec["processor"])) in mine]
        if not seen:
            raise WarehouseError(f"{self.url}: the reply has no result for {', '.join(sorted(mine))}",
                                 category=ErrorCategory.processor_error)
        for r in seen:
            status = r.get(spec["status"])
            if status in ok:
                continue
            message = str(r.get(spec["message"]) or f"status {status}")
            theirs = str(r.get(spec["category"]) or "")
            text = f"{r.get(spec['processor'])} {status}: {message}"
            if theirs == "timeout":
                raise TransientWarehouseError(f"{self.url}: {text}")
            category = _THEIR_CATEGORY.get(theirs, ErrorCategory.processor_error)
            raise WarehouseError(f"{self.url}: {text}", category=category)


def remote_names(inv: Invocation) -> list[str]:
    """The names the service knows the processor by: its `history_names`, else its own name."""
    return list(inv.processor.history_names) or [inv.processor.name]


def template_values(inv: Invocation) -> dict[str, Any]:
    return {"start_date": min(inv.dates).isoformat(), "end_date": max(inv.dates).isoformat(),
            "dates": [d.isoformat() for d in inv.dates], "processors": remote_names(inv), "run_id": inv.run_id,
            "task_id": inv.task_id, "attempt": inv.attempt, "options": dict(inv.options)}


def fill_template(node: Any, values: Mapping[str, Any]) -> Any:
    """The body template with every `$name` value replaced (types kept) and `$options` keys spliced."""
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for k, v in node.items():
            if k == "$options":
                out.update(values["options"])
            else:
                out[str(k)] = fill_template(v, values)
        return out
    if isinstance(node, list):
        return [fill_template(v, values) for v in node]
    if isinstance(node, str) and node.startswith("$"):
        name = node[1:]
        if name.startswith("options."):
            return values["options"].get(name.removeprefix("options."))
        if name in values:
            return values[name]
    return node


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
