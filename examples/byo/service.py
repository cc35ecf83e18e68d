"""A tiny HTTP processor service, standing in for the users' Cloud Run processors.

`POST /process` with `{processor, dates, run_id, task_id, attempt, options}` writes the dates the
way the Python processor does, into the warehouse file given on the command line, and answers
`{rows, warnings}`. It remembers every request (headers included) for tests; `--fail-first N`
answers 503 to the first N requests, `--status CODE` answers CODE to every request.

    python examples/byo/service.py --warehouse .backfill/warehouse.duckdb --port 8765
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from processors import team_offense  # noqa: E402

from backfill.processors.python import ProcessorContext  # noqa: E402
from backfill.spec import load_spec  # noqa: E402
from backfill.warehouse.duckdb import DuckDBWarehouse  # noqa: E402


class Service:
    def __init__(self, warehouse: str, fail_first: int = 0, status: int = 200, delay: float = 0.0) -> None:
        self.warehouse = warehouse
        self.fail_first = fail_first
        self.status = status
        self.delay = delay
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.table = load_spec(Path(__file__).resolve().parent).processors["team_offense_http"].table

    def handle(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.seen.append({"body": body, "headers": headers})
            n = len(self.seen)
        if self.delay:
            threading.Event().wait(self.delay)
        if n <= self.fail_first:
            return 503, {"error": "warming up"}
        if self.status != 200:
            return self.status, {"error": f"configured to answer {self.status}"}
        dates = [dt.date.fromisoformat(d) for d in body["dates"]]
        with self.lock, DuckDBWarehouse(self.warehouse, hold=False) as wh:
            ctx = ProcessorContext(body["processor"], dates, wh, self.table, body["run_id"], body["task_id"],
                                   body["attempt"], body.get("options") or {}, logging.getLogger("service"))
            rows = team_offense(ctx)
        return 200, {"rows": rows, "warnings": []}


def serve(service: Service, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            code, doc = service.handle(body, dict(self.headers))
            data = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = False  # shutdown waits for in-flight requests (they hold the warehouse file)
    server.block_on_close = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args()
    server = serve(Service(args.warehouse, args.fail_first, args.status), args.port)
    print(f"serving on http://127.0.0.1:{server.server_address[1]}/process", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
