"""Every `backfill ...` command line in README.md and docs/*.md is one a user can paste.

A reader copies these lines into bash. An unquoted `phase3->phase4` there is not a typo a
reader notices: bash passes `phase3-` and writes the output to a file named `phase4`. So each
command is split the way bash splits it, must not contain such a redirect, and (unless it is a
synopsis with placeholders) must parse with the CLI's own Click parser, options, types and
trigger names included. Nothing is executed.
"""

from __future__ import annotations

import click
import pytest

from backfill.cli import cli
from backfill.errors import BadInput
from backfill.spec import load_spec
from backfill.triggers import check_trigger_name, known_triggers
from tests.doc_commands import (
    REPO,
    DocCommand,
    backfill_argv,
    bash_words,
    doc_commands,
    is_synopsis,
    parse_only,
    unquoted_arrows,
)

COMMANDS = doc_commands()


def test_the_docs_have_commands_to_check() -> None:
    # Guards the extraction: if it silently matched nothing, every test below would pass.
    texts = [c.text for c in COMMANDS]
    assert len(COMMANDS) > 60
    assert any(t.startswith("backfill triggers pause") for t in texts)
    assert any(t.startswith("backfill enqueue --range") and "--phases" in t for t in texts), "continuations joined"
    assert sum(1 for c in COMMANDS if c.file == "README.md") >= 10
    assert any(c.file == "docs/monitoring.md" and t.startswith("backfill enqueue") for c, t in zip(COMMANDS, texts)), \
        "the command inside RUN=$(backfill ...)"


def test_the_checks_catch_what_bash_would_break() -> None:
    # Guards the checks themselves, on lines the docs once had.
    words = bash_words("backfill triggers pause phase3->phase4 --ttl 7200")
    assert unquoted_arrows(words) == ["phase3->"]
    assert backfill_argv(words) == ["triggers", "pause", "phase3-", "--ttl", "7200"]
    with pytest.raises(BadInput, match="unknown trigger 'phase3-'"):
        check_trigger_name("phase3-", ["phase3->phase4"], "nba")
    quoted = bash_words("backfill triggers pause 'phase3->phase4'")
    assert unquoted_arrows(quoted) == []
    assert backfill_argv(quoted) == ["triggers", "pause", "phase3->phase4"]
    with pytest.raises(click.UsageError):
        parse_only(["plan", "--no-such-flag"])
    with pytest.raises(click.UsageError):
        parse_only(["no-such-command"])
    with pytest.raises(click.BadParameter):
        parse_only(["triggers", "pause", "phase3->phase4", "--ttl", "0"])


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_no_doc_command_has_an_unquoted_arrow(command: DocCommand) -> None:
    assert not unquoted_arrows(bash_words(command.text)), f"{command}: quote the trigger name"


CONCRETE = [c for c in COMMANDS if not c.coming and not is_synopsis(c.text)]


def test_most_doc_commands_are_concrete_enough_to_parse() -> None:
    assert len(CONCRETE) > len(COMMANDS) // 2
    assert not is_synopsis("backfill data import-nba ../shared/data/nba   # ... or the real CSVs")
    assert is_synopsis("backfill cancel|retry|resume RUN_ID") and is_synopsis("backfill status [RUN_ID]")


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.coming], ids=str)
def test_a_command_the_docs_call_coming_does_not_exist_yet(command: DocCommand) -> None:
    # Once it is built, the docs must describe it instead of calling it coming.
    name = backfill_argv(bash_words(command.text))[0]
    assert name not in cli.list_commands(click.Context(cli)), f"{command}: `{name}` exists now; update the docs"


@pytest.mark.parametrize("command", CONCRETE, ids=str)
def test_doc_command_parses_with_the_cli(command: DocCommand) -> None:
    argv = backfill_argv(bash_words(command.text))
    try:
        ctx = parse_only(argv)
    except click.MissingParameter as exc:
        # Prose naming a command ("unless you `backfill resume` the run"): the path must exist.
        assert exc.ctx is not None and exc.ctx.command_path.split()[1:] == argv, f"{command}: {exc.format_message()}"
        return
    except click.ClickException as exc:
        pytest.fail(f"{command}\n  does not parse: {exc.format_message()}")
    if ctx.command_path.endswith(("triggers pause", "triggers resume")):
        spec = load_spec(REPO / (ctx.params.get("pipeline") or "pipelines/nba"))
        check_trigger_name(ctx.params["name"], known_triggers(spec), spec.name)
