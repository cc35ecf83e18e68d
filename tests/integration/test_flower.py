"""Flower, started the way users start it, lists a run's tasks by name and run id, and no secrets."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RedisServer, free_port
from tests.integration.engine_harness import (
    REPO,
    Worker,
    league_copy,
    queued_task_with_dependents,
    run_cli,
    settled_after_revoke,
    wait_run,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECRET = "PLANTED_FLOWER_SECRET_42"


def _get(url: str, auth: str) -> object:
    req = urllib.request.Request(url, headers={"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def test_flower_lists_the_runs_tasks_without_secrets(tmp_path: Path, league_template: Path) -> None:
    redis = RedisServer(tmp_path, password=SECRET)
    redis.start()
    wh = league_copy(league_template, tmp_path / "wh.duckdb")
    home = tmp_path / "home"
    worker = Worker(redis.url, wh, home, concurrency=1).start()
    port = free_port()
    flower_log = tmp_path / "flower.log"
    env = dict(os.environ, BACKFILL_REDIS_URL=redis.url, BACKFILL_WAREHOUSE=f"duckdb:///{wh}",
               FLOWER_BASIC_AUTH="ops:pw", PYTHONPATH=str(REPO))
    flower = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "flower", f"--port={port}",
                               "--address=127.0.0.1"], cwd=REPO, env=env, stdout=flower_log.open("wb"),
                              stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                workers = _get(f"{base}/api/workers?refresh=1", "ops:pw")
                if workers:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, flower_log.read_text()[-2000:]
            time.sleep(0.5)
        with pytest.raises(urllib.error.HTTPError) as denied:
            _get(f"{base}/api/tasks", "ops:wrong")
        assert denied.value.code == 401

        # Same-date processors only: a strict run of mid-season dates alone fails the windowed ones.
        result = run_cli(redis.url, wh, home, "enqueue", "--start", "2023-11-01", "--end", "2023-11-02",
                         "--processors", "player_game_summary,team_offense_game_summary,team_defense_game_summary")
        assert result.exit_code == 0, result.output
        run_id = result.stdout.strip().splitlines()[-1]
        from backfill.state import RedisStateStore

        run = wait_run(RedisStateStore.from_url(redis.url), run_id, timeout=90)
        assert run.status.value == "succeeded", run

        deadline = time.monotonic() + 20
        while True:
            tasks = _get(f"{base}/api/tasks?limit=1000", "ops:pw")
            assert isinstance(tasks, dict)
            names = {t.get("name") for t in tasks.values()}
            ours = [t for t in tasks.values() if t.get("name") == "backfill.run_task" and run_id in str(t.get("args"))]
            # Flower learns states from worker events, which may trail the run's end by a moment.
            if ours and len(ours) == run.total and {t["state"] for t in ours} == {"SUCCESS"}:
                break
            assert time.monotonic() < deadline, names
            time.sleep(0.5)
        assert {t["state"] for t in ours} == {"SUCCESS"}
        assert any("player_game_summary@2023-11-01" in str(t.get("args")) for t in ours)
        assert SECRET not in json.dumps(tasks)

        # Flower's revoke (the button, or its HTTP API) on one queued task: the run finishes by itself.
        store = RedisStateStore.from_url(redis.url)
        result = run_cli(redis.url, wh, home, "enqueue", "--start", "2023-10-01", "--end", "2023-10-31",
                         "--phases", "3,4", "--batch", "1")
        assert result.exit_code == 0, result.output
        run_id = result.stdout.strip().splitlines()[-1]
        task_id, celery_id = queued_task_with_dependents(store, run_id)
        req = urllib.request.Request(f"{base}/api/task/revoke/{urllib.parse.quote(celery_id, safe='')}", data=b"",
                                     method="POST",
                                     headers={"Authorization": "Basic " + base64.b64encode(b"ops:pw").decode()})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        revoked_at = time.monotonic()
        settled_after_revoke(store, run_id, task_id, revoked_at)
        assert SECRET not in flower_log.read_text(errors="replace")
        assert SECRET not in worker.log.read_text(errors="replace")
    finally:
        flower.terminate()
        flower.wait(timeout=10)
        worker.stop()
        redis.stop()
