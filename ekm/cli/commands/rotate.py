"""``ekm rotate``: what cron runs nightly (``--check``), and rotation itself.

``--check`` reads metadata only, so it needs no master key or passphrase. It prints nothing
and exits 0 when nothing is due; one line per due key on stdout and exit 1 when something is;
keys inside their notify window get a warning line on stderr only.
"""

from __future__ import annotations

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.options import DryRun, Yes, parse_as_of
from ekm.cli.render import emit_json, message, table, warn
from ekm.errors import UsageError


@app.command(rich_help_panel="Keys")
def rotate(
    ctx: typer.Context,
    names: list[str] | None = typer.Argument(
        None,
        metavar="[NAME]...",
        help="Keys to rotate (default: the due ones).",
        autocompletion=complete.key_names,
    ),
    check: bool = typer.Option(
        False, "--check", help="Only report due keys (exit 1 if any); needs no master key."
    ),
    dry_run: DryRun = False,
    force: bool = typer.Option(
        False,
        "--force",
        help="Rotate all (or the named) keys now, due or not; more than one key asks first "
        "(--yes off a terminal).",
    ),
    yes: Yes = False,
    as_of: str | None = typer.Option(
        None, "--as-of", metavar="WHEN", help="Pretend it is WHEN (ISO date/time or +90d)."
    ),
    prepare: bool = typer.Option(
        False, "--prepare", help="Staged: add a pending version (published, unused)."
    ),
    activate: bool = typer.Option(
        False, "--activate", help="Staged: make the pending version primary."
    ),
    complete: bool = typer.Option(
        False, "--complete", help="Staged: retire old versions; no rollback after."
    ),
    rollback: bool = typer.Option(
        False, "--rollback", help="Staged: the previous version is primary again."
    ),
    to_type: str | None = typer.Option(
        None,
        "--to-type",
        metavar="TYPE",
        help="Migrate: the new version uses this algorithm.",
        autocompletion=complete.key_types,
    ),
) -> None:
    """Rotate keys that are due; check for cron; staged zero-downtime rotation.

    Examples: ekm rotate --check (cron) | ekm rotate jwt_signing --prepare
    """
    obj = ctx.obj
    mgr = obj.manager()
    now = parse_as_of(as_of)
    stages = [
        f
        for f, on in (
            ("--prepare", prepare),
            ("--activate", activate),
            ("--complete", complete),
            ("--rollback", rollback),
        )
        if on
    ]
    if len(stages) > 1:
        raise UsageError(f"{' and '.join(stages)} exclude each other")
    if check and (stages or force or dry_run or to_type):
        raise UsageError("--check only reports; it takes no other action flag")
    if check:
        _check(obj, mgr, now)
        return
    if stages:
        if not names:
            raise UsageError(f"{stages[0]} needs the key NAME(s)")
        if force or dry_run:
            raise UsageError(f"{stages[0]} does not combine with --force or --dry-run")
        if to_type and stages[0] != "--prepare":
            raise UsageError("--to-type goes with --prepare (or a one-step rotation)")
        op = stages[0][2:]
        if op == "prepare":
            result = mgr.prepare_rotation(names, to_type=to_type, now=now)
        else:
            result = {
                "activate": mgr.activate_rotation,
                "complete": mgr.complete_rotation,
                "rollback": mgr.rollback_rotation,
            }[op](names, now=now)
        if obj.json:
            emit_json({"stage": op, "keys": list(result)})
            return
        table(
            None,
            ["name", "stage", "primary", "versions"],
            [
                [
                    r["name"],
                    r["stage"] or "done",
                    f"v{r['primary_version']}",
                    " ".join(f"v{v}:{s}" for v, s in r["versions"].items()),
                ]
                for r in result
            ],
        )
        return
    if force and not dry_run and not yes:
        from ekm.cli.confirm import confirm

        mgr.unlock()  # a missing master key or passphrase is reported before any question
        preview = mgr.rotate(names or None, force=True, dry_run=True, to_type=to_type, now=now)
        if len(preview) > 1:
            lines = [
                f"rotate {p['name']} v{p['from_version']} -> v{p['to_version']}" for p in preview
            ]
            confirm(ctx, f"rotate --force of {len(preview)} keys", lines, yes=False, dry_run=False)
    progress = _progress_bar() if not obj.json else None
    try:
        plan = mgr.rotate(
            names or None, force=force, dry_run=dry_run, to_type=to_type, now=now, progress=progress
        )
    finally:
        if progress:
            progress.close()
    if obj.json:
        emit_json(
            {"dry_run": dry_run, "rotated": [] if dry_run else list(plan), "plan": list(plan)}
        )
        return
    if not plan:
        message("nothing to rotate: no key is due")
        return
    if obj.quiet and not dry_run:
        return  # -q: the rotation is in the audit log; cron mails only on trouble
    table(
        "plan (nothing changed)" if dry_run else None,
        ["name", "from", "to", "type", "reason", "backup"],
        [
            [
                p["name"],
                f"v{p['from_version']}",
                f"v{p['to_version']}",
                p["type"],
                p["reason"],
                p["backup"] if isinstance(p["backup"], str) else ("yes" if p["backup"] else ""),
            ]
            for p in plan
        ],
    )
    if not dry_run:
        message(f"rotated {len(plan)} key{'s' if len(plan) != 1 else ''}")


def _check(obj, mgr, now) -> None:
    from ekm.rotation.schedule import describe_delta
    from ekm.timeutil import iso

    result = mgr.rotation_check(now=now)
    if obj.json:
        emit_json(result.to_dict())
    else:
        for d in result.due:
            state = "overdue" if d.overdue else "due"
            print(
                f"{d.name}: rotation {state} since {iso(d.due)} ({describe_delta(d.due, now)}; "
                f"rotate every {d.interval})"
            )
        for d in result.upcoming:
            warn(f"{d.name}: rotation due {describe_delta(d.due, now)} ({iso(d.due)})")
    raise typer.Exit(1 if result.due else 0)


class _Progress:
    """A rich progress bar on a TTY for bulk rotation; nothing when piped."""

    def __init__(self) -> None:
        from rich.progress import Progress

        from ekm.cli.render import _console

        self._p = Progress(console=_console(stderr=True), transient=True)
        self._p.start()
        self._task = None

    def __call__(self, done: int, total: int) -> None:
        if self._task is None:
            self._task = self._p.add_task("rotating", total=total)
        self._p.update(self._task, completed=done)

    def close(self) -> None:
        self._p.stop()


def _progress_bar():
    import sys

    return _Progress() if sys.stderr.isatty() else None
