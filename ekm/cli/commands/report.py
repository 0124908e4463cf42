"""``ekm report``: one security report (HTML, PDF, Markdown or JSON) for people and auditors.

The document goes to stdout or, atomically and 0600, to ``--output FILE`` (an existing file is
replaced, as ``ekm audit --output`` does: a report is regenerated, not appended to). PDF is
binary, so it is refused on a terminal without ``--output``. A one-line summary goes to stderr.
The exit code is 0 whenever a report was produced, findings or not: ``ekm audit`` is the gate
for CI, this is the document.
"""

from __future__ import annotations

import sys
from datetime import datetime

import typer

from ekm.cli import complete
from ekm.cli.app import app
from ekm.cli.options import parse_as_of
from ekm.cli.render import message, success, warn
from ekm.errors import UsageError

FORMATS = ("html", "pdf", "markdown", "json")


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    return parse_as_of(value, "--since")


def _format(value: str | None, json_flag: bool) -> str:
    fmt = (value or ("json" if json_flag else "html")).strip().lower()
    if fmt == "md":
        fmt = "markdown"
    if fmt not in FORMATS:
        raise UsageError(f"--format {value!r}: expected one of {', '.join(FORMATS)}")
    if json_flag and fmt != "json":
        raise UsageError(f"--json and --format {fmt} contradict each other; pick one")
    return fmt


def _summary(data: object) -> str:
    t = data.totals()  # type: ignore[attr-defined]
    log = data.audit_log  # type: ignore[attr-defined]
    chain = "intact" if log.chain_ok else "BROKEN"
    return (
        f"ekm: report: {t.keys} keys, {t.findings} findings, {t.due_within_30d} overdue or due "
        f"within 30 days, {t.alerts} alerts, audit log {chain} ({log.records} records)"
    )


@app.command(rich_help_panel="Compliance")
def report(
    ctx: typer.Context,
    fmt: str | None = typer.Option(
        None,
        "--format",
        metavar="FORMAT",
        help="html (default), pdf, markdown or json.",
        autocompletion=complete.report_formats,
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        "-o",
        metavar="FILE",
        help="Write the report here (a file: atomic, 0600; devices and FIFOs in place).",
    ),
    compliance: str = typer.Option(
        "all",
        "--compliance",
        metavar="ID[,ID...]|all",
        help="Rule sets to report on (see `ekm audit --list`).",
        autocompletion=complete.rule_sets,
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="WHEN",
        help="Start of the period (ISO date or -30d); default: the last report.",
    ),
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        metavar="WHEN",
        help="The report's instant (ISO date or +90d); a preview, not kept as the baseline.",
    ),
) -> None:
    """Write a security report: summary, compliance, due keys, audit log, alerts, changes.

    Example: ekm report --format pdf --compliance pci-dss,nist-800-57 --output report.pdf
    """
    obj = ctx.obj
    kind = _format(fmt, obj.json)
    start = _since(since)
    when = parse_as_of(as_of) if as_of else None
    if output:
        from ekm.cli.outputs import check_target

        check_target(output)
    if kind == "pdf" and not output and sys.stdout.isatty():
        raise UsageError("a PDF is binary: pass --output FILE, or redirect stdout to a file")
    data = obj.manager().security_report(since=start, as_of=when, compliance=compliance)
    from ekm.report import render

    body = render(data, kind)
    if output:
        from ekm.cli.outputs import write_output

        write_output(output, body)
    else:
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    if not data.audit_log.chain_ok:
        warn(f"the audit log chain is broken ({data.audit_log.first_bad}); see the report")
    summary = _summary(data) + (f"; wrote the {kind} report to {output}" if output else "")
    if data.audit_log.chain_ok:
        success(summary)  # a monthly cron job mails only on trouble
    else:
        message(summary)
