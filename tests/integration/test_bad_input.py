"""Every bad input a user can hit gets one line on stderr, its documented exit code, and changes nothing.

The CLI runs in this process through `backfill.cli.main` (the entry point users run, with its
handling of Click's usage errors), inside Click's CliRunner isolation: what a terminal would
show is what is captured. One real redis-server (with a password, as production has) and one
copy of the sample league serve every case; before and after each case the warehouse's tables
(row count and a hash of every row) and every Redis key (its DUMP) are digested, so "nothing
changed" is checked, not assumed. Each case's output is kept under the module's folder, and the
last test greps all of it for `Traceback`. The cases are listed in docs/troubleshooting.md.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import redis
from click.testing import CliRunner

from backfill.cli import main
from backfill.state import RedisStateStore, RunRecord, RunStatus
from tests.conftest import RedisServer
from tests.integration.engine_harness import league_template  # noqa: F401 - the shared sample league

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
NBA = REPO / "pipelines" / "nba"
PASSWORD = "s3cret-bad-input"

BOX_HEADER = ("SEASON_ID,PLAYER_ID,PLAYER_NAME,TEAM_ID,TEAM_ABBREVIATION,TEAM_NAME,GAME_ID,GAME_DATE,MATCHUP,WL,MIN,"
              "PTS,FGM,FGA,FG_PCT,FG3M,FG3A,FG3_PCT,FTM,FTA,FT_PCT,OREB,DREB,REB,AST,STL,BLK,TOV,PF,PLUS_MINUS,"
              "SEASON_LABEL")


def box_row(player: int, name: str, team: str = "CLE", matchup: str = "CLE vs. IND") -> str:
    return (f"22023,{player},{name},1610612739,{team},Cavaliers,0022300091,2023-11-01,{matchup},W,34,20,8,15,0.533,"
            "2,5,0.4,2,2,1.0,1,5,6,4,1,0,2,3,7,2023-24")


@dataclass(frozen=True)
class Case:
    """One bad input: the command line (placeholders filled from the fixtures), the exit code, and a
    phrase the one line on stderr must hold."""

    id: str
    args: tuple[str, ...]
    exit_code: int
    says: str
    env: tuple[tuple[str, str], ...] = ()

    def argv(self, where: dict[str, str]) -> list[str]:
        return [a.format(**where) for a in self.args]


@dataclass
class Outcome:
    exit_code: int
    stdout: str
    stderr: str


def invoke(argv: list[str], env: dict[str, str]) -> Outcome:
    """`backfill ARGV` as a user runs it, in this process."""
    runner = CliRunner()
    saved = sys.argv
    with runner.isolation(env=env) as (out, err, _):
        sys.argv = ["backfill", *argv]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = saved
        return Outcome(code, out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace"))


def warehouse_digest(path: Path) -> dict[str, tuple[int, int]]:
    """Per table: rows and the sum of every row's hash (order-free), read-only."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [f"{s}.{t}" for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2").fetchall()]
        out: dict[str, tuple[int, int]] = {}
        for t in tables:
            n, h = con.execute(f"SELECT COUNT(*), COALESCE(SUM(hash(x)), 0) FROM {t} AS x").fetchone()  # type: ignore[misc]
            out[t] = (int(n), int(h))
        return out
    finally:
        con.close()


def redis_digest(client: redis.Redis) -> str:
    digest = hashlib.sha256()
    for key in sorted(client.keys("*")):
        digest.update(key + b"\0" + (client.dump(key) or b"") + b"\0")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, league_template: Path) -> Iterator[dict]:  # noqa: F811
    root = tmp_path_factory.mktemp("bad-input")
    server = RedisServer(root, password=PASSWORD)
    server.start()
    wh = root / "league.duckdb"
    shutil.copyfile(league_template, wh)
    store = RedisStateStore.from_url(server.url)
    done = time.time()
    for run_id, status in (("bf-settled", RunStatus.succeeded), ("bf-cancelled", RunStatus.cancelled)):
        store.create_run(RunRecord(run_id=run_id, pipeline=str(NBA), request={}, status=status, finished_at=done,
                                   cancelled_at=done if status is RunStatus.cancelled else None), [])
    _write_specs(root / "specs")
    _write_csvs(root / "csv")
    corrupt = root / "corrupt.duckdb"  # a text file under a warehouse's name
    corrupt.write_bytes(b"this is not a DuckDB database file\n" * 200)
    truncated = root / "truncated.duckdb"  # a real warehouse cut short (a full disk, an interrupted copy)
    truncated.write_bytes(league_template.read_bytes()[:league_template.stat().st_size // 3])
    locked = root / "locked.duckdb"  # open for writing in another process, as a running worker holds it
    shutil.copyfile(league_template, locked)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, time; "
                               f"c = duckdb.connect({str(locked)!r}); print('held', flush=True); time.sleep(900)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    outputs = root / "outputs"
    outputs.mkdir()
    port = str(server.port)
    try:
        yield {"root": root, "wh": wh, "redis": server, "client": redis.Redis.from_url(server.url),
               "outputs": outputs, "holder": holder, "watched": (corrupt, truncated, locked),
               "where": {"root": str(root), "nba": str(NBA), "port": port, "pw": PASSWORD,
                         "specs": str(root / "specs"), "csv": str(root / "csv"), "corrupt": str(corrupt),
                         "truncated": str(truncated), "locked": str(locked)},
               "env": {"BACKFILL_REDIS_URL": server.url, "BACKFILL_WAREHOUSE": f"duckdb:///{wh}",
                       "BACKFILL_HOME": str(root / "home"), "COLUMNS": "160"}}
    finally:
        holder.kill()
        holder.wait(timeout=10)
        server.stop()


def files_digest(paths: tuple[Path, ...]) -> dict[str, str | None]:
    """The bytes of each file and whether DuckDB left a .wal beside it."""
    out: dict[str, str | None] = {}
    for p in paths:
        out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None
        out[f"{p.name}.wal"] = "present" if Path(f"{p}.wal").exists() else None
    return out


def _spec_variant(dest: Path, edit: tuple[str, str] | None = None, text: bytes | None = None) -> None:
    shutil.copytree(NBA, dest, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    spec = dest / "pipeline.yaml"
    if text is not None:
        spec.write_bytes(text)
    elif edit is not None:
        old, new = edit
        body = spec.read_text()
        assert old in body, old
        spec.write_text(body.replace(old, new, 1))


def _write_specs(specs: Path) -> None:
    specs.mkdir()
    pgs = "    target: nba_analytics.player_game_summary\n"
    _spec_variant(specs / "target_raw", (pgs, "    target: nba_raw.player_boxscores\n"))
    _spec_variant(specs / "target_history", (pgs, "    target: nba_reference.processor_run_history\n"))
    _spec_variant(specs / "target_twice", ("    target: nba_analytics.team_offense_game_summary\n", pgs))
    _spec_variant(specs / "sql_outside", ("    sql: sql/player_game_summary.sql\n", "    sql: ../../../etc/passwd\n"))
    _spec_variant(specs / "raw_key_string", ("nba_raw.schedule: {partition: game_date, key: [game_id]}",
                                             "nba_raw.schedule: {partition: game_date, key: game_id}"))
    _spec_variant(specs / "unknown_setting", ("    sql: sql/player_game_summary.sql\n",
                                              "    sql: sql/player_game_summary.sql\n    sqll: x.sql\n"))
    tdgs = "      - table: nba_raw.team_boxscores\n        window: same_date\n\n  upcoming_player_game_context:"
    _spec_variant(specs / "cycle", (tdgs, tdgs.replace("\n\n", "\n      - processor: team_defense_zone_analysis\n"
                                                             "        window: {days: 3}\n\n")))
    _spec_variant(specs / "bad_yaml", text=b"name: nba\nprocessors: [unclosed\n")
    _spec_variant(specs / "cp1252", text="name: caf\u00e9\nprocessors: {}\n".encode("cp1252"))
    _spec_variant(specs / "syntax")
    sql = specs / "syntax" / "sql" / "team_offense_game_summary.sql"
    body = sql.read_text()
    broken = body.replace("SAFE_DIVIDE(g.fgm, g.fga), 4) AS fg_pct,", "SAFE_DIVIDE(g.fgm, g.fga), 4 AS fg_pct,")
    assert broken != body
    sql.write_text(broken)


def _logs(folder: Path, text: str | bytes, name: str = "player_logs_2023-24.csv") -> None:
    (folder / "player_logs").mkdir(parents=True)
    target = folder / "player_logs" / name
    target.write_bytes(text if isinstance(text, bytes) else text.encode())


def _write_csvs(csv: Path) -> None:
    rows = [box_row(1628378 + i, n) for i, n in enumerate(("Donovan Mitchell", "Darius Garland", "Evan Mobley"))]
    _logs(csv / "dup", "\n".join([BOX_HEADER, *rows, rows[1]]) + "\n")
    _logs(csv / "ok", "\n".join([BOX_HEADER, *rows]) + "\n")  # good: only a warehouse it cannot open stops it
    _logs(csv / "cp1250", "\n".join([BOX_HEADER, box_row(1, "Nikola Joki\u0107"), box_row(2, "Luka Don\u010di\u0107")])
          .encode("cp1250"))
    zipped = csv / "zip"
    zipped.mkdir()
    _logs(zipped, b"")
    with zipfile.ZipFile(zipped / "player_logs" / "player_logs_2023-24.csv", "w") as zf:
        zf.writestr("player_logs_2023-24.csv", BOX_HEADER + "\n" + rows[0] + "\n")
    _logs(csv / "gzip_truncated", gzip.compress((BOX_HEADER + "\n" + rows[0] + "\n").encode())[:30])
    _logs(csv / "empty", "")
    _logs(csv / "no_column", BOX_HEADER.replace(",GAME_DATE", "") + "\n")
    _logs(csv / "header_only", BOX_HEADER + "\n")
    (csv / "nothing").mkdir()


_ME = "--pipeline", "{nba}"
WEEK = "--start", "2023-11-01", "--end", "2023-11-07"
CASES = [
    # -- keys hold -------------------------------------------------------------------------------
    Case("import_repeated_key", ("data", "import-nba", "{csv}/dup", "--quiet"), 2, "lines 3, 5"),
    # -- one line for every bad input: files -------------------------------------------------
    Case("import_cp1250", ("data", "import-nba", "{csv}/cp1250", "--quiet"), 2, "is not UTF-8 text"),
    Case("import_zip", ("data", "import-nba", "{csv}/zip", "--quiet"), 2, "is a zip archive"),
    Case("import_truncated_gzip", ("data", "import-nba", "{csv}/gzip_truncated", "--quiet"), 2, "cannot be read"),
    Case("import_empty_file", ("data", "import-nba", "{csv}/empty", "--quiet"), 2, "is empty"),
    Case("import_missing_column", ("data", "import-nba", "{csv}/no_column", "--quiet"), 2, "has no GAME_DATE column"),
    Case("import_header_only", ("data", "import-nba", "{csv}/header_only", "--quiet"), 2, "has a header but no rows"),
    Case("import_no_csvs", ("data", "import-nba", "{csv}/nothing", "--quiet"), 2, "no NBA CSVs"),
    Case("import_no_folder", ("data", "import-nba", "{root}/no-such-folder", "--quiet"), 2, "does not exist"),
    # -- URLs --------------------------------------------------------------------------------------
    Case("redis_port_not_a_number", ("--redis-url", "redis://:{pw}@127.0.0.1:notaport/0", "runs"), 2,
         "not a Redis URL: redis://:***@127.0.0.1:notaport/0"),
    Case("redis_port_out_of_range", ("--redis-url", "redis://:{pw}@127.0.0.1:99999/0", "status"), 2,
         "redis://:***@127.0.0.1:99999/0"),
    Case("redis_wrong_password", ("--redis-url", "redis://:wrong@127.0.0.1:{port}/0", "runs"), 3,
         "refused the password"),
    Case("redis_no_password", ("--redis-url", "redis://127.0.0.1:{port}/0", "runs"), 3,
         "requires a password and the URL has none"),
    Case("redis_tls_against_plain", ("--redis-url", "rediss://:{pw}@127.0.0.1:{port}/0", "runs"), 3,
         "TLS handshake"),
    Case("redis_nobody_listens", ("--redis-url", "redis://:{pw}@127.0.0.1:1/0", "runs"), 3, "does not answer"),
    Case("broker_port_not_a_number", ("enqueue", *_ME, *WEEK, "--phases", "3"), 2,
         "amqp://u:***@127.0.0.1:notaport// is not a broker URL",
         env=(("BACKFILL_BROKER_URL", "amqp://u:secret@127.0.0.1:notaport//"),)),
    Case("warehouse_url_without_a_file", ("--warehouse", "duckdb://", "gaps", *_ME, *WEEK), 2, "names no file"),
    Case("warehouse_url_names_a_folder", ("--warehouse", "duckdb:///{root}", "gaps", *_ME, *WEEK), 2,
         "names a folder"),
    Case("warehouse_unknown_scheme", ("--warehouse", "ftp://somewhere/x", "gaps", *_ME, *WEEK), 2,
         "unknown warehouse URL"),
    Case("warehouse_corrupt_file", ("--warehouse", "duckdb:///{corrupt}", "gaps", *_ME, *WEEK), 3,
         "warehouse {corrupt} is not a DuckDB database file (restore it from a backup"),
    Case("warehouse_text_file_import", ("--warehouse", "duckdb:///{corrupt}", "data", "import-nba", "{csv}/ok",
                                        "--quiet"), 3, "warehouse {corrupt} is not a DuckDB database file"),
    # DuckDB opens a file cut short and fails at the first read of a missing block: judged at
    # open, a healthy file another thread is growing looked the same (tasks failed as damaged).
    Case("warehouse_truncated_file", ("--warehouse", "duckdb:///{truncated}", "gaps", *_ME, *WEEK), 1,
         "the warehouse file is damaged (cut short): "),
    Case("warehouse_truncated_file_validate", ("--warehouse", "duckdb:///{truncated}", "validate", *_ME, *WEEK), 1,
         "(restore it from a backup"),
    Case("warehouse_locked_by_a_worker", ("--warehouse", "duckdb:///{locked}", "data", "import-nba", "{csv}/ok",
                                          "--quiet"), 3,
         "warehouse {locked} is locked by process {holder}", env=(("BACKFILL_WAREHOUSE_LOCK_WAIT", "0"),)),
    Case("warehouse_lock_wait_not_a_number", ("--warehouse", "duckdb:///{locked}", "data", "import-nba", "{csv}/ok",
                                              "--quiet"), 2, "BACKFILL_WAREHOUSE_LOCK_WAIT='soon' is not a number",
         env=(("BACKFILL_WAREHOUSE_LOCK_WAIT", "soon"),)),
    # -- lists that mean "everything" by accident ------------------------------------------------
    Case("phases_empty", ("plan", *_ME, *WEEK, "--phases", ""), 2, "--phases '' has an empty item"),
    Case("phases_trailing_comma", ("plan", *_ME, *WEEK, "--phases", "3,"), 2, "--phases '3,' has an empty item"),
    Case("phases_not_numbers", ("plan", *_ME, *WEEK, "--phases", "three"), 2, "must be numbers"),
    Case("processors_double_comma", ("gaps", *_ME, *WEEK, "--processors", "player_game_summary,,ml_feature_store"),
         2, "--processors"),
    Case("processors_unknown", ("plan", *_ME, *WEEK, "--processors", "no_such_processor"), 2,
         "unknown processor(s) no_such_processor"),
    Case("seasons_empty", ("validate", *_ME, *WEEK, "--seasons", ","), 2, "--seasons ',' has an empty item"),
    Case("seasons_unknown", ("plan", *_ME, *WEEK, "--seasons", "2031-32"), 2, "2031-32"),
    Case("sample_seasons_trailing_comma", ("data", "sample", "--seasons", "2023-24,"), 2,
         "--seasons '2023-24,' has an empty item"),
    Case("sample_seasons_badly_written", ("data", "sample", "--seasons", "2023"), 2, "write seasons like 2023-24"),
    # -- dates and ranges --------------------------------------------------------------------------
    Case("date_not_a_date", ("plan", *_ME, "--start", "2023-13-01", "--end", "2023-12-01"), 2, "2023-13-01"),
    Case("date_start_after_end", ("plan", *_ME, "--start", "2023-12-01", "--end", "2023-11-01"), 2, "2023-12-01"),
    Case("date_end_missing", ("gaps", *_ME, "--start", "2023-11-01"), 2, "--end"),
    Case("range_without_colon", ("gaps", *_ME, "--range", "2023-11-01"), 2, "2023-11-01"),
    Case("report_since_not_a_date", ("report", "--since", "2023-02-30"), 2, "--since '2023-02-30' is not a date"),
    # -- read-only means read-only -----------------------------------------------------------------
    Case("gaps_no_warehouse", ("--warehouse", "duckdb:///{root}/missing/wh.duckdb", "gaps", *_ME, *WEEK), 3,
         "no warehouse at"),
    Case("validate_no_warehouse", ("--warehouse", "duckdb:///{root}/missing/wh.duckdb", "validate", *_ME, *WEEK), 3,
         "no warehouse at"),
    Case("report_no_warehouse", ("--warehouse", "duckdb:///{root}/missing/wh.duckdb", "report", "bf-settled"), 3,
         "no warehouse at"),
    Case("plan_no_warehouse", ("--warehouse", "duckdb:///{root}/missing/wh.duckdb", "plan", *_ME, *WEEK), 3,
         "no warehouse at"),
    # -- messages that say what to do --------------------------------------------------------------
    Case("preflight_sql_syntax", ("plan", "--pipeline", "{specs}/syntax", *WEEK, "--preflight"), 2,
         "team_offense_game_summary.sql:36:39: SQL syntax error: Expecting )"),
    # -- a spec that stays in its folder ---------------------------------------------------------
    Case("spec_target_is_raw_table", ("plan", "--pipeline", "{specs}/target_raw", *WEEK), 2,
         "is a raw input table"),
    Case("spec_target_is_run_history", ("plan", "--pipeline", "{specs}/target_history", *WEEK), 2,
         "is the run-history table"),
    Case("spec_target_written_twice", ("plan", "--pipeline", "{specs}/target_twice", *WEEK), 2,
         "is also written by"),
    Case("spec_sql_outside_folder", ("plan", "--pipeline", "{specs}/sql_outside", *WEEK), 2,
         "points outside the pipeline folder"),
    Case("spec_raw_key_not_a_list", ("plan", "--pipeline", "{specs}/raw_key_string", *WEEK), 2,
         "key must be a list of columns"),
    Case("spec_unknown_setting", ("plan", "--pipeline", "{specs}/unknown_setting", *WEEK), 2, "sqll"),
    Case("spec_cycle", ("plan", "--pipeline", "{specs}/cycle", *WEEK), 2, "dependency cycle"),
    Case("spec_not_yaml", ("plan", "--pipeline", "{specs}/bad_yaml", *WEEK), 2, "not valid YAML"),
    Case("spec_not_utf8", ("plan", "--pipeline", "{specs}/cp1252", *WEEK), 2, "is not UTF-8 text"),
    Case("spec_missing", ("plan", "--pipeline", "{root}/no-such-pipeline", *WEEK), 2, "no pipeline spec at"),
    # -- runs ----------------------------------------------------------------------------------------
    Case("retry_cancelled_run", ("retry", "bf-cancelled"), 2, "backfill resume bf-cancelled"),
    Case("retry_settled_run_without_failures", ("retry", "bf-settled"), 2, "no failed, blocked"),
    Case("status_unknown_run", ("status", "bf-nope"), 2, "no run bf-nope"),
    Case("cancel_unknown_run", ("cancel", "bf-nope"), 2, "no run bf-nope"),
    Case("retry_unknown_run", ("retry", "bf-nope"), 2, "no run bf-nope"),
    Case("digest_unknown_run", ("digest", "bf-nope"), 2, "bf-nope"),
    Case("resume_unknown_run", ("resume", "bf-nope", *_ME), 2, "neither in Redis nor"),
    # -- flags and options -----------------------------------------------------------------------
    Case("order_unknown", ("plan", *_ME, *WEEK, "--order", "sideways"), 2, "sideways"),
    Case("concurrency_zero_env", ("plan", *_ME, *WEEK), 2, "BACKFILL_CONCURRENCY",
         env=(("BACKFILL_CONCURRENCY", "0"),)),
    Case("option_without_value", ("enqueue", *_ME, *WEEK, "--option", "novalue"), 2, "KEY=VALUE"),
    Case("alerts_mode_unknown", ("enqueue", *_ME, *WEEK, "--alerts", "loud"), 2, "loud"),
    Case("validate_markdown_folder_missing", ("validate", *_ME, *WEEK, "--markdown", "{root}/nope/v.md"), 2,
         "does not exist"),
    Case("report_html_folder_missing", ("report", "bf-settled", "--html", "{root}/nope/r.html"), 2,
         "does not exist"),
    Case("unknown_command", ("backfil",), 2, "No such command"),
    Case("unknown_flag", ("gaps", "--colour"), 2, "No such option"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_its_exit_code_and_changes_nothing(world: dict, case: Case) -> None:
    wh_before, redis_before = warehouse_digest(world["wh"]), redis_digest(world["client"])
    files_before = files_digest(world["watched"])
    out = invoke(case.argv(world["where"]), {**world["env"], **dict(case.env)})
    (world["outputs"] / f"{case.id}.txt").write_text(f"exit {out.exit_code}\n{out.stdout}\n--- stderr\n{out.stderr}")
    assert out.exit_code == case.exit_code, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert case.says.format(**world["where"], holder=world["holder"].pid) in lines[0], lines[0]
    assert warehouse_digest(world["wh"]) == wh_before
    assert redis_digest(world["client"]) == redis_before
    assert files_digest(world["watched"]) == files_before


def test_read_only_commands_create_nothing_at_a_missing_path(world: dict) -> None:
    missing = world["root"] / "missing"
    for case in (c for c in CASES if c.id.endswith("_no_warehouse")):
        out = invoke(case.argv(world["where"]), world["env"])
        assert out.exit_code == 3 and f"no warehouse at {missing}/wh.duckdb" in out.stderr, out.stderr
    assert not missing.exists(), sorted(p.name for p in missing.rglob("*"))


def test_cancel_of_a_settled_run_changes_nothing_and_says_so(world: dict) -> None:
    before = redis_digest(world["client"])
    out = invoke(["cancel", "bf-settled"], world["env"])
    (world["outputs"] / "cancel_settled.txt").write_text(out.stdout + out.stderr)
    assert out.exit_code == 0, out.stderr
    assert out.stdout.strip() == "run bf-settled already ended succeeded; nothing to cancel, nothing changed"
    assert redis_digest(world["client"]) == before


def test_preflight_names_the_file_and_line_of_a_sql_syntax_error(world: dict) -> None:
    out = invoke(["plan", "--pipeline", f"{world['root']}/specs/syntax", *WEEK, "--preflight"], world["env"])
    sql = world["root"] / "specs" / "syntax" / "sql" / "team_offense_game_summary.sql"
    line = next(i for i, text in enumerate(sql.read_text().splitlines(), 1) if "4 AS fg_pct" in text)
    assert f"{sql}:{line}:" in out.stderr and "SQL syntax error" in out.stderr, out.stderr


def test_a_gzip_compressed_csv_is_read_like_the_plain_one(tmp_path: Path) -> None:
    from pipelines.nba.importer import read_nba

    rows = "\n".join([BOX_HEADER, box_row(1, "Nikola Joki\u0107", "DEN", "DEN vs. PHX"),
                      box_row(2, "Kevin Durant", "PHX", "PHX @ DEN")]) + "\n"
    _logs(tmp_path / "plain", rows)
    _logs(tmp_path / "gz", gzip.compress(rows.encode()))
    plain, packed = read_nba(tmp_path / "plain"), read_nba(tmp_path / "gz")
    players = plain.tables["nba_raw.player_boxscores"]
    assert len(players) == 2 and players[0]["player_name"] == "Nikola Joki\u0107"
    assert packed.tables == plain.tables


def _without_file_mode_override(folder: Path) -> list[str]:
    """A command prefix under which file modes hold. Root ignores them (CAP_DAC_OVERRIDE), so as root
    the command runs with that power dropped (`setpriv`); it is still root, the owner of the files."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: root reads any file, so file modes cannot be tested")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]
    probe = folder / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        check = subprocess.run([*prefix, "cat", str(probe)], capture_output=True)
    finally:
        probe.unlink()
    if check.returncode == 0:
        pytest.skip("setpriv could not drop CAP_DAC_OVERRIDE here: file modes cannot be tested as root")
    return prefix


def _backfill(prefix: list[str], world: dict, *argv: str) -> Outcome:
    """`backfill ARGV` in its own process (under `prefix`), as a user runs it from a terminal."""
    env = {**os.environ, **world["env"], "PYTHONPATH": str(REPO)}
    done = subprocess.run([*prefix, sys.executable, "-m", "backfill.cli", *argv], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    return Outcome(done.returncode, done.stdout, done.stderr)


@pytest.mark.parametrize("mode, argv, code, says", [
    (0o000, ("gaps", *_ME, *WEEK), 3, "permission denied: this user may not read warehouse {path} ("),
    (0o000, ("report", "bf-settled"), 3, "permission denied: this user may not read warehouse {path} ("),
    (0o444, ("data", "import-nba", "{csv}/ok", "--quiet"), 3,
     "permission denied: this user may read but not write warehouse {path} ("),
], ids=["unreadable_gaps", "unreadable_report", "read_only_import"])
def test_a_warehouse_this_user_may_not_open_is_named_as_a_permission(world: dict, mode: int, argv: tuple[str, ...],
                                                                     code: int, says: str) -> None:
    folder = world["root"] / f"perm-{mode:o}-{argv[0]}"
    folder.mkdir(exist_ok=True)
    path = folder / "wh.duckdb"
    shutil.copyfile(world["wh"], path)
    path.chmod(mode)
    try:
        prefix = _without_file_mode_override(folder)
        before = hashlib.sha256(path.read_bytes()).hexdigest() if mode else None
        out = _backfill(prefix, world, "--warehouse", f"duckdb:///{path}",
                        *[a.format(**world["where"]) for a in argv])
        name = f"warehouse_permission_{mode:o}_{argv[0]}"
        (world["outputs"] / f"{name}.txt").write_text(f"exit {out.exit_code}\n{out.stdout}\n--- stderr\n{out.stderr}")
        assert out.exit_code == code, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stdout + out.stderr, out.stderr
        assert says.format(path=path) in lines[0] and "chmod" in lines[0], lines[0]
        path.chmod(0o644)
        assert before is None or hashlib.sha256(path.read_bytes()).hexdigest() == before
        assert not Path(f"{path}.wal").exists() and sorted(p.name for p in folder.iterdir()) == ["wh.duckdb"]
    finally:
        path.chmod(0o644)


def test_commands_that_only_read_work_on_a_read_only_warehouse_file(world: dict) -> None:
    """chmod 444: `gaps` and `report` open it read-only, `validate` (whose spot checks write scratch
    tables) reads a private copy; none of them changes it."""
    folder = world["root"] / "perm-read-only"
    folder.mkdir(exist_ok=True)
    path = folder / "wh.duckdb"
    shutil.copyfile(world["wh"], path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    path.chmod(0o444)
    try:
        prefix = _without_file_mode_override(folder)
        for argv in (["gaps", *_ME, *WEEK], ["validate", *_ME, *WEEK, "--spot-checks", "1"], ["report", "bf-settled"]):
            argv = [a.format(**world["where"]) for a in argv]
            out = _backfill(prefix, world, "--warehouse", f"duckdb:///{path}", *argv)
            (world["outputs"] / f"read_only_file_{argv[0]}.txt").write_text(
                f"exit {out.exit_code}\n{out.stdout}\n--- stderr\n{out.stderr}")
            assert out.exit_code in (0, 1), (argv, out.stderr)
            assert "Traceback" not in out.stdout + out.stderr and "permission" not in out.stderr.lower(), out.stderr
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
        assert sorted(p.name for p in folder.iterdir()) == ["wh.duckdb"]
    finally:
        path.chmod(0o644)


def test_no_captured_output_holds_a_traceback(world: dict) -> None:
    captured = sorted(world["outputs"].glob("*.txt"))
    assert len(captured) >= len(CASES), "runs after every case"
    assert [p.name for p in captured if "Traceback" in p.read_text()] == []


def test_the_troubleshooting_page_lists_every_case() -> None:
    page = (REPO / "docs" / "troubleshooting.md").read_text()
    assert [c.id for c in CASES if f"`{c.id}`" not in page] == []


def test_a_run_knows_its_pipeline_from_any_working_directory(world: dict, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no pipelines/nba here: only the run's record can name the folder
    assert not (tmp_path / "pipelines").exists()
    out = invoke(["report", "bf-settled", "--json"], world["env"])
    assert out.exit_code == 0, out.stderr
    assert '"bf-settled"' in out.stdout
    elsewhere = invoke(["report", "bf-settled", "--json", "--pipeline", str(tmp_path / "none")], world["env"])
    assert elsewhere.exit_code == 2 and "no pipeline spec at" in elsewhere.stderr, "--pipeline overrides"


def test_commands_that_only_read_open_the_warehouse_read_only(world: dict) -> None:
    """Another process reading the file (read-only, as a second reader or a backup would) does not
    stop `gaps`, `plan` or `report`: they open it read-only too, so they also open a file the user
    may read but not write. A read-write open would wait for the lock instead."""
    import subprocess

    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; "
                               f"c = duckdb.connect({str(world['wh'])!r}, read_only=True); "
                               "print('held', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        for argv in (["gaps", *_ME, *WEEK], ["plan", *_ME, *WEEK], ["report", "bf-settled", "--json"]):
            argv = [a.format(**world["where"]) for a in argv]
            began = time.monotonic()
            out = invoke(argv, world["env"])
            assert out.exit_code in (0, 1), (argv, out.stderr)
            assert time.monotonic() - began < 30, "waited for a lock: not opened read-only"
    finally:
        holder.kill()
        holder.wait(timeout=10)
