"""Asking from anywhere: `triggers check` exit codes, `triggers serve` over real HTTP, and the
execution guide's Cloud Function recipe run as written against that server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from backfill.cli import cli
from backfill.triggers import Triggers
from tests.conftest import REPO, RedisServer, free_port

pytestmark = pytest.mark.integration

BACKFILL = [sys.executable, "-c", "from backfill.cli import main; main()"]
TOKEN = "t0ken-" + "x" * 30


class Ran:
    def __init__(self, result: Result) -> None:
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr


def _cli(url: str, *args: str, home: Path | None = None) -> Ran:
    """The CLI in-process (CliRunner), with only the given BACKFILL_* settings."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("BACKFILL_")}
    env["BACKFILL_REDIS_URL"] = url or None
    env["BACKFILL_HOME"] = str(home) if home is not None else None
    return Ran(CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False))


def test_check_exit_codes_and_json(redis_server: RedisServer, tmp_path: Path) -> None:
    url = redis_server.url
    client = redis.Redis.from_url(url)
    before = _cli(url, "triggers", "check", "phase3->phase4")
    assert before.returncode == 0, before.stderr
    assert "phase3->phase4: may fire" in before.stdout

    Triggers(client).pause("phase3->phase4", "bf-run-1", 600, reason="backfill run bf-run-1")
    during = _cli(url, "triggers", "check", "phase3->phase4")
    assert during.returncode == 1, during.stderr
    assert re.search(r"paused by bf-run-1 until \d{4}-\d\d-\d\dT\S+ \(backfill run bf-run-1\)", during.stdout)
    as_json = _cli(url, "triggers", "check", "phase3->phase4", "--json")
    assert as_json.returncode == 1
    body = json.loads(as_json.stdout)
    assert body["may_fire"] is False and body["paused"] is True and body["reachable"] is True
    assert [(x["holder"], x["reason"]) for x in body["leases"]] == [("bf-run-1", "backfill run bf-run-1")]
    assert body["leases"][0]["until"] > body["leases"][0]["since"]
    assert _cli(url, "triggers", "check", "phase4->phase5").returncode == 0, "only the paused trigger answers 1"
    status = _cli(url, "triggers", "status", "--json")
    assert status.returncode == 1, "status exits 1 while a trigger is paused"

    Triggers(client).release("phase3->phase4", "bf-run-1")
    assert _cli(url, "triggers", "check", "phase3->phase4").returncode == 0
    assert _cli(url, "triggers", "status", "--json").returncode == 0

    bad = _cli(url, "triggers", "check", "phase3-")
    assert bad.returncode == 2 and "quote the name" in bad.stderr

    redis_server.stop()
    down = _cli(url, "triggers", "check", "phase3->phase4", "--json")
    assert down.returncode == 3, (down.stdout, down.stderr)
    assert json.loads(down.stdout)["reachable"] is False
    human = _cli(url, "triggers", "check", "phase3->phase4")
    assert human.returncode == 3 and "does not answer" in human.stderr and "treated as paused" in human.stderr
    opened = _cli(url, "triggers", "check", "phase3->phase4", "--on-unreachable", "open")
    assert opened.returncode == 0 and "warning" in opened.stderr
    nothing = _cli("", "triggers", "check", "phase3->phase4", home=tmp_path / "empty-home")
    assert nothing.returncode == 3 and "no backfill Redis configured" in nothing.stderr
    assert not (tmp_path / "empty-home" / "redis").exists(), "check never starts a local Redis"


def test_triggers_from_any_working_directory(redis_server: RedisServer, tmp_path: Path) -> None:
    """A cron job's or an on-call laptop's directory has no pipelines/nba: the default pipeline is
    the installed one (as for `demo` and `data`), so pause, check and resume work as written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    env["BACKFILL_REDIS_URL"] = redis_server.url

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*BACKFILL, "triggers", *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)

    assert not (tmp_path / "pipelines").exists()
    paused = run("pause", "phase3->phase4", "--reason", "manual reload")
    assert paused.returncode == 0, paused.stderr
    asked = run("check", "phase3->phase4")
    assert asked.returncode == 1 and "manual reload" in asked.stdout, (asked.stdout, asked.stderr)
    typo = run("check", "phase3->phase9")
    assert typo.returncode == 2 and "known: 'phase3->phase4'" in typo.stderr, typo.stderr
    released = run("resume", "phase3->phase4")
    assert released.returncode == 0, released.stderr
    assert run("check", "phase3->phase4").returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "nothing written into the working directory"


class Served:
    """`backfill triggers serve` as a subprocess on a free port."""

    def __init__(self, redis_url: str, *extra: str, token: str = TOKEN) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
        env.update(BACKFILL_REDIS_URL=redis_url, BACKFILL_TRIGGERS_TOKEN=token)
        self.proc = subprocess.Popen([*BACKFILL, "triggers", "serve", "--port", str(self.port), *extra],
                                     env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.communicate()[1]) from None
                time.sleep(0.1)
        raise RuntimeError("triggers serve did not answer")

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(self.base + path, headers=headers), timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> tuple[str, str]:
        self.proc.terminate()
        return self.proc.communicate(timeout=10)


@pytest.fixture
def served(redis_server: RedisServer) -> Iterator[Served]:
    server = Served(redis_server.url)
    yield server
    server.stop()


def test_serve_answers_200_423_503_and_guards_the_token(redis_server: RedisServer, served: Served) -> None:
    client = redis.Redis.from_url(redis_server.url)
    assert served.get("/triggers/phase3-%3Ephase4")[0] == 200
    assert served.get("/triggers?name=phase3->phase4")[0] == 200
    assert served.get("/triggers/phase3-%3Ephase4", token=None)[0] == 401
    assert served.get("/triggers/phase3-%3Ephase4", token="wrong")[0] == 401
    code, body = served.get("/triggers/phase2-%3Ephase3")
    assert code == 404 and body["known"] == ["phase3->phase4", "phase4->phase5"]

    Triggers(client).pause("phase3->phase4", "bf-run-2", 600, reason="backfill run bf-run-2")
    code, body = served.get("/triggers/phase3-%3Ephase4")
    assert code == 423 and body["leases"][0]["holder"] == "bf-run-2" and body["leases"][0]["until"]
    assert served.get("/triggers/phase4-%3Ephase5")[0] == 200
    assert Triggers(client).leases("phase3->phase4"), "asking changed nothing"
    try:
        urllib.request.urlopen(urllib.request.Request(served.base + "/triggers/phase3-%3Ephase4", data=b"{}",
                                                      headers={"Authorization": f"Bearer {TOKEN}"}), timeout=5)
        raise AssertionError("POST must be refused")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405

    redis_server.stop()
    assert served.get("/triggers/phase3-%3Ephase4")[0] == 503
    out, err = served.stop()
    assert TOKEN not in out + err, "the token is never printed"


def test_serve_refuses_to_start_without_a_token(redis_server: RedisServer) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKFILL_")}
    out = subprocess.run([*BACKFILL, "--redis-url", redis_server.url, "triggers", "serve", "--port", "0"],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "BACKFILL_TRIGGERS_TOKEN is not set" in out.stderr


def recipe() -> str:
    """The ```python block after `<!-- recipe: cloud-function -->` in the execution guide."""
    text = (REPO / "docs" / "execution-guide.md").read_text()
    m = re.search(r"<!-- recipe: cloud-function -->\n```python\n(.*?)\n```", text, re.S)
    assert m, "the execution guide lost its Cloud Function recipe"
    return m.group(1)


def test_the_cloud_function_recipe_as_written(redis_server: RedisServer, served: Served,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    client = redis.Redis.from_url(redis_server.url)
    monkeypatch.setenv("BACKFILL_TRIGGERS_URL", served.base)
    monkeypatch.setenv("BACKFILL_TRIGGERS_TOKEN", TOKEN)
    started: list[Any] = []
    namespace: dict[str, Any] = {"start_phase4": lambda event, context: started.append(event)}
    exec(compile(recipe(), "execution-guide.md#cloud-function", "exec"), namespace)  # noqa: S102
    event = {"data": "eyJkYXRlIjogIjIwMjYtMTItMDQifQ=="}

    assert namespace["on_phase3_complete"](event, None) == "started" and started == [event]
    Triggers(client).pause("phase3->phase4", "bf-run-3", 600)
    assert namespace["on_phase3_complete"](event, None) == "paused" and len(started) == 1
    Triggers(client).release("phase3->phase4", "bf-run-3")
    assert namespace["may_fire"]("phase3->phase4") is True
    namespace["TRIGGERS_TOKEN"] = "wrong"
    with pytest.raises(urllib.error.HTTPError, match="401"):
        namespace["may_fire"]("phase3->phase4")
    namespace["TRIGGERS_TOKEN"] = TOKEN
    redis_server.stop()
    assert namespace["may_fire"]("phase3->phase4") is False, "503: fail closed"
    served.stop()
    assert namespace["may_fire"]("phase3->phase4") is False, "no endpoint: fail closed"
