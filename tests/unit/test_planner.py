"""The planner: dependency-safe waves, selections, ordering, estimates and warnings."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

from backfill.calendar import Calendar
from backfill.errors import BadInput, PlanError
from backfill.planner import Plan, PlanRequest, build_plan, parse_task_id
from backfill.spec import PipelineSpec, load_spec
from tests.unit.planner_support import SEASONS, D, league, processor, request, spec_from

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cal() -> Calendar:
    return Calendar.from_rows(league())


@pytest.fixture(scope="module")
def nba() -> PipelineSpec:
    return load_spec(REPO / "pipelines" / "nba")


def assert_dependencies_in_earlier_waves(plan: Plan) -> None:
    wave_of = {t.id: i for i, wave in enumerate(plan.waves) for t in wave}
    for i, wave in enumerate(plan.waves):
        for t in wave:
            assert t.wave == i
            for dep in t.depends_on:
                assert wave_of[dep] < i, f"{t.id} (wave {i}) depends on {dep} (wave {wave_of[dep]})"


def planned(plan: Plan) -> Counter[tuple[str, dt.date]]:
    return Counter((t.processor, d) for t in plan.tasks() for d in t.dates)


# -- dependency safety --------------------------------------------------------------------

def test_every_dependency_lies_in_an_earlier_wave(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal))
    assert_dependencies_in_earlier_waves(plan)
    assert len(plan) == len(nba.processors) * len(cal.dates)


def test_dependencies_follow_the_windows(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal))
    tasks = plan.task_map()
    for t in tasks.values():
        proc = nba.processors[t.processor]
        expected = set()
        for dep in proc.upstream_processors:
            for day in t.dates:
                expected |= {f"{dep.source}@{e}" for e in cal.resolve(dep.window, day).dates}
        assert set(t.depends_on) == expected - {t.id}


def test_waves_follow_dependency_depth_not_dates(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal))
    # player_game_summary & co -> upcoming context / zone analyses -> cache & composite -> feature store
    assert len(plan.waves) == 4
    tasks = plan.task_map()
    for t in tasks.values():
        assert t.wave == 1 + max((tasks[d].wave for d in t.depends_on), default=-1)
    readers_of_raw = {"player_game_summary", "team_offense_game_summary", "team_defense_game_summary",
                      "upcoming_team_game_context"}
    assert readers_of_raw <= {t.processor for t in plan.waves[0]}
    # Lookback tasks on a season's first date have empty windows, so they may start at once too.
    for t in plan.waves[0]:
        assert t.processor in readers_of_raw or not t.depends_on
    assert {t.processor for t in plan.waves[-1]} == {"ml_feature_store"}


def test_a_self_dependent_processor_needs_one_wave_per_date(tmp_path: Path, cal: Calendar) -> None:
    spec = spec_from(tmp_path, processor("elo", depends_on={"elo": {"game_dates": 1}}))
    season = cal.seasons["2023-24"]
    plan = build_plan(spec, cal, request(cal, seasons=frozenset({"2023-24"})))
    assert len(plan.waves) == len(season.dates)
    assert_dependencies_in_earlier_waves(plan)
    # The first date of a season starts over: it is a bootstrap task with no dependency.
    first = plan.waves[0][0]
    assert first.dates == (season.start,) and first.bootstrap and first.depends_on == ()


def test_no_task_falls_on_a_date_without_games(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, ranges=((D(2021, 10, 1), D(2024, 8, 1)),)))
    for proc, day in planned(plan):
        assert cal.is_game_date(day), (proc, day)
    assert set(d for _, d in planned(plan)) == set(cal.dates)


def test_each_processor_date_is_planned_exactly_once(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal))
    counts = planned(plan)
    assert set(counts.values()) == {1}


# -- completed work and --force -----------------------------------------------------------

def test_completed_tasks_are_skipped_unless_forced(nba: PipelineSpec, cal: Calendar) -> None:
    season = cal.seasons["2022-23"].dates
    done = frozenset(("player_game_summary", d) for d in season[:10])
    plan = build_plan(nba, cal, request(cal, completed=done))
    assert not set(planned(plan)) & done
    assert plan.skipped_completed == 10
    assert any("already succeeded" in w for w in plan.warnings)
    # Their dependents do not wait for them, and they are not "unsatisfied".
    assert plan.counts["unsatisfied_upstream"] == 0
    forced = build_plan(nba, cal, request(cal, completed=done, force=True))
    assert done <= set(planned(forced))
    assert forced.skipped_completed == 0


# -- selections ---------------------------------------------------------------------------

def test_seasons_filter_keeps_only_those_seasons(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, seasons=frozenset({"2021-22", "2023-24"})))
    assert {t.season for t in plan.tasks()} == {"2021-22", "2023-24"}
    assert {cal.season_of(d) for _, d in planned(plan)} == {"2021-22", "2023-24"}


def test_season_types_filter_keeps_only_those_dates(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, season_types=frozenset({"playoffs"})))
    days = {d for _, d in planned(plan)}
    assert days and all(cal.season_types_on(d) == {"playoffs"} for d in days)
    assert days == {d for d in cal.dates if "playoffs" in cal.season_types_on(d)}


def test_phases_and_processors_select_processors(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, phases=frozenset({3})))
    assert {t.phase for t in plan.tasks()} == {3}
    plan = build_plan(nba, cal, request(cal, processors=frozenset({"team_defense_zone_analysis"})))
    assert {t.processor for t in plan.tasks()} == {"team_defense_zone_analysis"}


def test_bad_requests_are_refused(nba: PipelineSpec, cal: Calendar) -> None:
    with pytest.raises(PlanError, match="ends before it starts"):
        build_plan(nba, cal, request(cal, ranges=((D(2022, 1, 5), D(2022, 1, 1)),)))
    with pytest.raises(PlanError, match="1999-00"):
        build_plan(nba, cal, request(cal, seasons=frozenset({"1999-00"})))
    with pytest.raises(PlanError, match="preseason"):
        build_plan(nba, cal, request(cal, season_types=frozenset({"preseason"})))
    with pytest.raises(BadInput, match="nope"):
        build_plan(nba, cal, request(cal, processors=frozenset({"nope"})))
    with pytest.raises(PlanError):
        build_plan(nba, cal, request(cal, ranges=()))


def test_batches_never_span_seasons(tmp_path: Path, cal: Calendar) -> None:
    spec = spec_from(tmp_path, processor("box", batch_size=7))
    plan = build_plan(spec, cal, request(cal))
    for t in plan.tasks():
        assert len({cal.season_of(d) for d in t.dates}) == 1, t.id
        assert len(t.dates) <= 7
        assert list(t.dates) == sorted(t.dates)
        assert t.id == f"box@{t.dates[0]}"
    assert set(planned(plan)) == {("box", d) for d in cal.dates}
    per_season = Counter(t.season for t in plan.tasks())
    for label, season in cal.seasons.items():
        assert per_season[label] == -(-len(season.dates) // 7)


def test_request_batch_sizes_override_the_spec_but_not_for_self_dependency(tmp_path: Path, cal: Calendar) -> None:
    spec = spec_from(tmp_path, processor("box"), processor("elo", depends_on={"elo": {"game_dates": 2}}))
    plan = build_plan(spec, cal, request(cal, batch_sizes={"box": 5, "elo": 5}))
    sizes = {p: max(len(t.dates) for t in plan.tasks() if t.processor == p) for p in ("box", "elo")}
    assert sizes == {"box": 5, "elo": 1}
    assert_dependencies_in_earlier_waves(plan)


# -- ordering -----------------------------------------------------------------------------

def season_year(label: str) -> int:
    return int(label[:4])


def test_recent_first_puts_the_latest_season_first_in_every_wave(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, order="recent-first"))
    for wave in plan.waves:
        years = [season_year(t.season) for t in wave]
        assert years == sorted(years, reverse=True)
        assert wave[0].season == "2023-24"


def test_chronological_puts_the_earliest_season_first_in_every_wave(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, order="chronological"))
    for wave in plan.waves:
        years = [season_year(t.season) for t in wave]
        assert years == sorted(years)
        assert wave[0].season == "2021-22"


def test_order_changes_only_the_order_inside_waves(nba: PipelineSpec, cal: Calendar) -> None:
    recent = build_plan(nba, cal, request(cal, order="recent-first"))
    chrono = build_plan(nba, cal, request(cal, order="chronological"))
    assert [sorted(t.id for t in w) for w in recent.waves] == [sorted(t.id for t in w) for w in chrono.waves]


# -- estimates ----------------------------------------------------------------------------

@pytest.mark.parametrize("concurrency", [1, 4, 16, 500])
def test_estimates_are_consistent(nba: PipelineSpec, cal: Calendar, concurrency: int) -> None:
    plan = build_plan(nba, cal, request(cal, concurrency=concurrency))
    est = plan.estimates
    assert est.tasks == len(plan) and est.waves == len(plan.waves)
    assert est.sequential_seconds == pytest.approx(est.total_work_seconds)
    assert est.sequential_seconds >= est.wall_seconds - 1e-6
    assert est.wall_seconds >= est.critical_path_seconds - 1e-6
    assert est.speedup == pytest.approx(est.sequential_seconds / est.wall_seconds)
    expected_work = sum(nba.processors[p].estimate_seconds for p, _ in planned(plan))
    assert est.total_work_seconds == pytest.approx(expected_work)
    if concurrency == 1:
        assert est.wall_seconds == pytest.approx(est.sequential_seconds)
    if concurrency >= 16:
        assert est.speedup > 5


def test_durations_from_history_beat_the_spec_estimate(nba: PipelineSpec, cal: Calendar) -> None:
    base = build_plan(nba, cal, request(cal, processors=frozenset({"player_game_summary"})))
    slow = build_plan(nba, cal, request(cal, processors=frozenset({"player_game_summary"}),
                                        durations={"player_game_summary": 400.0}))
    assert slow.estimates.total_work_seconds == pytest.approx(base.estimates.total_work_seconds * 10)


def test_critical_path_of_a_chain_is_its_length(tmp_path: Path, cal: Calendar) -> None:
    spec = spec_from(tmp_path, processor("elo", estimate_seconds=10, depends_on={"elo": {"game_dates": 1}}))
    plan = build_plan(spec, cal, request(cal, seasons=frozenset({"2022-23"}), concurrency=8))
    n = len(cal.seasons["2022-23"].dates)
    assert plan.estimates.critical_path_seconds == pytest.approx(10 * n)
    assert plan.estimates.wall_seconds == pytest.approx(10 * n)


# -- warnings -----------------------------------------------------------------------------

def test_bootstrap_tasks_are_counted_and_reported(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal))
    boot = [t for t in plan.tasks() if t.bootstrap]
    assert boot and plan.counts["bootstrap"] == len(boot)
    for t in boot:
        start = cal.seasons[t.season].start
        assert (t.dates[0] - start).days < nba.bootstrap_days
    assert any(f"{len(boot)} bootstrap task(s)" in w for w in plan.warnings)
    # Same-date processors never bootstrap.
    assert not any(t.bootstrap for t in plan.tasks() if t.processor == "player_game_summary")
    assert any("cut at the season start" in w for w in plan.warnings)


def test_off_days_and_days_outside_seasons_are_reported(nba: PipelineSpec, cal: Calendar) -> None:
    season = cal.seasons["2022-23"]
    off = [season.start + dt.timedelta(days=i) for i in range((season.end - season.start).days + 1)]
    off_days = sum(1 for d in off if not cal.is_game_date(d))
    summer = (season.end + dt.timedelta(days=1), season.end + dt.timedelta(days=10))
    plan = build_plan(nba, cal, request(cal, ranges=((season.start, season.end), summer)))
    assert plan.counts["days_without_games"] == off_days
    assert plan.counts["days_outside_seasons"] == 10
    assert any(f"{off_days} requested day(s) have no games" in w for w in plan.warnings)
    assert any("10 requested day(s) lie outside every season" in w for w in plan.warnings)


def test_a_range_without_games_plans_nothing_and_says_so(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, ranges=((D(2022, 8, 1), D(2022, 8, 7)),)))
    assert len(plan) == 0 and plan.waves == ()
    assert any("no game dates" in w for w in plan.warnings)


def test_phase_four_alone_warns_about_unsatisfied_upstream(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, phases=frozenset({4})))
    assert plan.counts["unsatisfied_upstream"] > 0
    text = " ".join(plan.warnings)
    for name in ("team_defense_zone_analysis", "player_shot_zone_analysis", "player_daily_cache",
                 "player_composite_factors"):
        assert f"{name}:" in text and "neither planned nor recorded" in text
    # Phase 4 depends on Phase 4 on the same date; those dependencies are still planned.
    assert_dependencies_in_earlier_waves(plan)
    assert plan.waves[0][0].phase == 4


def test_phase_four_is_satisfied_when_phase_three_is_complete(nba: PipelineSpec, cal: Calendar) -> None:
    done = frozenset((p, d) for p, proc in nba.processors.items() if proc.phase == 3 for d in cal.dates)
    plan = build_plan(nba, cal, request(cal, phases=frozenset({4}), completed=done))
    assert plan.counts["unsatisfied_upstream"] == 0
    assert not any("neither planned" in w for w in plan.warnings)


# -- several ranges (the users' multi-season test run) ------------------------------------

def test_repeated_ranges_plan_one_week_of_each_season(nba: PipelineSpec, cal: Calendar) -> None:
    weeks = tuple((s.dates[20], s.dates[20] + dt.timedelta(days=6)) for s in cal.seasons.values())
    plan = build_plan(nba, cal, PlanRequest(ranges=weeks))
    days = {d for _, d in planned(plan)}
    expected = {d for a, b in weeks for d in cal.game_dates_between(a, b)}
    assert days == expected
    assert set(plan.counts["by_season"]) == set(SEASONS)
    assert plan.request.to_json()["ranges"] == [[a.isoformat(), b.isoformat()] for a, b in weeks]
    assert_dependencies_in_earlier_waves(plan)


def test_overlapping_ranges_do_not_duplicate_tasks(nba: PipelineSpec, cal: Calendar) -> None:
    s = cal.seasons["2022-23"]
    plan = build_plan(nba, cal, PlanRequest(ranges=((s.dates[0], s.dates[10]), (s.dates[5], s.dates[15]))))
    assert set(planned(plan).values()) == {1}
    assert len({d for _, d in planned(plan)}) == 16


# -- the frozen plan round-trips ------------------------------------------------------------

def test_plan_json_shape(nba: PipelineSpec, cal: Calendar) -> None:
    plan = build_plan(nba, cal, request(cal, seasons=frozenset({"2023-24"})))
    data = plan.to_json()
    assert {"waves", "estimates", "warnings"} <= set(data)
    task = data["waves"][0][0]
    assert {"id", "processor", "dates", "depends_on", "bootstrap"} <= set(task)
    assert parse_task_id(task["id"]) == (task["processor"], D.fromisoformat(task["dates"][0]))
    assert PlanRequest.from_json(data["request"]).ranges == plan.request.ranges


def test_off_days_of_seasons_left_out_by_the_filter_are_not_reported(nba: PipelineSpec, cal: Calendar) -> None:
    season = cal.seasons["2022-23"]
    span = (season.end - season.start).days + 1
    off_days = span - len(season.dates)
    plan = build_plan(nba, cal, request(cal, seasons=frozenset({"2022-23"})))
    assert plan.counts["days_without_games"] == off_days


ONE = {n: 1 for n in load_spec(REPO / "pipelines" / "nba").processors}


def test_with_upstream_plans_every_partition_the_windows_read_and_no_more(nba: PipelineSpec, cal: Calendar) -> None:
    """A Phase 4 test week mid-season: its windows reach Phase 3 back to the season start."""
    season = cal.seasons[sorted(cal.seasons)[-1]]
    week = (season.dates[40], season.dates[46])
    plain = build_plan(nba, cal, PlanRequest(ranges=(week,), phases=frozenset({4}), batch_sizes=ONE))
    full = build_plan(nba, cal, PlanRequest(ranges=(week,), phases=frozenset({4}), batch_sizes=ONE,
                                            with_upstream=True))
    assert {t.phase for t in plain.tasks()} == {4}
    got = planned(full)
    # player_daily_cache reads player_game_summary season to date: every game date before the week's last.
    pgs = {d for p, d in got if p == "player_game_summary"}
    assert pgs == {d for d in season.dates if d < week[1]}
    # Nothing outside the season and nothing the windows do not read: no Phase 4 date outside the week.
    assert {d for p, d in got if nba.processors[p].phase == 4} == set(cal.game_dates_between(*week))
    assert all(n == 1 for n in got.values())
    assert_dependencies_in_earlier_waves(full)
    done = frozenset(("player_game_summary", d) for d in pgs)
    again = build_plan(nba, cal, PlanRequest(ranges=(week,), phases=frozenset({4}), batch_sizes=ONE,
                                             with_upstream=True, completed=done))
    assert not {d for p, d in planned(again) if p == "player_game_summary"}  # done upstream is not redone
