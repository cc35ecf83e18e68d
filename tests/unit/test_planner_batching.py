"""Automatic batching: the cost model's choices, its limits, its calibration, and dependency safety."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from backfill.calendar import Calendar
from backfill.errors import PlanError
from backfill.planner import Plan, PlanRequest, build_plan
from backfill.planner.batching import (
    BIGQUERY,
    DUCKDB,
    GENERIC,
    Cost,
    calibrate,
    choose_batches,
    chunk_sizes,
    makespan_bound,
    min_size_for_budget,
)
from backfill.spec import PipelineSpec
from tests.unit.planner_support import league, processor, request, spec_from

REPO = Path(__file__).resolve().parents[2]
SEASONS5 = ("2020-21", "2021-22", "2022-23", "2023-24", "2024-25")


@pytest.fixture(scope="module")
def cal() -> Calendar:
    return Calendar.from_rows(league(SEASONS5))


@pytest.fixture(scope="module")
def nba() -> PipelineSpec:
    from backfill.spec import load_spec

    return load_spec(REPO / "pipelines" / "nba")


def auto(cal: Calendar, **kw: object) -> PlanRequest:
    kw.setdefault("batch", "auto")
    return request(cal, **kw)


def sizes(plan: Plan) -> dict[str, int]:
    return {n: b["size"] for n, b in plan.batching["processors"].items()}


def assert_safe(plan: Plan, spec: PipelineSpec, cal: Calendar) -> None:
    """Every date of every task waits for the task owning each upstream date of its windows."""
    owner = {(t.processor, d): t.id for t in plan.tasks() for d in t.dates}
    wave_of = {t.id: t.wave for t in plan.tasks()}
    for t in plan.tasks():
        assert len({cal.season_of(d) for d in t.dates}) == 1, t.id
        for dep in spec.processors[t.processor].upstream_processors:
            for day in t.dates:
                for e in cal.resolve(dep.window, day).dates:
                    src = owner.get((dep.source, e))
                    if src is not None and src != t.id:
                        assert src in t.depends_on, (t.id, src)
                        assert wave_of[src] < t.wave


def test_duckdb_runs_one_task_per_processor_and_season(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, auto(cal, profile=DUCKDB, concurrency=8))
    per = Counter((t.processor, t.season) for t in plan.tasks())
    assert set(per.values()) == {1}
    assert len(plan) == len(nba.processors) * len(SEASONS5)
    assert plan.batching["effective_concurrency"] == 1
    assert all("one writer" in b["reasons"][-1] for b in plan.batching["processors"].values())
    assert_safe(plan, nba, cal)


@pytest.mark.parametrize("concurrency", [4, 16, 64])
def test_bigquery_batches_shrink_as_slots_grow_and_stay_safe(nba: PipelineSpec, cal: Calendar,
                                                             concurrency: int) -> None:
    plan = build_plan(nba, cal, auto(cal, profile=BIGQUERY, concurrency=concurrency))
    assert_safe(plan, nba, cal)
    assert Counter(d for t in plan.tasks() for d in t.dates) == Counter(
        {d: len(nba.processors) for d in cal.dates})
    longest = max(len(s.dates) for s in cal.seasons.values())
    # The chain that sets the critical path gets mid-sized batches; processors off it may take a season.
    assert any(1 < size < longest for size in sizes(plan).values()), sizes(plan)


def test_more_slots_never_mean_bigger_batches(nba: PipelineSpec, cal: Calendar) -> None:
    chosen = [sizes(build_plan(nba, cal, auto(cal, profile=BIGQUERY, concurrency=c))) for c in (2, 4, 16, 64)]
    for fewer, more in itertools.pairwise(chosen):
        assert all(more[n] <= fewer[n] for n in fewer), (fewer, more)
    assert chosen[-1] != chosen[0]


def test_model_choice_matches_brute_force_on_a_chain() -> None:
    order = ["a", "b", "c"]
    dates = {n: {"s1": 60, "s2": 45} for n in order}
    costs = {"a": Cost(5, 1), "b": Cost(2, 3), "c": Cost(8, 0.5)}
    upstream = {"a": [], "b": ["a"], "c": ["b"]}
    from backfill.planner.batching import SIZE_STEPS, Bounds

    bounds = {n: Bounds(1, 60, ()) for n in order}
    got = choose_batches(order, dates, costs, upstream, bounds, concurrency=6)
    steps = sorted({min(s, 60) for s in SIZE_STEPS})
    best = min(itertools.product(steps, repeat=3),
               key=lambda ks: makespan_bound(dict(zip(order, ks, strict=True)), dates, costs, upstream, order, 6))
    best_t = makespan_bound(dict(zip(order, best, strict=True)), dates, costs, upstream, order, 6)
    assert makespan_bound(got, dates, costs, upstream, order, 6) == pytest.approx(best_t)


def test_one_slot_means_the_biggest_batch_and_no_overhead_means_one_date() -> None:
    dates = {"a": {"s": 100}}
    from backfill.planner.batching import Bounds

    bounds = {"a": Bounds(1, 366, ())}
    assert choose_batches(["a"], dates, {"a": Cost(1, 1)}, {}, bounds, concurrency=1) == {"a": 100}
    assert choose_batches(["a"], dates, {"a": Cost(0, 1)}, {}, bounds, concurrency=8) == {"a": 1}


def test_self_dependent_processors_stay_at_one_date(tmp_path: Path, cal: Calendar) -> None:
    spec = spec_from(tmp_path, processor("box"),
                     processor("elo", depends_on={"elo": {"game_dates": 2}, "box": "same_date"}))
    plan = build_plan(spec, cal, auto(cal, profile=DUCKDB))
    assert {len(t.dates) for t in plan.tasks() if t.processor == "elo"} == {1}
    assert max(len(t.dates) for t in plan.tasks() if t.processor == "box") > 1
    assert "own earlier dates" in plan.batching["processors"]["elo"]["reasons"][0]
    assert_safe(plan, spec, cal)


def test_spec_batch_size_is_an_upper_bound_and_batch_n_overrides(tmp_path: Path, cal: Calendar) -> None:
    spec = spec_from(tmp_path, processor("box", batch_size=6), processor("team"))
    plan = build_plan(spec, cal, auto(cal, profile=DUCKDB))
    assert max(len(t.dates) for t in plan.tasks() if t.processor == "box") == 6
    assert Counter(t.season for t in plan.tasks() if t.processor == "team") == Counter(
        {s: 1 for s in cal.seasons})
    fixed = build_plan(spec, cal, auto(cal, profile=DUCKDB, batch=4, batch_sizes={"team": 2}))
    assert sizes(fixed) == {"box": 4, "team": 2}
    legacy = build_plan(spec, cal, auto(cal, batch=None))
    assert sizes(legacy) == {"box": 6, "team": 1}


def test_bigquery_table_job_quota_forces_bigger_batches(nba: PipelineSpec, cal: Calendar) -> None:
    tight = replace(BIGQUERY, table_jobs_per_day=100, table_jobs_share=0.5)
    plan = build_plan(nba, cal, auto(cal, profile=tight, concurrency=64))
    per_table = Counter(t.processor for t in plan.tasks())
    assert max(per_table.values()) <= 50
    assert all("table jobs per day" in " ".join(b["reasons"]) for b in plan.batching["processors"].values())
    assert min_size_for_budget([49, 30], 4) == 25


def test_maximum_bytes_billed_caps_the_batch(nba: PipelineSpec, cal: Calendar) -> None:
    capped = replace(BIGQUERY, maximum_bytes_billed=10 * 2**30,
                     bytes_per_date={"player_game_summary": 2 * 2**30})
    plan = build_plan(nba, cal, auto(cal, profile=capped, concurrency=2))
    assert max(len(t.dates) for t in plan.tasks() if t.processor == "player_game_summary") <= 5
    assert "maximum_bytes_billed" in plan.batching["processors"]["player_game_summary"]["reasons"][0]


def test_calibration_separates_fixed_and_per_date_cost() -> None:
    samples = [("p", n, 2.0 + 0.5 * n) for n in (1, 4, 10, 30) for _ in range(3)]
    cost = calibrate(samples, GENERIC, {"p": 30})["p"]
    assert (cost.fixed_seconds, cost.per_date_seconds, cost.source) == (pytest.approx(2.0), pytest.approx(0.5),
                                                                       "history")
    # One batch size only: the profile's split, scaled to the measured median.
    one = calibrate([("q", 1, 3.0), ("q", 1, 3.2), ("q", 1, 9.0)], BIGQUERY, {"q": 30})["q"]
    assert one.task_seconds(1) == pytest.approx(3.2 + 0.0, abs=0.06)
    assert one.fixed_seconds / one.per_date_seconds == pytest.approx(2.0, rel=0.05)


def test_history_costs_change_the_choice(nba: PipelineSpec, cal: Calendar) -> None:
    base = build_plan(nba, cal, auto(cal, profile=BIGQUERY, concurrency=16))
    cheap_jobs = {n: Cost(0.01, 5.0, "history", 10) for n in nba.processors}
    cheap = build_plan(nba, cal, auto(cal, profile=BIGQUERY, concurrency=16, costs=cheap_jobs))
    assert sizes(cheap)["player_game_summary"] == sizes(cheap)["ml_feature_store"] == 1
    assert sizes(base)["player_game_summary"] > 1
    assert len(cheap) > len(base)
    assert cheap.batching["processors"]["ml_feature_store"]["cost"]["source"] == "history"


def test_auto_batches_are_even(nba: PipelineSpec, cal: Calendar) -> None:
    assert chunk_sizes(10, 4) == [4, 3, 3]
    assert chunk_sizes(0, 4) == []
    plan = build_plan(nba, cal, auto(cal, profile=BIGQUERY, concurrency=16))
    for name in nba.processors:
        for season in cal.seasons:
            lengths = [len(t.dates) for t in plan.tasks() if t.processor == name and t.season == season]
            assert max(lengths) - min(lengths) <= 1, (name, season, lengths)


def test_request_json_keeps_the_batch_mode_and_plan_json_explains(nba: PipelineSpec, cal: Calendar) -> None:
    request = auto(cal, profile=DUCKDB, batch=7)
    again = PlanRequest.from_json(json.loads(json.dumps(request.to_json())))
    assert (again.batch, again.profile) == (7, DUCKDB)
    data = json.loads(json.dumps(build_plan(nba, cal, auto(cal, profile=DUCKDB)).to_json()))
    entry = data["batching"]["processors"]["player_game_summary"]
    assert {"size", "tasks", "dates", "cost", "reasons"} <= set(entry)
    assert data["batching"]["mode"] == "auto"
    with pytest.raises(PlanError, match="batch"):
        build_plan(nba, cal, auto(cal, batch=0))


def test_estimates_use_the_batched_costs(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, auto(cal, profile=DUCKDB))
    expected = sum(DUCKDB.default_cost(nba.processors[t.processor].estimate_seconds).task_seconds(len(t.dates))
                   for t in plan.tasks())
    assert plan.estimates.total_work_seconds == pytest.approx(expected)
    assert dt.timedelta(seconds=plan.estimates.total_work_seconds) < dt.timedelta(minutes=1)
