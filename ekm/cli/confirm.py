"""Destructive operations: show the plan, ask on a terminal, require ``--yes`` off one.

``keys destroy``, ``keys purge``, ``backup restore``, ``apikey revoke`` and ``rotate --force``
of several keys change things that cannot be taken back (or break every client at once). Each
builds a plan (lines a person reads) and calls :func:`confirm`:

* ``-n/--dry-run``: print the plan (``--json``: ``{"dry_run": true, "plan": [...]}``), exit 0;
* ``-y/--yes``: go ahead;
* on a terminal (stdin and stderr are TTYs): print the plan on stderr and ask; anything but
  ``y``/``yes`` changes nothing and exits 1;
* otherwise (cron, CI, a pipe): refuse with one line and exit 2, changing nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer

from ekm.errors import UsageError


def on_terminal() -> bool:
    """A person can answer: stdin and stderr are both terminals."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def confirm(
    ctx: typer.Context,
    what: str,
    plan: Sequence[str],
    *,
    yes: bool,
    dry_run: bool,
    details: list[dict[str, Any]] | None = None,
    note: str | None = None,
) -> None:
    """Return when the operation may go ahead; otherwise end the command (see module doc).

    ``what`` names the command (``keys destroy``) for the refusal message; ``details`` is the
    plan as JSON objects for ``--dry-run --json``; ``note`` a line shown after the plan.
    """
    if dry_run:
        if ctx.obj.json:
            from ekm.cli.render import emit_json

            emit_json({"dry_run": True, "plan": details if details is not None else list(plan)})
        else:
            sys.stdout.write("".join(f"would {line}\n" for line in plan) or "nothing to do\n")
            if plan and note:
                sys.stdout.write(f"{note}\n")
            sys.stderr.write("ekm: dry run: nothing was changed\n")
        raise typer.Exit(0)
    if yes or not plan:
        return
    if not on_terminal():
        raise UsageError(
            f"{what} is destructive: pass --yes to confirm (no terminal to ask on), "
            "or --dry-run to see the plan"
        )
    sys.stderr.write("".join(f"  {line}\n" for line in plan))
    if note:
        sys.stderr.write(f"{note}\n")
    sys.stderr.write("Proceed? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        sys.stderr.write("ekm: nothing was changed\n")
        raise typer.Exit(1)
