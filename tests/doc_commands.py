"""The `backfill ...` command lines of README.md and docs/*.md, split the way bash splits them.

Readers paste these lines into bash, so tests check them as bash would see them: the unit
test parses each with the CLI's Click parser, the trigger test runs the execution guide's.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click

from backfill.cli import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_BLOCK_LINE = re.compile(r"^\s*(?:\$\s+)?((?:[A-Z_]+=\S*\s+)*backfill\s.*)$")
# `RUN=$(backfill enqueue ...)`: the command inside the substitution is what bash runs.
_CAPTURED = re.compile(r"^\s*(?:\$\s+)?[A-Z_]+=\$\((backfill\s[^)]*)\)(.*)$")
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
            elif fenced and (m := _CAPTURED.match(line) or _BLOCK_LINE.match(line)):
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
