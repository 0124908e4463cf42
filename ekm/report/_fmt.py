"""Text shared by every rendering, so HTML, PDF and Markdown say the same thing the same way."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ekm.report.model import SEVERITIES, FindingRow, KeyRow, ReportData, RuleSetSummary
from ekm.timeutil import iso

TITLE = "ekm security report"
DASH = "-"


def when(value: datetime | None) -> str:
    """ISO 8601 UTC, or a dash for 'never / not scheduled'."""
    return iso(value) if value is not None else DASH


def opt(value: object) -> str:
    return DASH if value is None else str(value)


def days(value: float | None) -> str:
    return DASH if value is None else f"{value:g}d" if value == int(value) else f"{value:.1f}d"


def period(data: ReportData) -> str:
    return f"{iso(data.period_start)} to {iso(data.period_end)} (UTC)"


def severities(counts: Mapping[str, int]) -> str:
    """'2 critical, 1 high' in severity order; 'none' when every count is zero."""
    parts = [f"{counts[s]} {s}" for s in SEVERITIES if counts.get(s)]
    parts += [f"{n} {s}" for s, n in sorted(counts.items()) if s not in SEVERITIES and n]
    return ", ".join(parts) or "none"


def ruleset_status(c: RuleSetSummary) -> str:
    """'pass' or 'N findings (…)', with rules passed of evaluated."""
    detail = f"{plural(c.findings, 'finding')} ({severities(c.findings_by_severity)})"
    head = detail if c.findings else "pass"
    return f"{head}; {c.passed}/{c.evaluated} rules passed"


def chain(data: ReportData) -> str:
    log = data.audit_log
    if log.chain_ok:
        return f"intact ({log.records} records)"
    where = f" at {log.first_bad}" if log.first_bad else ""
    return f"BROKEN{where} ({log.records} records); run `ekm audit --verify-log`"


def since(data: ReportData) -> str:
    """A sentence fragment, already capitalised (a timestamp must never be case-mangled)."""
    c = data.changes
    return f"Since the previous report of {iso(c.since)}" if c.since else "No previous report"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def ruleset_detail(c: RuleSetSummary) -> str:
    """'pass' or the severities, then rules passed of evaluated (beside a findings count)."""
    head = severities(c.findings_by_severity) if c.findings else "pass"
    return f"{head}; {c.passed}/{c.evaluated} rules passed"


#: Column headings of the key and finding tables (every format shows the same columns).
KEY_HEAD = (
    "key",
    "type",
    "usage",
    "backend",
    "versions (state)",
    "primary",
    "count",
    "age",
    "rotate every",
    "next rotation",
    "due",
)
FINDING_HEAD = (
    "rule set",
    "rule",
    "key",
    "version",
    "severity",
    "finding",
    "requirement",
    "citation",
)


def key_cells(k: KeyRow) -> list[object]:
    """One key row as plain cells (Markdown and PDF tables; HTML adds classes)."""
    return [
        k.name,
        k.type,
        k.usage,
        k.backend,
        k.state_summary,
        opt(k.primary_version),
        k.versions,
        days(k.age_days),
        days(k.rotate_every_days),
        when(k.next_rotation),
        k.dueness,
    ]


def finding_cells(x: FindingRow) -> list[object]:
    """One finding row as plain cells, in FINDING_HEAD order."""
    return [
        x.rule_set,
        x.rule,
        opt(x.key),
        opt(x.version),
        x.severity,
        x.message,
        x.required,
        x.cite,
    ]
