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


def message(text: str) -> None:
    """A message for the operator: stderr, so stdout stays parseable."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def warn(text: str) -> None:
    message(f"ekm: warning: {text}")


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


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    styles: dict[str, str] | None = None,
) -> None:
    """Print a table (rich on a terminal; plain aligned text when piped)."""
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

    t = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for col in columns:
        t.add_column(col, style=(styles or {}).get(col))
    for r in rows:
        t.add_row(*r)
    _console().print(t)


def kv(title: str | None, pairs: Iterable[tuple[str, Any]]) -> None:
    """Print ``key: value`` lines."""
    pairs = [(k, "" if v is None else str(v)) for k, v in pairs]
    if title:
        sys.stdout.write(title + "\n")
    width = max((len(k) for k, _ in pairs), default=0)
    for k, v in pairs:
        sys.stdout.write(f"  {k.ljust(width)}  {v}\n")
