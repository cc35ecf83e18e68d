"""Downstream trigger pauses as leases, against a real redis-server, and the CLI around them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from backfill.cli.triggers import cli_holder
from backfill.errors import BadInput, CannotConnect
from backfill.spec import load_spec
from backfill.triggers import Triggers, check_trigger_name, downstream_enabled, known_triggers, triggers_for_phases
from tests.doc_commands import REPO, backfill_argv, bash_words, doc_commands

pytestmark = pytest.mark.integration

BACKFILL = [sys.executable, "-c", "from backfill.cli import main; main()"]
NBA = REPO / "pipelines" / "nba"


@pytest.fixture
def client(redis_server):  # type: ignore[no-untyped-def]
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


def test_writing_a_phase_pauses_the_trigger_it_would_set_off() -> None:
    assert triggers_for_phases([4, 3, 3]) == ["phase3->phase4", "phase4->phase5"]


def test_pause_renew_release(client: redis.Redis) -> None:
    t = Triggers(client)
    assert t.is_enabled("phase3->phase4")
    t.pause("phase3->phase4", "run:abc", 60, reason="backfill 2023-24")
    assert not t.is_enabled("phase3->phase4")
    (row,) = t.status()
    assert row["name"] == "phase3->phase4" and row["paused"] is True
    assert row["holder"] == "run:abc" and row["reason"] == "backfill 2023-24"
    assert row["since"] < row["until"]
    assert t.renew("phase3->phase4", "run:abc", 120)
    assert t.status()[0]["until"] > row["until"]
    assert t.status()[0]["since"] == row["since"], "renewing keeps the start of the pause"
    assert not t.renew("phase3->phase4", "someone-else", 120), "only the holder can renew"
    assert not t.release("phase3->phase4", "someone-else")
    assert not t.is_enabled("phase3->phase4")
    assert t.release("phase3->phase4", "run:abc")
    assert t.is_enabled("phase3->phase4")
    assert not t.release("phase3->phase4", "run:abc")
    assert t.status()[0]["paused"] is False


def test_an_expired_lease_enables_the_trigger_by_itself(client: redis.Redis) -> None:
    t = Triggers(client)
    t.pause("phase3->phase4", "run:crashed", 0.3)
    assert not t.is_enabled("phase3->phase4")
    time.sleep(0.5)
    assert t.is_enabled("phase3->phase4")
    assert not t.renew("phase3->phase4", "run:crashed", 60), "an expired lease cannot be renewed back"
    assert t.status()[0]["holder"] is None


def test_two_holders_the_trigger_waits_for_both(client: redis.Redis) -> None:
    t = Triggers(client)
    t.pause("phase3->phase4", "run:a", 60)
    t.pause("phase3->phase4", "run:b", 120)
    assert [lease["holder"] for lease in t.leases("phase3->phase4")] == ["run:b", "run:a"]
    assert t.status()[0]["holder"] == "run:b", "status names the lease that ends last"
    t.release("phase3->phase4", "run:b")
    assert not t.is_enabled("phase3->phase4")
    t.release("phase3->phase4", "run:a")
    assert t.is_enabled("phase3->phase4")


def test_downstream_enabled_is_the_live_pipelines_call(redis_server, client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    assert downstream_enabled("phase3->phase4", redis_server.url)
    Triggers(client).pause("phase3->phase4", "run:x", 60)
    assert not downstream_enabled("phase3->phase4", redis_server.url)
    assert downstream_enabled("phase4->phase5", redis_server.url)


def test_downstream_enabled_fails_open_unless_strict(redis_server) -> None:  # type: ignore[no-untyped-def]
    url = redis_server.url
    redis_server.stop()
    assert downstream_enabled("phase3->phase4", url) is True
    with pytest.raises(CannotConnect):
        downstream_enabled("phase3->phase4", url, strict=True)


def test_downstream_enabled_fails_closed_when_the_caller_asks(redis_server, client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    url = redis_server.url
    assert downstream_enabled("phase3->phase4", url, on_unreachable="closed") is True, \
        "fail-closed changes only the answer when Redis is down"
    Triggers(client).pause("phase3->phase4", "run:x", 60)
    assert downstream_enabled("phase3->phase4", url, on_unreachable="closed") is False
    redis_server.stop()
    assert downstream_enabled("phase4->phase5", url, on_unreachable="closed") is False
    assert downstream_enabled("phase4->phase5", url, on_unreachable="open") is True
    with pytest.raises(CannotConnect):
        downstream_enabled("phase4->phase5", url, on_unreachable="raise")
    with pytest.raises(ValueError):
        downstream_enabled("phase4->phase5", url, on_unreachable="shut")  # type: ignore[arg-type]


def test_the_pipeline_knows_one_trigger_out_of_each_of_its_phases() -> None:
    assert known_triggers(load_spec(NBA)) == ["phase3->phase4", "phase4->phase5"]
    check_trigger_name("phase4->phase5", known_triggers(load_spec(NBA)), "nba")
    with pytest.raises(BadInput, match="known: 'phase3->phase4', 'phase4->phase5'"):
        check_trigger_name("phase2->phase3", known_triggers(load_spec(NBA)), "nba")


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BACKFILL_REDIS_URL": url}
    return subprocess.run([*BACKFILL, *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_cli_pause_status_resume(redis_server, client: redis.Redis) -> None:  # type: ignore[no-untyped-def]
    url = redis_server.url
    out = _cli(url, "triggers", "status")
    assert out.returncode == 0, out.stderr
    assert "all downstream triggers are enabled" in out.stdout

    out = _cli(url, "triggers", "pause", "phase3->phase4", "--ttl", "600", "--reason", "manual fix")
    assert out.returncode == 0, out.stderr
    assert cli_holder() in out.stdout
    Triggers(client).pause("phase3->phase4", "run:r1", 60)

    out = _cli(url, "triggers", "status", "--json")
    assert out.returncode == 1, "status exits 1 while a trigger is paused"
    (row,) = json.loads(out.stdout)
    assert row["paused"] and row["holder"] == cli_holder() and row["reason"] == "manual fix"
    assert {lease["holder"] for lease in row["leases"]} == {cli_holder(), "run:r1"}
    human = _cli(url, "triggers", "status").stdout
    assert "paused" in human and "run:r1" in human and "manual fix" in human

    out = _cli(url, "triggers", "resume", "phase3->phase4")
    assert out.returncode == 0, out.stderr
    assert "still paused by run:r1" in out.stdout

    out = _cli(url, "triggers", "resume", "phase3->phase4", "--all")
    assert out.returncode == 0, out.stderr
    assert "force-released" in out.stderr and "run:r1" in out.stderr
    assert "phase3->phase4: enabled" in out.stdout
    assert Triggers(client).is_enabled("phase3->phase4")


def test_cli_top_level_redis_url_option(redis_server) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run([*BACKFILL, "--redis-url", redis_server.url, "triggers",
                          "pause", "phase4->phase5", "--ttl", "30"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not downstream_enabled("phase4->phase5", redis_server.url)


def test_downstream_enabled_without_any_backfill_redis_is_true(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("BACKFILL_REDIS_URL", raising=False)
    monkeypatch.setenv("BACKFILL_HOME", str(tmp_path))
    assert downstream_enabled("phase3->phase4") is True
    assert not (tmp_path / "redis").exists(), "the library call never starts a Redis"


def _shell_env(tmp_path: Path, url: str) -> dict[str, str]:
    """A user's shell: `backfill` on PATH, the test Redis, the repo's NBA pipeline, a fresh home."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "BACKFILL_REDIS_URL": url, "BACKFILL_PIPELINE": str(NBA), "BACKFILL_HOME": str(tmp_path / "home")}


def _bash(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_an_unquoted_trigger_name_is_refused_and_pauses_nothing(redis_server, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    shell = tmp_path / "shell"
    shell.mkdir()
    out = _bash("backfill triggers pause phase3->phase4 --ttl 600", shell, _shell_env(tmp_path, redis_server.url))
    assert out.returncode == 2, out.stderr
    assert "unknown trigger 'phase3-'" in out.stderr
    assert "known: 'phase3->phase4', 'phase4->phase5'" in out.stderr
    assert "file named phase4" in out.stderr, "the hint says which stray file bash wrote"
    assert (shell / "phase4").read_text() == "", "bash created the file; the CLI wrote nothing to it"
    assert client.dbsize() == 0, "nothing was paused"


def test_pause_refuses_a_name_the_pipeline_does_not_know(redis_server, client) -> None:  # type: ignore[no-untyped-def]
    for name in ("phase2->phase3", "phase3->phase5", "nightly"):
        out = _cli(redis_server.url, "triggers", "pause", name)
        assert out.returncode == 2, (name, out.stderr)
        assert out.stderr.count("\n") == 1 and f"unknown trigger '{name}' in pipeline nba" in out.stderr
    assert client.dbsize() == 0
    out = _cli(redis_server.url, "triggers", "pause", "phase4->phase5", "--pipeline", str(NBA))
    assert out.returncode == 0, out.stderr
    assert not downstream_enabled("phase4->phase5", redis_server.url)


def test_resume_accepts_the_known_names_and_any_name_status_lists(redis_server, client) -> None:  # type: ignore[no-untyped-def]
    out = _cli(redis_server.url, "triggers", "resume", "phase9->phase10")
    assert out.returncode == 2 and "unknown trigger 'phase9->phase10'" in out.stderr
    out = _cli(redis_server.url, "triggers", "resume", "phase3->phase4")
    assert out.returncode == 0, out.stderr
    # A pause taken under a wrong name before names were checked can still be released.
    Triggers(client).pause("phase3-", "cli:someone@elsewhere", 600)
    out = _cli(redis_server.url, "triggers", "resume", "phase3-", "--all")
    assert out.returncode == 0, out.stderr
    assert "phase3-: enabled" in out.stdout


def test_the_execution_guides_trigger_commands_work_as_written(redis_server, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Run, through bash, every `backfill triggers` line of docs/execution-guide.md in order.

    Each must exit as its `# exit N` comment says (0 otherwise); a pause must hold the lease its
    own --ttl and --reason describe; `check` must agree with whether a pause is held.
    """
    # `serve` runs until stopped: test_trigger_answers.py runs it, and the guide's recipe against it.
    guide = [c for c in doc_commands([REPO / "docs" / "execution-guide.md"])
             if c.text.startswith("backfill triggers") and not c.text.startswith("backfill triggers serve")]
    steps = [backfill_argv(bash_words(c.text))[1] for c in guide]
    assert {"status", "pause", "resume", "check"} <= set(steps), f"the guide's trigger commands changed: {steps}"
    shell = tmp_path / "shell"
    shell.mkdir()
    env = _shell_env(tmp_path, redis_server.url)
    paused = False
    for command in guide:
        out = _bash(command.text, shell, env)
        said = re.search(r"#.*\bexit (\d)\b", command.text)
        assert out.returncode == (int(said.group(1)) if said else 0), f"{command}\n{out.stdout}{out.stderr}"
        argv = backfill_argv(bash_words(command.text))
        step = argv[1]
        if step == "pause":
            paused = True
            assert not downstream_enabled("phase3->phase4", redis_server.url)
            (lease,) = Triggers(client).leases("phase3->phase4")
            ttl = float(argv[argv.index("--ttl") + 1])
            assert lease["holder"] == cli_holder() and lease["reason"] == argv[argv.index("--reason") + 1]
            assert ttl - 200 < lease["until"] - lease["since"] <= ttl
        elif step == "resume":
            assert paused and downstream_enabled("phase3->phase4", redis_server.url), command
            paused = False
        elif step == "check":
            assert out.returncode == (1 if paused else 0), command
        elif step == "status":
            assert "paused" not in out.stdout or paused, out.stdout
    assert downstream_enabled("phase3->phase4", redis_server.url)
    assert sorted(p.name for p in shell.iterdir()) == [], "no command wrote a stray file (an unquoted '>')"
