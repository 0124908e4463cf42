"""The report as Markdown (GitHub-flavoured tables), for a pull request, wiki or ticket.

Markdown renderers pass raw HTML through, so every value from the model is escaped: a key
named ``<img src=x onerror=...>`` or ``a|b`` must stay text and must not break a table. Charts
become their numbers (the same aggregates the HTML and PDF charts draw).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date

from ekm.report import _fmt as f
from ekm.report import chartdata as cd
from ekm.report import digest as dg
from ekm.report._fmt import FINDING_HEAD, KEY_HEAD
from ekm.report.model import FindingRow, ReportData

# CommonMark lets any ASCII punctuation be backslash-escaped; these are the ones that can start
# markup inside a table cell. "_" is escaped only at a word boundary: inside a word
# (database_encryption) it cannot open emphasis, and escaping it there hurts readability.
_SPECIAL = re.compile(r"([\\`*\[\]<>|~&!#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _e(value: object) -> str:
    text = " ".join(str(value).split())  # newlines would end the table row
    return _SPECIAL.sub(r"\\\1", text) if text else f.DASH


def _table(head: Sequence[str], rows: Iterable[Sequence[object]], empty: str) -> str:
    lines = ["| " + " | ".join(_e(c) for c in row) + " |" for row in rows]
    if not lines:
        return f"_{empty}_\n"
    top = "| " + " | ".join(head) + " |\n|" + "|".join("---" for _ in head) + "|\n"
    return top + "\n".join(lines) + "\n"


GROUP_HEAD = (
    "rule set",
    "rule",
    "severity",
    "findings",
    "keys",
    "example keys",
    "requirement",
    "citation",
)


def _group(g: dg.FindingGroup) -> list[object]:
    return [
        g.rule_set,
        g.rule,
        g.severity,
        g.findings,
        g.keys,
        ", ".join(g.examples),
        g.required,
        g.cite,
    ]


def _bounded(rows: list[FindingRow], empty: str) -> str:
    """At most LIST_LIMIT findings, then the sentence saying what is left out and where."""
    shown, more = dg.first_by_severity(rows)
    table = _table(FINDING_HEAD, map(f.finding_cells, shown), empty)
    # the sentence is ours (numbers and a command in backticks): not escaped
    return table if not more else f"{table}\n{dg.more_findings(len(shown), more)}\n"


def _findings(data: ReportData, total: int) -> list[str]:
    groups = dg.group_findings(data.findings)
    return [
        f"## Findings ({total})\n",
        f"### By rule ({f.plural(len(groups), 'rule')})\n",
        _table(GROUP_HEAD, map(_group, groups), "No findings."),
        "### Individual findings\n",
        _bounded(data.findings, "No findings."),
    ]


def _alerts(data: ReportData, total: int) -> list[str]:
    shown, more = dg.latest_alerts(data.alerts)
    table = _table(
        ("time", "severity", "check", "subject", "message"),
        ([f.when(a.time), a.severity, a.check, a.subject, a.message] for a in shown),
        "No alerts in the period.",
    )
    if more:
        table += f"\n{dg.more_alerts(len(shown), more)}\n"
    return [f"## Monitor alerts in the period ({total})\n", table]


def _summary(data: ReportData) -> list[str]:
    t = data.totals()
    due = t.keys_by_dueness
    types = ", ".join(f"{_e(k)}: {n}" for k, n in t.keys_by_type.items()) or "none"
    backends = ", ".join(f"{_e(k)}: {n}" for k, n in t.keys_by_backend.items()) or "none"
    out = [
        "## Summary\n",
        f"- **Keys:** {t.keys} (by type: {types}; by backend: {backends})",
        f"- **Rotation:** {due['overdue']} overdue, {due['soon']} in the notify window, "
        f"{t.due_within_30d} overdue or due within 30 days, {due['none']} without a policy",
        f"- **Findings:** {t.findings} ({_e(f.severities(t.findings_by_severity))})",
    ]
    out += [f"  - {_e(c.id)} ({_e(c.title)}): {_e(f.ruleset_status(c))}" for c in data.compliance]
    out += [
        f"- **Audit log:** chain {_e(f.chain(data))}; {t.rotations} rotations, "
        f"{t.failures} failed operations, {t.other_operations} other operations in the period",
        f"- **Monitor alerts:** {t.alerts} ({_e(f.severities(t.alerts_by_severity))})",
        "",
    ]
    return out


def _charts_as_tables(data: ReportData) -> list[str]:
    hist = cd.age_histogram(data.keys)
    rows = [
        [b.label, *(b.counts[d] for d in ("ok", "soon", "overdue", "none")), b.total] for b in hist
    ]
    cal = cd.calendar(data.keys, data.period_end, 90)
    weeks = []
    for w in range(0, 90, 7):
        n = sum(cal.per_day[w : w + 7])
        first = cal.start.toordinal() + w
        weeks.append([date.fromordinal(first).isoformat(), n])
    return [
        "## Key age against rotation interval\n",
        _table(
            ("age / interval", "ok", "notify window", "overdue", "no policy", "keys"),
            rows,
            "No keys.",
        ),
        "## Rotations due in the next 90 days\n",
        f"{cal.overdue} overdue now; by week from {cal.start.isoformat()}:\n",
        _table(("week from", "rotations due"), weeks, "None."),
    ]


def render_markdown(data: ReportData) -> str:
    """The whole report as Markdown (validated first; raises InvalidError)."""
    data.validate()
    t = data.totals()
    c = data.changes
    out = [
        f"# {f.TITLE}\n",
        f"Period {_e(f.period(data))}; generated {_e(f.when(data.generated_at))}; "
        f"ekm {_e(data.ekm_version)}.\n",
        *_summary(data),
        f"## Keys overdue or due within 30 days ({t.due_within_30d})\n",
        _table(KEY_HEAD, map(f.key_cells, data.due_keys()), "No key is due within 30 days."),
        *_findings(data, t.findings),
        "## Compliance by rule set\n",
        _table(
            ("rule set", "title", "findings", "by severity", "rules passed"),
            (
                [
                    r.id,
                    r.title,
                    r.findings,
                    f.severities(r.findings_by_severity),
                    f"{r.passed}/{r.evaluated}",
                ]
                for r in data.compliance
            ),
            "No rule set evaluated.",
        ),
        *_charts_as_tables(data),
        "## Activity by day\n",
        _table(
            ("date (UTC)", "rotations", "failures", "other"),
            (
                [d.date.isoformat(), d.rotations, d.failures, d.other]
                for d in data.activity
                if d.rotations or d.failures
            ),
            "No rotations or failures.",
        ),
        "## Changes\n",
        f"{_e(f.since(data))}.\n",
        f"- keys added ({len(c.keys_added)}): {', '.join(map(_e, c.keys_added)) or f.DASH}",
        f"- keys removed ({len(c.keys_removed)}): {', '.join(map(_e, c.keys_removed)) or f.DASH}",
        f"- keys rotated ({len(c.keys_rotated)}): {', '.join(map(_e, c.keys_rotated)) or f.DASH}",
        "",
        f"### New findings ({len(c.findings_new)})\n",
        _bounded(c.findings_new, "No new findings."),
        f"### Resolved findings ({len(c.findings_resolved)})\n",
        _bounded(c.findings_resolved, "No resolved findings."),
        *_alerts(data, t.alerts),
        f"## Key inventory ({t.keys})\n",
        "Metadata only: a report never contains key material.\n",
        _table(KEY_HEAD, map(f.key_cells, data.keys), "No keys."),
        "## Evidence\n",
        f"- Period: {_e(f.period(data))}",
        f"- Generated: {_e(f.when(data.generated_at))}",
        f"- ekm version: {_e(data.ekm_version)}",
        f"- Home: {_e(data.home)}",
        f"- Config fingerprint: {_e(data.config_fingerprint)}",
        f"- Audit log head hash: {_e(data.audit_log.head_hash)}",
        f"- Audit log chain: {_e(f.chain(data))}",
        "",
    ]
    return "\n".join(out)
