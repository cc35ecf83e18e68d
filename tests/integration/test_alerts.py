"""Alerts end to end: real workers, a real SMTP server (aiosmtpd), a real HTTP webhook, Sentry's envelope API.

A two-season sample league (openings of 2022-23 and 2023-24, every upstream window inside the
run) with failures injected in three categories on many dates of both seasons: a processor
that raises on five dates (`processor_error`, and the `dependency_gap`s the defensive checks
then find downstream), raw box scores missing a team on four dates (`partial_data`), and one
`Access Denied` (`critical`). What each sink must receive is derived from the injection, not
from the alerting code.
"""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from backfill.state import RedisStateStore, RunStatus
from backfill.warehouse.duckdb import DuckDBWarehouse
from pipelines.nba.sample import load_sample
from tests.conftest import RedisServer, free_port
from tests.integration.engine_harness import REPO, Worker, run_cli, wait_run

aiosmtpd = pytest.importorskip("aiosmtpd.controller")
pytestmark = pytest.mark.integration

RANGES = ("--range", "2022-10-01:2022-10-31", "--range", "2023-10-01:2023-10-31", "--phases", "3,4")
BROKEN = {"2022-23": ["2022-10-20", "2022-10-21", "2022-10-25"], "2023-24": ["2023-10-26", "2023-10-27"]}
CRITICAL_DATE = "2022-10-28"
CRITICAL_MESSAGE = "Access Denied: Table nba_analytics.team_defense_game_summary: permission updateData denied"
THINNED = {"2022-23": ["2022-10-19", "2022-10-26"], "2023-24": ["2023-10-25", "2023-10-30"]}
WEBHOOK_TOKEN = "T000/B000/PLANTEDWEBHOOKTOKEN42"


class Mailbox:
    """A real SMTP server on a free port that keeps every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                outer.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def kinds(self) -> list[str]:
        return sorted(str(m["X-Backfill-Alert"]) for m in self.messages)

    def close(self) -> None:
        if self.controller._thread is not None:  # closed already when a test took the server down
            self.controller.stop()


class Webhook:
    """A real HTTP server that records every JSON POST and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts.append(json.loads(body))
                outer.paths.append(self.path)
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/{WEBHOOK_TOKEN}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def alerts(self) -> list[dict[str, Any]]:
        return [p["backfill"] for p in self.posts]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def inject(pipeline: Path) -> None:
    """team_defense_game_summary raises on BROKEN dates, and with an access error on CRITICAL_DATE."""
    sql = pipeline / "sql" / "team_defense_game_summary.sql"
    text = sql.read_text()
    broken = ", ".join(f"DATE '{d}'" for days in BROKEN.values() for d in days)
    new = text.replace(
        "SELECT\n  d.game_date,",
        f"SELECT\n  CASE WHEN d.game_date = DATE '{CRITICAL_DATE}' THEN ERROR('{CRITICAL_MESSAGE}') "
        f"WHEN d.game_date IN ({broken}) THEN ERROR(CONCAT('injected failure on ', CAST(d.game_date AS STRING))) "
        "ELSE d.game_date END AS game_date,", 1)
    assert new != text
    sql.write_text(new)


def thin_raw(path: Path) -> None:
    """One team's box-score rows disappear on the THINNED dates: partial raw data, processed as is."""
    wh = DuckDBWarehouse(path)
    for day in (d for days in THINNED.values() for d in days):
        team = wh.query("SELECT MIN(team) AS t FROM nba_raw.player_boxscores WHERE game_date = @d",
                        {"d": day})[0]["t"]
        wh.execute(f"DELETE FROM nba_raw.player_boxscores WHERE game_date = DATE '{day}' AND team = '{team}'")
    wh.close()


@pytest.fixture(scope="module")
def two_seasons(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("league2") / "league.duckdb"
    wh = DuckDBWarehouse(path)
    load_sample(wh, seasons=("2022-23", "2023-24"))
    wh.close()
    thin_raw(path)
    return path


@pytest.fixture
def setup(tmp_path: Path, two_seasons: Path, redis_server: RedisServer) -> Iterator[dict[str, Any]]:
    pipeline = tmp_path / "nba"
    shutil.copytree(REPO / "pipelines" / "nba", pipeline)
    inject(pipeline)
    wh = tmp_path / "wh.duckdb"
    shutil.copyfile(two_seasons, wh)
    mailbox, webhook = Mailbox(), Webhook()
    workers: list[Worker] = []
    home = tmp_path / "home"

    def worker(**env: str) -> Worker:
        base = {"BACKFILL_SMTP_HOST": "127.0.0.1", "BACKFILL_SMTP_PORT": str(mailbox.port),
                "BACKFILL_SMTP_STARTTLS": "0", "BACKFILL_SMTP_TO": "ops@example.com",
                "BACKFILL_WEBHOOK_URL": webhook.url, "BACKFILL_ALERT_BACKOFF_SECONDS": "0.05"}
        w = Worker(redis_server.url, wh, home, 4, **{**base, **env}).start()
        workers.append(w)
        return w

    def cli(*args: str) -> Any:
        return run_cli(redis_server.url, wh, home, *args)

    def enqueue(*args: str) -> str:
        result = cli("enqueue", *RANGES, "--pipeline", str(pipeline), *args)
        assert result.exit_code == 0, result.output
        return str(result.stdout.strip().splitlines()[-1])

    yield {"wh": wh, "home": home, "pipeline": pipeline, "mail": mailbox, "webhook": webhook, "worker": worker,
           "cli": cli, "enqueue": enqueue, "redis": redis_server, "store": RedisStateStore.from_url(redis_server.url)}
    for w in workers:
        w.stop()
    mailbox.close()
    webhook.close()


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.1)


def groups(digest: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(g["category"], g["processor"]): g for g in digest["groups"]}


def dates_of(group: dict[str, Any]) -> set[str]:
    """Every date in a group's runs of game dates, expanded over the league's game dates."""
    import datetime as dt

    out: set[str] = set()
    for a, b in group["runs"]:
        d = dt.date.fromisoformat(a)
        while d <= dt.date.fromisoformat(b):
            out.add(d.isoformat())
            d += dt.timedelta(days=1)
    return out


def check_season_digest(digest: dict[str, Any], season: str) -> None:
    found = groups(digest)
    broken = found[("processor_error", "team_defense_game_summary")]
    assert broken["first"] == BROKEN[season][0] and broken["last"] == BROKEN[season][-1]
    assert broken["count"] == broken["failed"] == len(BROKEN[season])
    assert set(BROKEN[season]) <= dates_of(broken)
    thin = found[("partial_data", "player_game_summary")]
    assert set(THINNED[season]) <= dates_of(thin) and thin["failed"] == 0
    assert any(c == "dependency_gap" for c, _ in found), found.keys()  # the failed dates' dependents
    if season == "2022-23":
        critical = found[("critical", "team_defense_game_summary")]
        assert critical["count"] == 1 and critical["first"] == CRITICAL_DATE
    else:
        assert ("critical", "team_defense_game_summary") not in found


@pytest.mark.slow
def test_digest_mode_one_mail_per_season_plus_final_critical_once_and_update_after_retry(setup: dict) -> None:
    setup["worker"]()
    # One date per task: an access error is not bisected (no date can fix it), so in a batch it
    # would fail every date of the batch as critical; here it stays on its one date.
    run_id = setup["enqueue"]("--alerts", "digest", "--batch", "1")
    run = wait_run(setup["store"], run_id, timeout=180)
    assert run.status is RunStatus.failed
    mail, hook = setup["mail"], setup["webhook"]
    wait_for(lambda: len(mail.messages) >= 4 and len(hook.posts) >= 4)
    time.sleep(1.0)  # anything extra would arrive now
    assert mail.kinds() == sorted([f"critical {a['scope']}" for a in hook.alerts() if a["kind"] == "critical"]
                                  + ["final final", "season season:2022-23", "season season:2023-24"])
    assert [a["kind"] for a in hook.alerts()].count("critical") == 1
    critical = next(a for a in hook.alerts() if a["kind"] == "critical")["failure"]
    assert critical["processor"] == "team_defense_game_summary" and critical["dates"] == [CRITICAL_DATE]
    # The critical alert went out while the run was still going, before the digest of its season
    # (the recent season, first under recent-first, may well have finished before it).
    scopes = [a["scope"] for a in hook.alerts()]
    kinds = [a["kind"] for a in hook.alerts()]
    assert kinds.index("critical") < scopes.index("season:2022-23")
    assert hook.alerts()[-1]["kind"] == "final"
    by_scope = {a["scope"]: a for a in hook.alerts()}
    for season in ("2022-23", "2023-24"):
        sent = by_scope[f"season:{season}"]["digest"]
        check_season_digest(sent, season)
        # The mail carries the same digest: counts per category and processor, the dates.
        message = next(m for m in mail.messages if m["X-Backfill-Alert"] == f"season season:{season}")
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        for g in sent["groups"]:
            assert f"- {g['category']} / {g['processor']}: {g['count']} date(s)" in text
            assert f"<td>{g['processor']}</td>" in html
        assert all(d in text for d in BROKEN[season])
        # `backfill digest` shows what was sent (nothing changed since the season settled).
        shown = setup["cli"]("digest", run_id, "--season", season, "--json")
        assert shown.exit_code == 0, shown.output
        now = json.loads(shown.stdout)
        assert now["fingerprint"] == sent["fingerprint"] and now["groups"] == sent["groups"]
    final = by_scope["final"]["digest"]
    assert {s for s in final["seasons"]} == {"2022-23", "2023-24"}
    assert groups(final)[("processor_error", "team_defense_game_summary")]["count"] == 5
    files = sorted((setup["home"] / "runs" / run_id / "alerts").glob("*.md"))
    assert len(files) == 4 and any("final" in f.name for f in files)
    status = setup["cli"]("status", run_id, "--json")
    assert json.loads(status.stdout)["alerts"]["failures"] == []
    assert WEBHOOK_TOKEN not in status.stdout

    # A retry that changes nothing sends nothing; after the fix, one update digest.
    before = len(hook.posts)
    assert setup["cli"]("retry", run_id).exit_code == 0
    wait_run(setup["store"], run_id, timeout=120)
    time.sleep(1.5)
    assert len(hook.posts) == before, [a["kind"] for a in hook.alerts()[before:]]
    shutil.copyfile(REPO / "pipelines" / "nba" / "sql" / "team_defense_game_summary.sql",
                    setup["pipeline"] / "sql" / "team_defense_game_summary.sql")
    assert setup["cli"]("retry", run_id).exit_code == 0
    wait_run(setup["store"], run_id, timeout=120)
    wait_for(lambda: len(hook.posts) > before)
    time.sleep(1.0)
    update = hook.alerts()[before:]
    assert [a["kind"] for a in update] == ["update"], update
    assert not any(c in ("processor_error", "critical", "dependency_gap") for c, _ in groups(update[0]["digest"]))
    assert len(mail.messages) == 5


@pytest.mark.slow
def test_immediate_sends_one_message_per_final_failure_and_off_sends_nothing(setup: dict) -> None:
    from tests.integration.test_sentry import EnvelopeServer

    sentry = EnvelopeServer()
    try:
        setup["worker"](BACKFILL_SENTRY_DSN=sentry.dsn)
        run_id = setup["enqueue"]("--alerts", "immediate")
        wait_run(setup["store"], run_id, timeout=120)
        failed = {t for t, r in setup["store"].results(run_id).items() if r.get("status") == "failed"}
        hook = setup["webhook"]
        wait_for(lambda: len(hook.posts) >= len(failed) and len(sentry.events()) >= len(failed))
        time.sleep(1.0)
        assert failed
        assert sorted(a["failure"]["task_id"] for a in hook.alerts()) == sorted(failed)
        assert {a["kind"] for a in hook.alerts()} == {"failure"}
        assert len(setup["mail"].messages) == len(failed)
        assert len(sentry.events()) == len(failed)
        # Registry gaps and partial data never go out alone, and the critical one went out once, as a failure.
        assert not {a["failure"]["category"] for a in hook.alerts()} & {"partial_data", "registry_gap"}

        posts, mails, events = len(hook.posts), len(setup["mail"].messages), len(sentry.events())
        setup["store"].client.flushdb()  # a fresh start for the second run (same partitions)
        off = setup["enqueue"]("--alerts", "off", "--force")
        wait_run(setup["store"], off, timeout=120)
        time.sleep(1.5)
        assert (len(hook.posts), len(setup["mail"].messages), len(sentry.events())) == (posts, mails, events)
        assert not (setup["home"] / "runs" / off).exists()
        shown = json.loads(setup["cli"]("digest", off, "--json").stdout)
        assert shown["mode"] == "off" and shown["sent"] == []
        found = groups(shown)  # batches: the access error may fail its whole batch as critical
        assert sum(found[(c, "team_defense_game_summary")]["count"] for c in ("processor_error", "critical")
                   if (c, "team_defense_game_summary") in found) >= 6
    finally:
        sentry.close()


@pytest.mark.slow
def test_killed_worker_and_resume_after_redis_flush_still_one_digest_per_season(setup: dict) -> None:
    first = setup["worker"]()
    run_id = setup["enqueue"]("--alerts", "digest", "--batch", "1")
    hook = setup["webhook"]
    store = setup["store"]
    # Kill the worker once a season digest went out (the recent season settles first) ...
    wait_for(lambda: any(a["kind"] == "season" for a in hook.alerts()), timeout=120)
    first.kill()
    assert [a["scope"] for a in hook.alerts() if a["kind"] == "season"] == ["season:2023-24"]
    # ... flush Redis (its alert guards go with it), restart a worker and resume from run history.
    store.client.flushdb()
    setup["worker"]()
    result = setup["cli"]("resume", run_id)
    assert result.exit_code == 0, result.output
    wait_run(store, run_id, timeout=180)
    wait_for(lambda: any(a["kind"] == "final" for a in hook.alerts()))
    time.sleep(1.0)
    kinds = [a["scope"] for a in hook.alerts() if a["kind"] in ("season", "final", "update")]
    assert sorted(kinds) == ["final", "season:2022-23", "season:2023-24"], kinds
    assert [a["kind"] for a in hook.alerts()].count("critical") == 1


@pytest.mark.slow
def test_failing_sinks_never_fail_the_run_and_show_in_status(setup: dict) -> None:
    setup["webhook"].status = 500
    setup["mail"].close()  # the SMTP server is down
    setup["worker"]()
    run_id = setup["enqueue"]("--alerts", "digest")
    run = wait_run(setup["store"], run_id, timeout=120)
    assert run.status is RunStatus.failed  # the injected failures, not the sinks
    assert setup["store"].states(run_id)  # every task settled
    wait_for(lambda: len(json.loads(setup["cli"]("status", run_id, "--json").stdout)["alerts"]["failures"]) >= 8)
    status = setup["cli"]("status", run_id, "--json")
    failures = json.loads(status.stdout)["alerts"]["failures"]
    assert {f["sink"] for f in failures} == {"mail", "webhook"}
    assert {f["scope"] for f in failures} >= {"final", "season:2022-23", "season:2023-24"}
    assert any("500" in f["error"] for f in failures if f["sink"] == "webhook")
    assert len(setup["webhook"].posts) == 3 * 4  # three tries per alert, then given up
    text = setup["cli"]("status", run_id)
    assert "sink failure" in text.stdout and WEBHOOK_TOKEN not in text.stdout + status.stdout
    files = list((setup["home"] / "runs" / run_id / "alerts").glob("*.md"))
    assert len(files) == 4  # the file sink still took every alert
