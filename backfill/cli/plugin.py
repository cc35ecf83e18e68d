"""What a pipeline adds to the command line: its own `backfill data` commands and the demo's data.

A pipeline names its plugin in pipeline.yaml (`plugin: package.module:function`); the function
returns a `PipelinePlugin`. The library never imports a pipeline: the reference pipeline's sample
league and CSV importer reach `backfill data` and `backfill demo` this way, and a pipeline of your
own can bring its loaders the same way (docs/architecture.md, layers).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click
from rich.table import Table

from backfill.errors import SpecError
from backfill.processors.base import load_ref
from backfill.spec import PipelineSpec
from backfill.warehouse import Warehouse


@dataclass(frozen=True)
class Demo:
    """`backfill demo`: a short run (`start`..`end`, these phases) on data the pipeline makes up.

    `load(warehouse, season)` fills the raw tables for `season` when the warehouse has no schedule.
    `data_name` and `scope` are the words the demo prints about the data and what it enqueued.
    """

    start: dt.date
    end: dt.date
    phases: frozenset[int]
    season: str
    load: Callable[[Warehouse, str], object]
    data_name: str = "the demo data"
    scope: str = "the demo range and the upstream partitions its windows read"


@dataclass(frozen=True)
class PipelinePlugin:
    """What one pipeline adds: subcommands of `backfill data`, and the demo (None: `demo` has none)."""

    data_commands: tuple[click.Command, ...] = ()
    demo: Demo | None = None

    def data_command(self, name: str) -> click.Command | None:
        return next((c for c in self.data_commands if c.name == name), None)


def plugin_of(spec: PipelineSpec) -> PipelinePlugin:
    """The plugin `spec` names, loaded; a pipeline that names none adds nothing."""
    if spec.plugin is None:
        return PipelinePlugin()
    factory = load_ref(spec.plugin, "pipeline plugin", SpecError, str(spec.path))
    plugin = factory()
    if not isinstance(plugin, PipelinePlugin):
        raise SpecError(f"pipeline plugin {spec.plugin!r} returned {type(plugin).__name__}, not a PipelinePlugin",
                        hint="return backfill.cli.plugin.PipelinePlugin(...) from it")
    return plugin


def rows_table(title: str, rows: Mapping[str, int], per_season: Mapping[str, Mapping[str, int]]) -> Table:
    """Rows loaded per table, with a column per season: what a data command prints."""
    seasons = sorted({s for counts in per_season.values() for s in counts})
    table = Table(title=title)
    table.add_column("table", no_wrap=True)
    table.add_column("rows", justify="right")
    for s in seasons:
        table.add_column(s, justify="right")
    for name, n in rows.items():
        table.add_row(name, f"{n:,}", *[f"{per_season.get(name, {}).get(s, 0):,}" if name in per_season else ""
                                        for s in seasons])
    return table


def emit_json(payload: Mapping[str, Any]) -> None:
    """A data command's `--json` output: one stable, sorted object."""
    click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
