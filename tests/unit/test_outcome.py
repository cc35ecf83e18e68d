"""One outcome model: `TaskOutcome` and `ErrorCategory` end to end, no string copies of them elsewhere."""

from __future__ import annotations

import io
import json
import tokenize
from pathlib import Path

import pytest

from backfill.alerts.categories import CATEGORIES, category_of
from backfill.outcome import ErrorCategory, TaskOutcome
from backfill.state import TaskStatus
from backfill.state.base import partition_statuses

ROOT = Path(__file__).resolve().parents[2]
WORDS = {*(o.value for o in TaskOutcome), *(c.value for c in ErrorCategory), "succeeded"}
# Where the words may be written out: the enums themselves and their (de)serialisers.
ALLOWED = {
    "backfill/outcome.py": WORDS,  # the enums
    "backfill/state/base.py": {"succeeded", "failed", "partial", "cancelled"},  # RunStatus, and old run state's word
    "backfill/state/scripts.py": WORDS,  # Lua cannot name a Python enum: the state store's serialiser
    "backfill/report/facts.py": {"succeeded"},  # the report's documented word for a success
    # The users' run-history `status` vocabulary (their table's words, running/success/failed/partial/skipped)
    "backfill/runhistory.py": {"success", "partial", "failed", "skipped"},
    "backfill/processors/http.py": {"success"},  # a service's reply vocabulary (their `/process-date-range`)
    "backfill/spec.py": {"success"},  # the name of an HTTP reply's `success:` key in the spec
}


def literals(path: Path) -> list[tuple[int, str]]:
    """Outcome and category words written as string literals, except dict keys (`{"failed": n}`),
    which name a JSON field (a count of failed things), not an outcome value."""
    toks = [t for t in tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
            if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    out = []
    for i, t in enumerate(toks):
        if t.type != tokenize.STRING or t.string[-1] not in "\"'" or t.string[:1] not in "\"'":
            continue
        value = t.string[1:-1]
        if value not in WORDS:
            continue
        prev, nxt = toks[i - 1].string if i else "", toks[i + 1].string if i + 1 < len(toks) else ""
        if nxt == ":" and prev in ("{", ","):
            continue
        out.append((t.start[0], value))
    return out


def test_no_outcome_or_category_is_spelled_out_beside_the_enums() -> None:
    found = []
    for folder in ("backfill", "workers"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            found += [f"{rel}:{line}: {word!r}" for line, word in literals(path) if word not in ALLOWED.get(rel, ())]
    assert not found, "use TaskOutcome / ErrorCategory instead:\n" + "\n".join(found)


def test_the_check_sees_a_literal_and_lets_a_json_field_pass(tmp_path: Path) -> None:
    """Guard against a vacuous check: a planted comparison is found, a dict key and a sentence are not."""
    planted = tmp_path / "planted.py"
    planted.write_text('if status == "partial":\n    pass\nx = {"failed": 1, "rows": 2}\ny = "it failed"\n'
                       'z = ("blocked", "quota")\n')
    assert literals(planted) == [(1, "partial"), (5, "blocked"), (5, "quota")]


def test_run_state_holds_the_outcome_itself() -> None:
    """A settled task's run-state value is its outcome's value: `partial` is itself, a success is `success`."""
    for outcome in TaskOutcome:
        status = TaskStatus.settled_as(outcome)
        assert status.value == outcome.value and status.finished and status.outcome is outcome
    assert TaskStatus("succeeded") is TaskStatus.success  # run state written by older versions
    assert TaskStatus.pending.outcome is None and TaskStatus.running.outcome is None
    assert [o for o in TaskOutcome if o.wrote] == [TaskOutcome.success, TaskOutcome.partial]


def test_a_partial_task_records_partial_partitions_without_reading_its_result_again() -> None:
    import datetime as dt

    days = [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]
    assert partition_statuses(TaskStatus.partial, {}, days) == {"2024-01-01": "partial", "2024-01-02": "partial"}
    bisected = {"status_by_date": {"2024-01-02": "failed"}}
    assert partition_statuses(TaskStatus.failed, bisected, days) == {"2024-01-01": "failed", "2024-01-02": "failed"}
    assert partition_statuses(TaskStatus.partial, bisected, days)["2024-01-02"] == "failed"


@pytest.mark.parametrize(("raw", "want"), [
    ("auth_config", ErrorCategory.critical), ("permission", ErrorCategory.critical),
    (None, ErrorCategory.processor_error),
    ("no_such_category", ErrorCategory.processor_error), ("duplicate_key", ErrorCategory.duplicate_key),
    ("revoked", ErrorCategory.processor_error),  # a history category, not one an alert reports
])
def test_categories_parse_old_and_unknown_names(raw: str | None, want: ErrorCategory) -> None:
    assert category_of(raw) is want


def test_enums_cross_json_as_the_plain_strings_older_runs_wrote() -> None:
    back = json.loads(json.dumps({"s": TaskOutcome.partial, "c": ErrorCategory.quota}))
    assert back == {"s": "partial", "c": "quota"}
    assert ErrorCategory.revoked not in CATEGORIES and ErrorCategory.auth_config not in CATEGORIES
