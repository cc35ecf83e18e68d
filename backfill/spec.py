"""Pipeline specs: processors, phases, dependencies and lookback windows, loaded from YAML.

A spec is frozen data. Loading validates everything a plan relies on (names, windows,
cycles, identifiers) and reports the first problem as one line naming the file, the line
and the processor, so a typo never reaches a warehouse.
"""

from __future__ import annotations

import graphlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from backfill.acceptance import (
    PipelineAcceptance,
    ProcessorAcceptance,
    parse_pipeline_acceptance,
    parse_processor_acceptance,
)
from backfill.errors import BadInput, SpecError
from backfill.outcome import ErrorCategory
from backfill.warehouse.schema import Column, TableSchema, check_identifier, check_table_name

WINDOW_KINDS = ("same_date", "game_dates", "team_games", "days", "season_to_date")
_SIZED = ("game_dates", "team_games", "days")
_PROCESSOR_KEYS = {"phase", "target", "partition", "sql", "python", "http", "options", "batch_size",
                   "required_columns", "depends_on", "estimate_seconds", "description", "columns", "key", "cluster",
                   "ranges", "history_names",
                   "expect", "acceptance"}
_EXPECT_KEYS = {"rows_per_game", "rows_like", "every_team"}
_TOP_KEYS = {"name", "description", "schedule_table", "run_history_table", "bootstrap_days", "raw_tables",
             "processors", "post_write", "acceptance", "plugin", "phases", "backfill_options"}
_HTTP_KEYS = {"url", "method", "headers", "timeout", "headers_from_env", "body", "reply"}
_REPLY_KEYS = {"results", "processor", "status", "success", "message", "category"}
DEFAULT_SCHEDULE_TABLE = "raw.schedule"
DEFAULT_RUN_HISTORY_TABLE = "reference.processor_run_history"


@dataclass(frozen=True)
class Window:
    """Which upstream partitions a task on date D reads.

    Sized windows count *game dates* from the schedule (league dates, or each team's dates),
    except `days`, which counts calendar days; either way only dates with games are partitions.
    """

    kind: str = "same_date"
    size: int = 0
    include_current: bool = False
    cross_season: bool = False

    @property
    def reads_current(self) -> bool:
        return self.kind == "same_date" or self.include_current

    def describe(self) -> str:
        base = self.kind if self.kind in ("same_date", "season_to_date") else f"{self.kind}: {self.size}"
        opts = [o for o, on in (("include_current", self.include_current and self.kind != "same_date"),
                                ("cross_season", self.cross_season)) if on]
        return base + (f" ({', '.join(opts)})" if opts else "")


@dataclass(frozen=True)
class Dependency:
    """An upstream: another processor (or the same one), or a raw table, over a window."""

    source: str
    window: Window
    is_processor: bool


@dataclass(frozen=True)
class Expect:
    """What a processor's output must hold on a date with games; anything less is not `success`.

    With nothing declared, a date with games must get at least one row. `rows_per_game`: exactly
    this many rows per scheduled game (team tables: 2). `rows_like`: as many rows as an upstream
    (raw table or processor) has on the same date. `every_team`: the column that names a team;
    every team scheduled on the date must have a row.
    """

    rows_per_game: int | None = None
    rows_like: str | None = None
    every_team: str | None = None

    def describe(self) -> str:
        parts = [f"{self.rows_per_game} row(s) per game" if self.rows_per_game else "",
                 f"one row per row of {self.rows_like}" if self.rows_like else "",
                 f"a row for every team playing ({self.every_team})" if self.every_team else ""]
        return "; ".join(p for p in parts if p) or "at least one row on a date with games"


@dataclass(frozen=True)
class Processor:
    name: str
    phase: int
    target: str
    partition: str = "game_date"
    sql: Path | None = None
    python: str | None = None
    batch_size: int | None = None  # None: no limit; the planner's batching chooses
    required_columns: tuple[str, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    estimate_seconds: float = 30.0
    description: str = ""
    columns: tuple[Column, ...] = ()
    key: tuple[str, ...] = ()
    # BigQuery clusters the table by these (after partitioning by `partition`): a task's reads
    # filter on them (team, player), so blocks of other teams and players are skipped.
    cluster: tuple[str, ...] = ()
    expect: Expect = field(default_factory=Expect)
    acceptance: ProcessorAcceptance = field(default_factory=ProcessorAcceptance)
    http: Mapping[str, Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    base_dir: Path | None = None
    # The names the users' own code writes this processor's run history under (their class
    # names, e.g. PlayerGameSummaryProcessor): their `success` rows count as this processor's.
    history_names: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "http" if self.http is not None else "python" if self.python is not None else "sql"

    def sql_text(self) -> str:
        """The SQL file's text; a missing or empty file is this processor's final error, not the run's."""
        from backfill.errors import WarehouseError

        if self.sql is None:
            raise WarehouseError(f"processor {self.name} has no `sql:` file", category=ErrorCategory.auth_config)
        try:
            text = self.sql.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise WarehouseError(f"cannot read SQL file {self.sql}: {exc}") from exc
        if not text.strip():
            raise WarehouseError(f"SQL file {self.sql} is empty")
        return text

    @property
    def self_dependent(self) -> bool:
        return any(d.is_processor and d.source == self.name for d in self.depends_on)

    @property
    def upstream_processors(self) -> tuple[Dependency, ...]:
        return tuple(d for d in self.depends_on if d.is_processor)

    @property
    def table(self) -> TableSchema:
        """The target table's schema; only processors that declare `columns` have one."""
        if not self.columns:
            raise BadInput(f"processor {self.name} declares no columns; add `columns:` to its spec")
        return TableSchema(self.target, self.columns, self.partition, self.cluster)


@dataclass(frozen=True)
class RawTable:
    """A raw input. `game` / `team` name the columns that say which game (and team) a row covers,
    so partial raw data is found per game and per team against the schedule."""

    name: str
    partition: str | None = None
    game: str | None = None
    team: str | None = None
    key: tuple[str, ...] = ()  # columns that identify one row: the import and `validate` refuse repeats


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    path: Path
    processors: Mapping[str, Processor]
    raw_tables: Mapping[str, RawTable]
    schedule_table: str = DEFAULT_SCHEDULE_TABLE
    run_history_table: str = DEFAULT_RUN_HISTORY_TABLE
    order: tuple[str, ...] = field(default_factory=tuple)
    bootstrap_days: int = 14
    post_write: tuple[str, ...] = ()
    acceptance: PipelineAcceptance = field(default_factory=PipelineAcceptance)
    # `package.module:function` returning the pipeline's CLI plugin (its `data` commands, the demo's
    # data): pipeline-specific commands come from the pipeline, never from the library.
    plugin: str | None = None
    # phase number -> the name the users' run history uses (`phase_3_analytics`).
    phase_names: Mapping[int, str] = field(default_factory=dict)
    # Sent with every call of every processor kind in a backfill (`backfill_mode: true`, ...);
    # a processor's own `options:` and then the run's `--option` override them.
    backfill_options: Mapping[str, Any] = field(default_factory=dict)

    def phase_name(self, phase: int) -> str:
        return self.phase_names.get(phase) or f"phase_{phase}"

    def history_aliases(self) -> dict[str, str]:
        """history name -> processor, for every processor that declares `history_names`."""
        return {a: n for n, p in self.processors.items() for a in p.history_names}

    def options_for(self, processor: str, run_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What a call of `processor` is sent: the spec's block, its own options, then the run's."""
        return {**self.backfill_options, **self.processors[processor].options, **(run_options or {})}

    def topological(self) -> tuple[str, ...]:
        """Processors so that every processor comes after its (non-self) upstreams."""
        return self.order

    def select(self, phases: set[int] | None = None, names: set[str] | None = None) -> tuple[str, ...]:
        unknown = sorted((names or set()) - set(self.processors))
        if unknown:
            raise BadInput(f"unknown processor(s) {', '.join(unknown)} in pipeline {self.name}; "
                           f"known: {', '.join(self.order)}")
        out = [n for n in self.order
               if (phases is None or self.processors[n].phase in phases) and (names is None or n in names)]
        if not out:
            raise BadInput(f"the selection (phases {sorted(phases or [])}, processors {sorted(names or [])}) "
                           f"matches no processor of pipeline {self.name}")
        return tuple(out)

    def downstream(self, name: str) -> tuple[str, ...]:
        return tuple(n for n in self.order
                     if any(d.source == name for d in self.processors[n].upstream_processors) and n != name)


# -- loading ---------------------------------------------------------------------------

class _Where:
    """Line numbers of the YAML nodes, so errors can name the line."""

    def __init__(self, file: Path, node: yaml.Node | None) -> None:
        self.file = file
        self.lines: dict[str, int] = {}
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == "processors" and isinstance(v, yaml.MappingNode):
                    for pk, _ in v.value:
                        self.lines[pk.value] = pk.start_mark.line + 1

    def fail(self, processor: str | None, message: str) -> SpecError:
        if processor is None:
            return SpecError(f"{self.file}: {message}")
        line = self.lines.get(processor)
        at = f"{self.file}:{line}" if line else str(self.file)
        return SpecError(f"{at}: processor {processor}: {message}")


def parse_window(raw: Any) -> Window:
    """`same_date`, `season_to_date`, or `{team_games: 10, include_current: true, cross_season: false}`."""
    if isinstance(raw, str):
        if raw in ("same_date", "season_to_date"):
            return Window(raw)
        raise ValueError(f"unknown window {raw!r} (one of {', '.join(WINDOW_KINDS)})")
    if not isinstance(raw, Mapping):
        raise ValueError(f"window must be a name or a mapping, got {raw!r}")
    opts = {k: raw[k] for k in ("include_current", "cross_season") if k in raw}
    kinds = [k for k in raw if k not in opts]
    if len(kinds) != 1:
        raise ValueError(f"window {dict(raw)!r} must name exactly one kind of {', '.join(WINDOW_KINDS)}")
    kind = kinds[0]
    if kind not in WINDOW_KINDS:
        raise ValueError(f"unknown window kind {kind!r} (one of {', '.join(WINDOW_KINDS)})")
    size = raw[kind]
    if kind in _SIZED:
        if isinstance(size, bool) or not isinstance(size, int):
            raise ValueError(f"window {kind} needs a whole number, got {size!r}")
        if size < 0:
            raise ValueError(f"window {kind} has a negative size {size}")
    else:
        size = 0
    for k, v in opts.items():
        if not isinstance(v, bool):
            raise ValueError(f"window option {k} must be true or false, got {v!r}")
    return Window(kind, int(size), bool(opts.get("include_current", False)), bool(opts.get("cross_season", False)))


def load_spec(path: str | Path) -> PipelineSpec:
    """Load `pipeline.yaml` from a pipeline directory (or the file itself)."""
    p = Path(path)
    file = p / "pipeline.yaml" if p.is_dir() else p
    if not file.exists():
        raise SpecError(f"no pipeline spec at {file}", hint="pass --pipeline DIR with a pipeline.yaml in it")
    data, where = _parse(file, _spec_text(file))
    if not isinstance(data, Mapping) or not isinstance(data.get("processors"), Mapping):
        raise where.fail(None, "expected a mapping with a `processors:` section")
    unknown = sorted(str(k) for k in set(data) - _TOP_KEYS)
    if unknown:
        raise where.fail(None, f"unknown top-level setting(s) {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(_TOP_KEYS))})")
    boot = data.get("bootstrap_days", 14)
    if isinstance(boot, bool) or not isinstance(boot, int) or boot < 0:
        raise where.fail(None, f"bootstrap_days must be a whole number >= 0, got {boot!r}")
    return _build(data, file, where)


# libyaml's parser when PyYAML was built with it (several times faster on a large spec), else PyYAML's own.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(file: Path, text: str) -> tuple[Any, _Where]:
    """The spec's data and its processors' line numbers, from one parse of the text."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise SpecError(f"{file}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    finally:
        loader.dispose()
    return data or {}, _Where(file, node)


def _spec_text(file: Path) -> str:
    """The spec's text: a folder, an unreadable or a non-UTF-8 file is one line, not a traceback."""
    try:
        return file.read_text(encoding="utf-8")
    except IsADirectoryError:
        raise SpecError(f"{file} is a folder, not a pipeline spec", hint="pass --pipeline DIR with a pipeline.yaml "
                                                                          "in it") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{file} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                        hint="save it as UTF-8, e.g. `iconv -f cp1252 -t utf-8`") from None
    except OSError as exc:
        raise SpecError(f"cannot read {file}: {exc.strerror or exc}") from None


def _build(data: Mapping[str, Any], file: Path, where: _Where) -> PipelineSpec:
    """The spec from its parsed YAML: each section checked by its own function, in file order, so the
    first problem is the one reported."""
    raw_tables = {str(name): _parse_raw_table(str(name), opts or {}, where)
                  for name, opts in (data.get("raw_tables") or {}).items()}
    schedule_table, run_history, hooks, plugin = _top_settings(data, where)
    names = list(data["processors"].keys())
    procs: dict[str, Processor] = {}
    targets: dict[str, str] = {}
    for name in names:
        procs[name] = _processor(name, data["processors"], raw_tables, run_history, targets, file.parent, where)
    order = _order(names, procs, where)
    _check_history_names(procs, where)
    try:
        pipeline_acceptance = parse_pipeline_acceptance(data.get("acceptance"),
                                                        {n: {c.name for c in p.columns} for n, p in procs.items()})
    except ValueError as exc:
        raise where.fail(None, str(exc)) from exc
    return PipelineSpec(name=str(data.get("name", file.parent.name)), path=file.parent, processors=procs,
                        raw_tables=raw_tables, schedule_table=schedule_table, run_history_table=run_history,
                        order=order, bootstrap_days=int(data.get("bootstrap_days", 14)), post_write=hooks,
                        acceptance=pipeline_acceptance, plugin=plugin,
                        phase_names=_parse_phases(data.get("phases"), where),
                        backfill_options=_parse_options(data.get("backfill_options"), where))


def _top_settings(data: Mapping[str, Any], where: _Where) -> tuple[str, str, tuple[str, ...], str | None]:
    """The schedule and run-history tables, the post-write hooks and the plugin, checked."""
    schedule_table = data.get("schedule_table", DEFAULT_SCHEDULE_TABLE)
    run_history = data.get("run_history_table", DEFAULT_RUN_HISTORY_TABLE)
    hooks = data.get("post_write") or ()
    hooks = (hooks,) if isinstance(hooks, str) else tuple(hooks)
    for h in hooks:
        if not _is_ref(h):
            raise where.fail(None, f"post_write hook {h!r} must be 'package.module:function'")
    plugin = data.get("plugin")
    if plugin is not None and not _is_ref(plugin):
        raise where.fail(None, f"plugin {plugin!r} must be 'package.module:function'")
    for t in (schedule_table, run_history):
        try:
            check_table_name(t)
        except BadInput as exc:
            raise where.fail(None, exc.message) from exc
    return schedule_table, run_history, hooks, plugin


def _is_ref(value: Any) -> bool:
    """A `package.module:function` reference."""
    return isinstance(value, str) and value.count(":") == 1 and all(value.split(":"))


def _processor(name: Any, section: Mapping[str, Any], raw_tables: Mapping[str, RawTable], run_history: str,
               targets: dict[str, str], base: Path, where: _Where) -> Processor:
    """One `processors:` entry; records its target in `targets` (two processors may not write one table)."""
    raw = section[name]
    try:
        check_identifier(str(name), "processor name")
    except BadInput as exc:
        raise where.fail(str(name), exc.message) from exc
    if not isinstance(raw, Mapping):
        raise where.fail(name, "expected a mapping of settings")
    unknown = sorted(set(raw) - _PROCESSOR_KEYS)
    if unknown:
        raise where.fail(name, f"unknown setting(s) {', '.join(unknown)}")
    phase = raw.get("phase")
    if isinstance(phase, bool) or not isinstance(phase, int) or phase < 1:
        raise where.fail(name, f"phase must be a positive whole number, got {phase!r}")
    target, partition, required, columns, key, cluster = _table_settings(name, raw, where)
    if target in targets:
        raise where.fail(name, f"target {target} is also written by {targets[target]}")
    _refuse_input_target(target, raw_tables, run_history, where, name)
    targets[target] = name
    batch = raw.get("batch_size")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise where.fail(name, f"batch_size must be a whole number >= 1, got {batch!r}")
    est = raw.get("estimate_seconds", 30.0)
    if isinstance(est, bool) or not isinstance(est, (int, float)) or est < 0:
        raise where.fail(name, f"estimate_seconds must be a number >= 0, got {est!r}")
    sql_path, http = _kind_settings(name, raw, base, where)
    options = raw.get("options") or {}
    if not isinstance(options, Mapping) or not all(isinstance(k, str) and k.isidentifier() for k in options):
        raise where.fail(name, f"options must be a mapping of identifier: value, got {options!r}")
    deps = _depends_on(name, raw, section, raw_tables, where)
    if batch is not None and batch > 1 and any(d.is_processor and d.source == name for d in deps):
        raise where.fail(name, "batch_size > 1 is not allowed for a processor that reads its own earlier dates")
    expect = _parse_expect(raw.get("expect"), deps, columns, where, name)
    try:
        acceptance = parse_processor_acceptance(raw.get("acceptance"), {c.name for c in columns})
    except ValueError as exc:
        raise where.fail(name, str(exc)) from exc
    return Processor(
        name=name, phase=phase, target=target, partition=partition, sql=sql_path,
        python=raw.get("python"), batch_size=batch, required_columns=required, depends_on=tuple(deps),
        estimate_seconds=float(est), description=str(raw.get("description", "")), columns=columns, key=key,
        cluster=cluster,
        expect=expect, http=dict(http) if http is not None else None, options=dict(options), base_dir=base,
        acceptance=acceptance, history_names=_history_names(name, raw, where))


def _table_settings(name: str, raw: Mapping[str, Any], where: _Where) -> tuple[
        str, str, tuple[str, ...], tuple[Column, ...], tuple[str, ...], tuple[str, ...]]:
    """Target, partition column, required columns, columns, key and cluster columns, each a valid identifier."""
    target = str(raw.get("target"))
    try:
        check_table_name(target)
        partition = check_identifier(raw.get("partition", "game_date"), "partition column")
        required = tuple(check_identifier(c, "column name") for c in raw.get("required_columns") or ())
        columns = tuple(Column(c, t) if isinstance(t, str) else Column(c, t["type"], bool(t.get("required")))
                        for c, t in (raw.get("columns") or {}).items())
        key = tuple(check_identifier(c, "column name") for c in raw.get("key") or ())
        cluster = tuple(check_identifier(c, "cluster column") for c in raw.get("cluster") or ())
    except BadInput as exc:
        raise where.fail(name, exc.message) from exc
    unknown = [c for c in cluster if columns and c not in {col.name for col in columns}]
    if unknown or len(cluster) > 4:
        raise where.fail(name, f"cluster: {', '.join(unknown)} not among its columns" if unknown
                         else "cluster: at most 4 columns (BigQuery's limit)")
    return target, partition, required, columns, key, cluster


def _kind_settings(name: str, raw: Mapping[str, Any], base: Path,
                   where: _Where) -> tuple[Path | None, Mapping[str, Any] | None]:
    """Exactly one of `sql:`, `python:`, `http:`; returns the SQL file's path and the http settings."""
    sql = raw.get("sql")
    # A missing SQL file is reported by preflight and fails only this processor's tasks.
    sql_path = _inside(base, sql, where, name) if sql is not None else None
    kinds = [k for k in ("sql", "python", "http") if raw.get(k) is not None]
    if len(kinds) != 1:
        raise where.fail(name, "needs exactly one of `sql: file.sql`, `python: package.module:function` or "
                               f"`http: {{url: ...}}` (got {', '.join(kinds) or 'none'})")
    python = raw.get("python")
    if python is not None and not _is_ref(python):
        raise where.fail(name, f"python: {python!r} must be 'package.module:function'")
    http = raw.get("http")
    if http is not None:
        if not isinstance(http, Mapping) or not str(http.get("url", "")).startswith(("http://", "https://")):
            raise where.fail(name, "http: needs a mapping with `url: http(s)://...` (and optional method, "
                                   "headers, timeout)")
        problem = _http_problem(http)
        if problem:
            raise where.fail(name, f"http: {problem}")
    return sql_path, http


def _depends_on(name: str, raw: Mapping[str, Any], section: Mapping[str, Any], raw_tables: Mapping[str, RawTable],
                where: _Where) -> list[Dependency]:
    deps = []
    for entry in raw.get("depends_on") or ():
        if not isinstance(entry, Mapping) or len({"processor", "table"} & set(entry)) != 1:
            raise where.fail(name, f"depends_on entry {entry!r} needs exactly one of `processor:` or `table:`")
        extra = sorted(set(entry) - {"processor", "table", "window"})
        if extra:
            raise where.fail(name, f"depends_on entry has unknown key(s) {', '.join(extra)}")
        try:
            window = parse_window(entry.get("window", "same_date"))
        except ValueError as exc:
            raise where.fail(name, str(exc)) from exc
        if "processor" in entry:
            src = entry["processor"]
            if src not in section:
                raise where.fail(name, f"depends on unknown processor {src!r}")
            if src == name and window.reads_current:
                raise where.fail(name, "a processor may read its own earlier dates, not the date it writes "
                                       "(drop include_current / same_date on the self-dependency)")
            deps.append(Dependency(src, window, True))
        else:
            src = entry["table"]
            if src not in raw_tables:
                raise where.fail(name, f"depends on unknown table {src!r}; declare it under raw_tables:")
            deps.append(Dependency(src, window, False))
    return deps


def _order(names: list[str], procs: Mapping[str, Processor], where: _Where) -> tuple[str, ...]:
    """Phase, then dependency depth, then the YAML's order; a cycle or an upstream in a later phase fails."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for n in names:
        sorter.add(n, *[d.source for d in procs[n].upstream_processors if d.source != n])
    try:
        order = tuple(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = list(exc.args[1])
        raise where.fail(cycle[0], f"dependency cycle {' -> '.join(cycle)}") from exc
    # Keep the YAML's order among processors of equal depth: readers expect it.
    depth: dict[str, int] = {}
    for n in order:
        depth[n] = max([depth[d.source] + 1 for d in procs[n].upstream_processors if d.source != n] or [0])
    order = tuple(sorted(names, key=lambda n: (procs[n].phase, depth[n], names.index(n))))
    for n in order:
        for d in procs[n].upstream_processors:
            if d.source != n and order.index(d.source) > order.index(n):
                raise where.fail(n, f"depends on {d.source}, which is in a later phase")
    return order


def _refuse_input_target(target: str, raw_tables: Mapping[str, RawTable], run_history: str, where: _Where,
                         name: str) -> None:
    """A backfill replaces its target's partitions: a target that is an input or the run history
    would overwrite what the pipeline reads, or its own record of what it did."""
    if target in raw_tables:
        raise where.fail(name, f"target {target} is a raw input table (raw_tables:); a backfill would overwrite "
                               "its own inputs: write to a table of its own")
    if target == run_history:
        raise where.fail(name, f"target {target} is the run-history table; write to a table of its own")


def _inside(base: Path, relative: Any, where: _Where, name: str) -> Path:
    """A path the spec names, resolved inside the pipeline folder (a spec never reads elsewhere)."""
    if not isinstance(relative, str) or not relative.strip():
        raise where.fail(name, f"sql: must be a file name inside the pipeline folder, got {relative!r}")
    folder = base.resolve()
    # Lexically: `..` may not climb out, while a link placed inside the folder (a file shared with
    # another pipeline) is the folder's own content and is followed when the file is read.
    path = Path(os.path.normpath(folder / relative))
    if not path.is_relative_to(folder):
        raise where.fail(name, f"sql: {relative} points outside the pipeline folder {folder}; keep SQL files "
                               "inside it (e.g. sql/NAME.sql)")
    return path


_RAW_KEYS = ("partition", "game", "team", "key")


def _parse_raw_table(name: str, opts: Any, where: _Where) -> RawTable:
    """One `raw_tables:` entry: its partition, game and team columns, and its key."""
    if not isinstance(opts, Mapping):
        raise where.fail(None, f"raw table {name}: expected a mapping of {', '.join(_RAW_KEYS)}, got {opts!r}")
    extra = sorted(set(opts) - set(_RAW_KEYS))
    if extra:
        raise where.fail(None, f"raw table {name}: unknown setting(s) {', '.join(extra)} "
                               f"(known: {', '.join(sorted(_RAW_KEYS))})")
    key = opts.get("key") or ()
    if isinstance(key, str) or not isinstance(key, (list, tuple)):
        raise where.fail(None, f"raw table {name}: key must be a list of columns, e.g. [game_id, player_id], "
                               f"got {key!r}")
    try:
        check_table_name(name)
        cols = {k: opts.get(k) for k in ("partition", "game", "team")}
        for k, v in cols.items():
            if v is not None:
                check_identifier(v, f"{k} column")
        columns = tuple(check_identifier(c, "key column") for c in key)
    except BadInput as exc:
        raise where.fail(None, f"raw table {name}: {exc.message}") from exc
    return RawTable(name, cols["partition"], cols["game"], cols["team"], columns)


def _parse_phases(raw: Any, where: _Where) -> dict[int, str]:
    """`phases: {3: phase_3_analytics}`: the names the run history's `phase` column gets."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise where.fail(None, f"phases must map a phase number to its name, got {raw!r}")
    out: dict[int, str] = {}
    for k, v in raw.items():
        if isinstance(k, bool) or not isinstance(k, int) or not isinstance(v, str) or not v:
            raise where.fail(None, f"phases: {k!r}: {v!r} must be a phase number and a name, e.g. "
                                   "3: phase_3_analytics")
        out[k] = v
    return out


def _parse_options(raw: Any, where: _Where) -> dict[str, Any]:
    """`backfill_options: {backfill_mode: true, ...}`: plain values sent with every call."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) and k.isidentifier() for k in raw):
        raise where.fail(None, f"backfill_options must be a mapping of identifier: value, got {raw!r}")
    for k, v in raw.items():
        if v is not None and not isinstance(v, (bool, int, float, str)):
            raise where.fail(None, f"backfill_options.{k} must be true/false, a number or text, got {v!r}")
    return dict(raw)


def _http_problem(http: Mapping[str, Any]) -> str | None:
    """What is wrong with an `http:` block, or None (the kind itself checks the rest at call time)."""
    extra = sorted(set(http) - _HTTP_KEYS)
    if extra:
        return f"unknown setting(s) {', '.join(extra)} (known: {', '.join(sorted(_HTTP_KEYS))})"
    env = http.get("headers_from_env") or {}
    if not isinstance(env, Mapping) or not all(isinstance(v, str) and v.isidentifier() for v in env.values()):
        return f"headers_from_env must map a header to an environment variable name, got {env!r}"
    body = http.get("body")
    if body is not None and not isinstance(body, Mapping):
        return f"body must be a mapping (the JSON body template), got {body!r}"
    reply = http.get("reply")
    if reply is not None:
        if not isinstance(reply, Mapping):
            return f"reply must be a mapping of {', '.join(sorted(_REPLY_KEYS))}, got {reply!r}"
        unknown = sorted(set(reply) - _REPLY_KEYS)
        if unknown:
            return f"reply: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(_REPLY_KEYS))})"
    return None


def _history_names(name: str, raw: Mapping[str, Any], where: _Where) -> tuple[str, ...]:
    """`history_names: [PlayerGameSummaryProcessor]`, each a plain identifier."""
    found = raw.get("history_names") or ()
    found = (found,) if isinstance(found, str) else tuple(found)
    try:
        return tuple(check_identifier(h, "history name") for h in found)
    except BadInput as exc:
        raise where.fail(name, f"history_names: {exc.message}") from exc


def _check_history_names(procs: Mapping[str, Processor], where: _Where) -> None:
    """A history name belongs to one processor and is not another processor's own name."""
    claimed: dict[str, str] = {}
    for n, p in procs.items():
        for h in p.history_names:
            if h in procs and h != n:
                raise where.fail(n, f"history_names: {h} is another processor of this pipeline")
            if h in claimed:
                raise where.fail(n, f"history_names: {h} is also claimed by {claimed[h]}")
            claimed[h] = n


def _parse_expect(raw: Any, deps: list[Dependency], columns: tuple[Column, ...], where: _Where,
                  name: str) -> Expect:
    if raw is None:
        return Expect()
    if not isinstance(raw, Mapping):
        raise where.fail(name, f"expect must be a mapping of {', '.join(sorted(_EXPECT_KEYS))}, got {raw!r}")
    unknown = sorted(set(raw) - _EXPECT_KEYS)
    if unknown:
        raise where.fail(name, f"unknown expect setting(s) {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(_EXPECT_KEYS))})")
    per_game = raw.get("rows_per_game")
    if per_game is not None and (isinstance(per_game, bool) or not isinstance(per_game, int) or per_game < 1):
        raise where.fail(name, f"expect.rows_per_game must be a whole number >= 1, got {per_game!r}")
    like = raw.get("rows_like")
    if like is not None and not any(d.source == like and d.window.reads_current for d in deps):
        raise where.fail(name, f"expect.rows_like {like!r} must be an upstream it reads on the same date "
                               "(a depends_on entry with window same_date)")
    team = raw.get("every_team")
    if team is not None:
        try:
            check_identifier(team, "column name")
        except BadInput as exc:
            raise where.fail(name, f"expect.every_team: {exc.message}") from exc
        if columns and team not in {c.name for c in columns}:
            raise where.fail(name, f"expect.every_team names {team!r}, which is not one of its columns")
    return Expect(per_game, like, team)
