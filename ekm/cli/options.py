"""One vocabulary: the options several commands share, declared once, and their parsing.

A flag means the same thing in every command (CLI.md, "One vocabulary"): ``-o/--output``,
``-k/--key``, ``-q/--quiet``, ``-y/--yes``, ``-n/--dry-run``. Commands use these ``Annotated``
aliases instead of spelling the option again, so help texts and short flags cannot drift.
Old spellings that scripts may use (``--out``, ``-v`` for ``--version``) stay as hidden options.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from ekm.errors import UsageError

Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FILE",
        help="Write here (- for stdout; devices and FIFOs are written in place).",
    ),
]
OutAlias = Annotated[
    str | None,
    typer.Option("--out", hidden=True, metavar="FILE", help="Deprecated: use -o/--output."),
]
Quiet = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print nothing on success (problems still go to stderr)."),
]
Yes = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do it without asking (required when not on a terminal)."),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", "-n", help="Show what would be done; change nothing.")
]
OldVersionFlag = Annotated[
    int | None,
    typer.Option("-v", hidden=True, metavar="N", help="Deprecated: use --version N."),
]


def pick_output(output: str | None, out: str | None) -> str | None:
    """``-o/--output`` or its deprecated spelling ``--out``; both at once is a usage error."""
    if output is not None and out is not None and output != out:
        raise UsageError("--out is the old spelling of --output; give only one of them")
    return output if output is not None else out


def pick_version(version: int | None, old: int | None) -> int:
    """``--version N`` or the old ``-v N``; one is required."""
    if version is not None and old is not None and version != old:
        raise UsageError("-v is the old spelling of --version; give only one of them")
    value = version if version is not None else old
    if value is None:
        raise UsageError("give the version: --version N")
    return value


def parse_as_of(value: str | None, flag: str = "--as-of") -> datetime:
    """``--as-of WHEN`` (ISO date/time or ``+90d``) as a UTC instant; now when absent."""
    from ekm.timeutil import parse_when, utcnow

    if not value:
        return utcnow()
    try:
        return parse_when(value)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None
