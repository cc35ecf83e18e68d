"""A local stand-in for the users' Phase 3 Cloud Run service and its `/process-date-range`.

`POST /process-date-range` with `{"start_date", "end_date", "processors": [class names],
"backfill_mode", ...}` and an `X-API-Key` header, as their service takes backfills. A wrong or
missing key is 401. Otherwise it runs each named processor over the range and answers 200 even
when one failed: `{"status": "success" | "partial_failure", "results": [{"processor", "status":
"success" | "error", "error", "stats"}]}`. `--fail NAME=MESSAGE` makes processor NAME answer
`error` with MESSAGE (a processor that fails inside a 200 reply).

    ADOPT_API_KEY=... python examples/adopt/service.py --warehouse duckdb:///.backfill/warehouse.duckdb

The processors write through the same warehouse the tool reads (a DuckDB file is opened per
request, so the worker and the service take turns), as their service writes BigQuery.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backfill.spec import load_spec  # noqa: E402
from backfill.warehouse import open_warehouse  # noqa: E402

HERE = Path(__file__).resolve().parent
# Their processors by class name: the SQL each runs over the range, and the processor of
# pipeline.yaml whose table it writes.
PROCESSORS = {
    "TeamPointsProcessor": ("team_points", "SELECT game_date, game_id, team, points, @backfill_mode AS backfill_mode "
                                           "FROM nba_raw.team_boxscores "
                                           "WHERE game_date BETWEEN @start_date AND @end_date"),
    "PlayerPointsProcessor": ("player_points", "SELECT game_date, game_id, player_id, team, points, "
                                               "@backfill_mode AS backfill_mode FROM nba_raw.player_boxscores "
                                               "WHERE game_date BETWEEN @start_date AND @end_date"),
}


class Service:
    def __init__(self, warehouse: str, api_key: str, fail: dict[str, str] | None = None) -> None:
        self.warehouse = warehouse
        self.api_key = api_key
        self.fail = dict(fail or {})
        self.seen: list[dict[str, Any]] = []  # every request (body and headers), for tests
        self.lock = threading.Lock()
        spec = load_spec(HERE)
        self.tables = {name: spec.processors[proc].table for name, (proc, _) in PROCESSORS.items()}

    def handle(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.seen.append({"path": path, "body": body, "headers": headers})
        if path != "/process-date-range":
            return 404, {"error": f"no route {path}"}
        if {k.lower(): v for k, v in headers.items()}.get("x-api-key") != self.api_key:  # names are case-blind
            return 401, {"error": "invalid or missing API key"}
        try:
            first, last = dt.date.fromisoformat(body["start_date"]), dt.date.fromisoformat(body["end_date"])
            names = list(body["processors"])
        except (KeyError, TypeError, ValueError) as exc:
            return 400, {"error": f"bad request: {exc}"}
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        results = [self._run(name, days, body) for name in names]
        ok = all(r["status"] == "success" for r in results)
        return 200, {"status": "success" if ok else "partial_failure", "results": results}

    def _run(self, name: str, days: list[dt.date], body: dict[str, Any]) -> dict[str, Any]:
        if name in self.fail:
            return {"processor": name, "status": "error", "error": self.fail[name], "stats": {}}
        if name not in PROCESSORS:
            return {"processor": name, "status": "error", "error": f"unknown processor {name}", "stats": {}}
        params = {"start_date": days[0], "end_date": days[-1], "backfill_mode": bool(body.get("backfill_mode"))}
        try:
            with self.lock, _open(self.warehouse) as wh:
                rows = wh.replace_partitions(self.tables[name], days, PROCESSORS[name][1], params)
        except Exception as exc:  # noqa: BLE001 - their service reports a processor's exception per result
            return {"processor": name, "status": "exception", "error": f"{type(exc).__name__}: {exc}", "stats": {}}
        return {"processor": name, "status": "success", "error": None, "stats": {"rows": rows}}


def _open(url: str) -> Any:
    return open_warehouse(url, hold=False) if url.startswith("duckdb:") else open_warehouse(url)


def serve(service: Service, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            except ValueError:
                body = {}
            code, doc = service.handle(self.path, body, dict(self.headers))
            data = json.dumps(doc, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = False  # shutdown waits for in-flight requests (they hold the warehouse)
    server.block_on_close = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--warehouse", required=True, help="duckdb:///path.duckdb or bigquery://...")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--fail", action="append", default=[], metavar="NAME=MESSAGE")
    args = parser.parse_args()
    key = os.environ.get("ADOPT_API_KEY")
    if not key:
        parser.error("set ADOPT_API_KEY (the key callers must send as X-API-Key)")
    fail = dict(f.split("=", 1) for f in args.fail)
    server = serve(Service(args.warehouse, key, fail), args.port)
    print(f"serving on http://127.0.0.1:{server.server_address[1]}/process-date-range", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
