"""Find the ``ekm ...`` invocations a README shows (sh and yaml code blocks).

Kept apart from the tests so the parsing itself is tested on small inputs.
"""

from __future__ import annotations

import re
import shlex

_FENCE = re.compile(r"^```(\w*)\s*$")
#: tokens after which ``ekm`` stands in command position (cron fields, shell operators, CI keys)
_COMMAND_POSITION = re.compile(
    r"^(\*|[0-9*/,-]+|-|run:|script:|sudo|exec|then|do|!|\$\(|\(|;|&&|\|\||\|)$|^[A-Z_]+="
)
_SPLIT = re.compile(r"(;|&&|\|\||\||\$\()")
GLOBAL_VALUED = {"--home", "--config"}
GLOBAL_FLAGS = {"--json", "--debug", "--quiet", "-q"}


def code_lines(text: str, languages: tuple[str, ...] = ("sh", "yaml")) -> list[str]:
    """Lines inside fenced blocks of the given languages."""
    out, lang = [], None
    for line in text.splitlines():
        m = _FENCE.match(line.strip())
        if m:
            lang = None if lang is not None else m.group(1)
            continue
        if lang in languages:
            out.append(line)
    return out


def invocations(lines: list[str]) -> list[list[str]]:
    """Each ``ekm`` invocation as the tokens after ``ekm`` (comments and redirections dropped)."""
    found = []
    for line in lines:
        line = line.split(" #", 1)[0]
        spaced = _SPLIT.sub(r" \1 ", line)
        try:
            tokens = shlex.split(spaced, comments=False)
        except ValueError:
            tokens = spaced.split()
        for i, tok in enumerate(tokens):
            if tok != "ekm" or not (i == 0 or _COMMAND_POSITION.match(tokens[i - 1])):
                continue
            args = []
            for t in tokens[i + 1 :]:
                if t in (";", "&&", "||", "|", "$(", ")") or t.startswith((">", "<", "2>")):
                    break
                args.append(t)
            found.append(args)
    return found


def split_invocation(args: list[str], groups: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """(command path, long options) of one invocation; global options are skipped.

    ``groups`` maps a command path (space-joined, "" for the root) to its subcommand names.
    """
    path: list[str] = []
    options: list[str] = []
    it = iter(args)
    for tok in it:
        name = tok.split("=", 1)[0]
        if name in GLOBAL_VALUED:
            if "=" not in tok:
                next(it, None)
            continue
        if name in GLOBAL_FLAGS:
            continue
        if tok.startswith("--"):
            options.append(name)
        elif not tok.startswith("-") and tok in groups.get(" ".join(path), set()):
            path.append(tok)
    return path, options


_SPAN = re.compile(r"`(ekm [^`]+)`")


def inline_invocations(text: str) -> list[list[str]]:
    """``ekm ...`` in inline code spans (the command table, the migration table)."""
    return invocations([m.group(1) for m in _SPAN.finditer(text)])
