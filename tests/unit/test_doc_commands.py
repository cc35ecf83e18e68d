"""Every `backfill ...` command line in README.md and docs/*.md is one a user can paste.

A reader copies these lines into bash. An unquoted `phase3->phase4` there is not a typo a
reader notices: bash passes `phase3-` and writes the output to a file named `phase4`. So each
command is split the way bash splits it, must not contain such a redirect, and (unless it is a
synopsis with placeholders) must parse with the CLI's own Click parser, options, types and
trigger names included. Nothing is executed.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from backfill.cli import cli
from backfill.errors import BadInput
from backfill.spec import load_spec
from backfill.triggers import check_trigger_name, known_triggers

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_BLOCK_LINE = re.compile(r"^\s*(?:\$\s+)?((?:[A-Z_]+=\S*\s+)*backfill\s.*)$")
_INLINE = re.compile(r"`((?:[A-Z_]+=\S*\s+)*backfill\s[^`]*)`")
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")
_CONTROL = {";", "&&", "||", "|", "&", ";;"}


@dataclass(frozen=True)
class DocCommand:
    file: str
    line: int
    text: str
    coming: bool = False  # on a line that says the command is **coming** (not built yet)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def doc_commands(paths: list[Path] = DOCS) -> list[DocCommand]:
    """Command lines of code blocks (`$ ` dropped, `\\` continuations joined), and inline `backfill ...` spans."""
    out: list[DocCommand] = []
    for path in paths:
        name = str(path.relative_to(REPO))
        lines = path.read_text().splitlines()
        fenced = False
        i = 0
        while i < len(lines):
            line = lines[i]
            if _FENCE.match(line):
                fenced = not fenced
            elif fenced and (m := _BLOCK_LINE.match(line)):
                text, start = m.group(1), i
                while text.rstrip().endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text = text.rstrip()[:-1] + " " + lines[i].strip()
                out.append(DocCommand(name, start + 1, text.strip()))
            elif not fenced:
                out.extend(DocCommand(name, i + 1, m.group(1).strip(), "**coming**" in line)
                           for m in _INLINE.finditer(line))
            i += 1
    return out


def bash_words(text: str) -> list[str]:
    """Words and operators as bash sees them: quotes removed, `>`/`|`/`;` split off, `# comment` dropped."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    return list(lex)


def unquoted_arrows(words: list[str]) -> list[str]:
    """`x->y` written without quotes: a word ending in `-` followed by a redirect."""
    return [f"{w}{words[i + 1]}" for i, w in enumerate(words[:-1]) if w.endswith("-") and words[i + 1].startswith(">")]


def backfill_argv(words: list[str]) -> list[str]:
    """The arguments of the first command, as bash hands them over.

    Env assignments and `backfill` dropped, cut at `;`, `|`, `&&`; a redirect (`> plan.json`)
    and its target are bash's, not arguments.
    """
    argv: list[str] = []
    redirect = False
    for w in words:
        if w in _CONTROL:
            break
        if w[0] in "<>":
            redirect = True
        elif redirect:
            redirect = False
        else:
            argv.append(w)
    while argv and "=" in argv[0] and argv[0] != "backfill":
        argv.pop(0)
    assert argv and argv[0] == "backfill"
    return argv[1:]


def is_synopsis(text: str) -> bool:
    """A usage line (`status [RUN_ID]`, `cancel|retry|resume RUN_ID`, `gaps ...`) rather than a command."""
    argv = backfill_argv(bash_words(text))
    first = re.split(r"\s(?:;|&&|\|\||\||#)\s", text)[0]
    return (bool(re.search(r"\w\|\w", first))
            or any(_PLACEHOLDER.match(w) or "[" in w or "..." in w or "…" in w for w in argv))


def parse_only(argv: list[str]) -> click.Context:
    """Parse argv down the command tree with Click, as `backfill` would, running no command body.

    With `--help` only the command path is resolved: parsing it for real would print the help.
    """
    helping = "--help" in argv or "-h" in argv
    if helping:
        argv = [a for a in argv if a not in ("--help", "-h")]
    ctx = cli.make_context("backfill", list(argv), resilient_parsing=helping)
    command: click.Command = cli
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=helping)
        command = sub
    return ctx


COMMANDS = doc_commands()


def test_the_docs_have_commands_to_check() -> None:
    # Guards the extraction: if it silently matched nothing, every test below would pass.
    texts = [c.text for c in COMMANDS]
    assert len(COMMANDS) > 60
    assert any(t.startswith("backfill triggers pause") for t in texts)
    assert any(t.startswith("backfill enqueue --range") and "--phases" in t for t in texts), "continuations joined"
    assert sum(1 for c in COMMANDS if c.file == "README.md") >= 10


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
    assert name not in cli.commands, f"{command}: `{name}` exists now; update the docs"


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
