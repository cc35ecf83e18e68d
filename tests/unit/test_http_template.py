"""The HTTP kind's body template and reply reading: what a service that speaks its own request gets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from backfill.errors import TransientWarehouseError, WarehouseError
from backfill.outcome import ErrorCategory
from backfill.processors.base import Invocation
from backfill.processors.http import HttpKind, fill_template, template_values
from backfill.spec import Processor

D1, D2 = dt.date(2024, 1, 1), dt.date(2024, 1, 3)
REPLY = {"results": "results", "processor": "processor", "status": "status", "success": ["success"],
         "message": "error"}


def invocation(history_names: tuple[str, ...] = ("PlayerGameSummaryProcessor",)) -> Invocation:
    proc = Processor("player_game_summary", 3, "a.b", http={"url": "http://127.0.0.1:9/x"},
                     history_names=history_names, base_dir=Path("."))
    return Invocation(proc, None, (D1, D2), None, "run-1", "t-1", 2,  # type: ignore[arg-type]
                      {"backfill_mode": True, "strict_mode": False}, {})


def test_the_template_gets_the_range_the_remote_names_and_the_options_with_their_types() -> None:
    body = {"start_date": "$start_date", "end_date": "$end_date", "processors": "$processors",
            "backfill_mode": "$options.backfill_mode", "meta": {"run": "$run_id", "try": "$attempt"},
            "$options": True, "literal": "$not_a_value"}
    got = fill_template(body, template_values(invocation()))
    assert got == {"start_date": "2024-01-01", "end_date": "2024-01-03", "processors": ["PlayerGameSummaryProcessor"],
                   "backfill_mode": True, "meta": {"run": "run-1", "try": 2}, "strict_mode": False,
                   "literal": "$not_a_value"}
    assert fill_template({"processors": "$processors"}, template_values(invocation(())))["processors"] == [
        "player_game_summary"]  # no history names: its own name


def check(doc: Any) -> None:
    HttpKind({"url": "http://127.0.0.1:9/x", "reply": REPLY})._check_results(doc, invocation())


def test_a_200_reply_fails_the_write_when_our_result_is_not_success() -> None:
    check({"status": "partial_failure", "results": [
        {"processor": "PlayerGameSummaryProcessor", "status": "success"},
        {"processor": "TeamOffenseGameSummaryProcessor", "status": "error", "error": "not ours"}]})
    with pytest.raises(WarehouseError) as failed:
        check({"status": "partial_failure", "results": [
            {"processor": "PlayerGameSummaryProcessor", "status": "error", "error": "feed missing"}]})
    assert failed.value.category == "processor_error" and "PlayerGameSummaryProcessor error: feed missing" in str(
        failed.value.message)
    with pytest.raises(TransientWarehouseError):
        check({"results": [{"processor": "PlayerGameSummaryProcessor", "status": "error", "error": "slow",
                            "failure_category": "timeout"}]})
    with pytest.raises(WarehouseError, match="no result for PlayerGameSummaryProcessor"):
        check({"status": "success", "results": []})
    with pytest.raises(WarehouseError, match="no result list at `results`"):
        check({"status": "success"})


def test_a_header_from_a_missing_environment_variable_names_the_variable_not_a_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADOPT_TEST_KEY", raising=False)
    kind = HttpKind({"url": "http://127.0.0.1:9/x", "headers_from_env": {"X-API-Key": "ADOPT_TEST_KEY"}})
    with pytest.raises(WarehouseError, match="environment variable ADOPT_TEST_KEY .*not set") as missing:
        kind._secret_headers()
    assert missing.value.category == ErrorCategory.critical
    monkeypatch.setenv("ADOPT_TEST_KEY", "s3cret")
    assert kind._secret_headers() == {"X-API-Key": "s3cret"}
