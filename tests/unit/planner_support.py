"""What the planner's unit tests share: a small random league, plan requests, and tiny pipeline specs."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import yaml

from backfill.calendar import Calendar
from backfill.planner import PlanRequest
from backfill.spec import PipelineSpec, load_spec

D = dt.date
SEASONS = ("2021-22", "2022-23", "2023-24")
TEAMS = ("ATL", "BOS", "CHI", "DAL", "DEN", "GSW", "LAL", "MIA")


def league(seasons: tuple[str, ...] = SEASONS, seed: int = 7) -> list[dict[str, Any]]:
    """A small league: ~45 regular dates with off-days and a week-long break, play-in, playoffs."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for label in seasons:
        day = D(int(label[:4]), 10, 20)
        kinds = ["regular"] * 48 + ["play_in"] * 2 + ["playoffs"] * 6
        for i, kind in enumerate(kinds):
            if i == 24:
                day += dt.timedelta(days=8)  # the All-Star break
            elif i == 48:
                day += dt.timedelta(days=3)  # a hole before the play-in
            elif rng.random() < 0.25:
                day += dt.timedelta(days=2)  # an off-day
            else:
                day += dt.timedelta(days=1)
            teams = list(TEAMS)
            rng.shuffle(teams)
            games = 4 if kind == "regular" else (1 if kind == "play_in" else 2)
            games = rng.randint(1, games)
            for g in range(games):
                rows.append({"game_id": f"{label}-{len(rows)}", "game_date": day, "season": label,
                             "season_type": kind, "home_team": teams[2 * g], "away_team": teams[2 * g + 1]})
    return rows


def everything(cal: Calendar) -> tuple[tuple[dt.date, dt.date]]:
    return ((cal.dates[0], cal.dates[-1]),)


def request(cal: Calendar, **kw: Any) -> PlanRequest:
    """A plan request over the whole calendar unless `ranges` says otherwise."""
    kw.setdefault("ranges", everything(cal))
    return PlanRequest(**kw)


def processor(name: str, *, depends_on: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """One Phase 3 processor of a tiny pipeline: writes `nba_analytics.<name>` with `<name>.sql`.
    `depends_on` maps each upstream processor to its window (`same_date`, `{game_dates: 2}`, ...)."""
    entry: dict[str, Any] = {"phase": 3, "target": f"nba_analytics.{name}", "sql": f"{name}.sql", **fields}
    if depends_on:
        entry["depends_on"] = [{"processor": source, "window": window} for source, window in depends_on.items()]
    return {name: entry}


def spec_from(tmp_path: Path, *processors: dict[str, Any]) -> PipelineSpec:
    """A pipeline.yaml in `tmp_path` of the raw schedule and these `processor(...)`s, loaded."""
    procs = {name: entry for p in processors for name, entry in p.items()}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "raw_tables": {"nba_raw.schedule": {}}, "processors": procs},
                                   sort_keys=False), encoding="utf-8")
    return load_spec(path)
