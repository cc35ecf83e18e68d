"""The registry of command modules: one line per module, so each command group stays in its own file."""

from __future__ import annotations

import importlib

import click

# module name -> attribute names of click commands / groups in it
_MODULES: dict[str, tuple[str, ...]] = {
    "backfill.cli.plan": ("plan",),
    "backfill.cli.data": ("data",),
    "backfill.cli.triggers": ("triggers",),
    "backfill.cli.throttle": ("throttle",),
    "backfill.cli.services": ("worker", "down"),
    "backfill.cli.run": ("enqueue", "status", "runs", "cancel", "retry", "resume"),
    "backfill.cli.pause": ("pause",),
    "backfill.cli.demo": ("demo",),
    "backfill.cli.gaps": ("gaps",),
    "backfill.cli.validate": ("validate",),
    "backfill.cli.digest": ("digest",),
    "backfill.cli.report": ("report",),
    "backfill.cli.sql": ("sql",),
}


def all_commands() -> list[click.Command]:
    out: list[click.Command] = []
    for module, names in _MODULES.items():
        mod = importlib.import_module(module)
        out.extend(getattr(mod, n) for n in names)
    return out
