"""Output: rich tables on a terminal, one JSON document with ``--json``, messages on stderr.

Colour and escape codes only on a TTY and never when ``NO_COLOR`` is set; rich is imported
only when a table is actually drawn.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def emit_json(doc: Any) -> None:
    """Write one JSON document to stdout (objects indented, list items one line each)."""
    from ekm.jsonout import dumps

    data = dumps(json.loads(json.dumps(doc, default=str)))
    sys.stdout.buffer.write(data if data.endswith(b"\n") else data + b"\n")
    sys.stdout.flush()


_quiet = False


def set_quiet(value: bool) -> None:
    """``-q/--quiet``: :func:`message` prints nothing; warnings and errors still do."""
    global _quiet
    _quiet = value


def message(text: str) -> None:
    """A message for the operator: stderr, so stdout stays parseable. Silent under ``-q``."""
    if _quiet:
        return
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def success(text: str) -> None:
    """A success line for commands cron runs: shown only to a person (stdout is a terminal).

    ``monitor --once``, ``audit --verify-log`` and ``report`` print nothing when all is well and
    nobody is watching, as ``rotate --check`` always did, so cron mails only on trouble.
    """
    if sys.stdout.isatty():
        message(text)


def warn(text: str) -> None:
    sys.stderr.write(f"ekm: warning: {text}\n")
    sys.stderr.flush()


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    no_color = bool(os.environ.get("NO_COLOR"))
    stream = sys.stderr if stderr else sys.stdout
    return Console(
        file=stream,
        no_color=no_color,
        highlight=False,
        force_terminal=None if not no_color else False,
        emoji=False,
        soft_wrap=not stream.isatty(),
    )


# Columns that identify a row: never cut, never dropped (CLI.md: tables that fit).
IDENTIFYING = frozenset(
    {"name", "key", "version", "primary", "rule", "id", "check", "subject", "from", "to",
     "path", "file"}
)  # fmt: skip
GAP = 2  # spaces between two columns


def fit_columns(
    columns: Sequence[str], rows: Sequence[Sequence[str]], width: int, *, min_lesser: int = 10
) -> tuple[list[int], list[str], int]:
    """Which columns to show at ``width``: (kept indexes, dropped names, width needed).

    Identifying columns are kept whole; the others (types, dates, messages) may wrap down to
    ``min_lesser`` characters, and are dropped from the right while even that does not fit.
    """

    def natural(i: int) -> int:
        return max([len(columns[i]), *(len(r[i]) for r in rows)])

    keep = list(range(len(columns)))

    def needed(indexes: list[int]) -> int:
        total = sum(
            natural(i) if columns[i] in IDENTIFYING else min(natural(i), min_lesser)
            for i in indexes
        )
        return total + GAP * max(0, len(indexes) - 1)

    dropped: list[str] = []
    while needed(keep) > width:
        lesser = [i for i in keep if columns[i] not in IDENTIFYING]
        if not lesser:
            break  # only identifying columns are left: they are shown whole, wider than asked
        keep.remove(lesser[-1])
        dropped.insert(0, columns[lesser[-1]])
    return keep, dropped, needed(keep)


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    styles: dict[str, str] | None = None,
) -> None:
    """Print a table (rich on a terminal; plain aligned text when piped).

    Piped, every cell is printed whole. On a terminal the table fits the width: identifying
    columns (names, versions, rule ids) are never cut; lesser ones wrap, and at a narrow width
    the rightmost lesser columns are left out, with a note on stderr saying which.
    """
    rows = [["" if c is None else str(c) for c in r] for r in rows]
    if not sys.stdout.isatty():
        widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(columns)]
        if title:
            sys.stdout.write(title + "\n")
        sys.stdout.write(
            "  ".join(h.upper().ljust(w) for h, w in zip(columns, widths, strict=True)).rstrip()
            + "\n"
        )
        for r in rows:
            sys.stdout.write(
                "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n"
            )
        return
    from rich.table import Table

    console = _console()
    keep, dropped, needed = fit_columns(columns, rows, console.width)
    t = Table(title=title, header_style="bold", box=None, pad_edge=False, collapse_padding=True)
    for i in keep:
        col = columns[i]
        if col in IDENTIFYING:
            whole = max([len(col), *(len(r[i]) for r in rows)])
            t.add_column(col, style=(styles or {}).get(col), no_wrap=True, min_width=whole)
        else:
            t.add_column(col, style=(styles or {}).get(col), overflow="fold")
    for r in rows:
        t.add_row(*(r[i] for i in keep))
    # Identifying columns alone wider than the terminal: let the lines run on, never cut them.
    console.print(t, width=max(console.width, needed), crop=False)
    if dropped:
        message(
            f"(not shown at {console.width} columns: {', '.join(dropped)}; widen the terminal "
            "or use --json)"
        )


def kv(title: str | None, pairs: Iterable[tuple[str, Any]]) -> None:
    """Print ``key: value`` lines."""
    pairs = [(k, "" if v is None else str(v)) for k, v in pairs]
    if title:
        sys.stdout.write(title + "\n")
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        sys.stdout.write(f"  {k.ljust(width)}  {v}\n")
