"""The code's shape, checked like its behaviour: the import layers and the absence of import cycles
(import-linter, contracts in .importlinter), and ruff with its complexity limit (ruff.toml: C901
at 20, PLR0915 at 60 statements), so `scripts/test` fails when a layer leaks or a function grows
past the limit. The architecture these hold is described in docs/architecture.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CONTRACTS = ("Core (spec, calendar, planner, processors, checks, warehouse, executor) imports no shell",
             "The library reaches Celery, workers and pipelines only by name",
             "Nothing in the library below the CLI imports it",
             "No import cycles")


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_layers_hold_and_no_module_imports_in_a_circle() -> None:
    out = run(BIN / "lint-imports", "--no-cache")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    for name in CONTRACTS:  # every contract was checked, none dropped from the file unnoticed
        assert f"{name} KEPT" in " ".join(out.stdout.split()), out.stdout[-4000:]


def test_the_contracts_see_the_real_import_graph(tmp_path: Path) -> None:
    """A guard that the check is not vacuous: a contract forbidding an import the code has is broken."""
    config = (REPO / ".importlinter").read_text(encoding="utf-8").split("[importlinter:contract:")[0]
    config += ("[importlinter:contract:probe]\nname = probe\ntype = forbidden\n"
               "source_modules =\n    backfill.spec\nforbidden_modules =\n    backfill.acceptance\n")
    (tmp_path / "probe.ini").write_text(config, encoding="utf-8")
    out = run(BIN / "lint-imports", "--no-cache", tmp_path / "probe.ini")
    assert out.returncode == 1 and "backfill.spec -> backfill.acceptance" in out.stdout, out.stdout[-3000:]


def test_ruff_clean_within_the_complexity_limit() -> None:
    out = run(BIN / "ruff", "check", "backfill", "workers", "pipelines", "tests", "scripts", "benchmarks")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
