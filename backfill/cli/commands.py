"""The registry of command modules: one line per module, so each command group stays in its own file.

Commands load lazily: `backfill status` imports `backfill.cli.run` and nothing of `plan`, `validate`
or `demo`; `backfill --help` (and `list_commands`) still lists every command, importing each to
read its help line. An attribute's name is its command's name.
"""

from __future__ import annotations

import importlib

import click

# module name -> attribute names of click commands / groups in it (each named as its command)
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

# command name -> its module
_WHERE: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}


def command_names() -> list[str]:
    """Every command's name, sorted, without importing any command module."""
    return sorted(_WHERE)


def load_command(name: str) -> click.Command | None:
    """The command `name`, importing only its module; None for a name that is no command."""
    module = _WHERE.get(name)
    if module is None:
        return None
    command = getattr(importlib.import_module(module), name)
    assert isinstance(command, click.Command) and command.name == name, f"{module}.{name} is not the command {name}"
    return command


def all_commands() -> list[click.Command]:
    """Every command (imports every command module)."""
    return [c for c in (load_command(n) for n in command_names()) if c is not None]
