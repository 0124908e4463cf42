"""The report as one self-contained HTML file.

Inline CSS and inline SVG only: no script, no font, image or stylesheet fetched from anywhere,
and a Content-Security-Policy that forbids them anyway, so the file reads the same offline, in
an archive years later, or opened by an auditor on a locked-down machine. Every value from the
model is escaped. Summary figures carry ``data-figure`` attributes and tables have ids so a
test (or an auditor's script) can check that the summary adds up to the tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from ekm.report import _fmt as f
from ekm.report import charts
from ekm.report import digest as dg
from ekm.report._fmt import FINDING_HEAD, KEY_HEAD
from ekm.report.model import AlertRow, FindingRow, KeyRow, ReportData

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.4 Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
  color: #111; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { border-bottom: 2px solid #333;
  padding-bottom: .1em; margin-top: 1.6em; } h3 { margin: .2em 0; font-size: 1em; }
.meta { color: #444; margin: 0; }
.summary { display: grid; grid-template-columns: repeat(auto-fit, minmax(250px, 1fr));
  gap: .8em; }
.card { border: 1px solid #bbb; border-radius: 4px; padding: .6em .8em; }
.big { font-size: 1.8em; font-weight: bold; }
.bad { color: #c62828; font-weight: bold; } .warn { color: #b26a00; font-weight: bold; }
.good { color: #2e7d32; font-weight: bold; }
table { border-collapse: collapse; width: 100%; margin: .4em 0; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 5px; text-align: left; vertical-align: top; }
th { background: #eee; } td.n { text-align: right; }
.mini td, .mini th { border: none; padding: 0 .4em 0 0; }
figure { margin: 1em 0; break-inside: avoid; } figcaption { color: #444; font-size: 12px; }
.hash { font-family: monospace; word-break: break-all; }
.sev-critical, .sev-high, .due-overdue { color: #c62828; font-weight: bold; }
.sev-medium, .due-soon { color: #b26a00; }
@page { size: A4; margin: 14mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  #summary { break-after: page; }
  h2 { break-after: avoid; } thead { display: table-header-group; } tr { break-inside: avoid; }
  .card { break-inside: avoid; }
}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _fig(name: str, value: object, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<span data-figure="{_e(name)}"{c}>{_e(value)}</span>'


def _table(ident: str, head: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """A table whose cells are already-escaped HTML; ``empty`` is said when there are no rows."""
    body = "".join("<tr>" + "".join(cells) + "</tr>\n" for cells in rows)
    if not body:
        return f'<p id="{ident}" class="empty">{_e(empty)}</p>'
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    return f'<table id="{ident}"><thead><tr>{th}</tr></thead><tbody>\n{body}</tbody></table>'


def _td(value: object, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(value)}</td>' if cls else f"<td>{_e(value)}</td>"


def _counts(counts: dict[str, int], ident: str) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td class='n'>{_fig(f'{ident}:{k}', n)}</td></tr>"
        for k, n in counts.items()
    )
    return f'<table class="mini">{rows}</table>'


def _summary(data: ReportData) -> str:
    t = data.totals()
    due = t.keys_by_dueness
    cards = [
        f'<div class="card"><h3>Keys</h3><div class="big">{_fig("keys", t.keys)}</div>'
        f"<p>by type</p>{_counts(t.keys_by_type, 'type')}"
        f"<p>by backend</p>{_counts(t.keys_by_backend, 'backend')}</div>",
        '<div class="card"><h3>Rotation</h3>'
        f"<p>{_fig('overdue', due['overdue'], 'bad' if due['overdue'] else '')} overdue</p>"
        f"<p>{_fig('soon', due['soon'], 'warn' if due['soon'] else '')} in the notify window</p>"
        f"<p>{_fig('due-30d', t.due_within_30d)} overdue or due within 30 days</p>"
        f"<p>{_fig('no-policy', due['none'])} without a rotation policy</p></div>",
    ]
    comp = "".join(
        f"<tr><td>{_e(c.id)}</td><td class='{'bad' if c.findings else 'good'}'>"
        f"{_fig(f'ruleset:{c.id}', c.findings)} {'finding' if c.findings == 1 else 'findings'}"
        f"</td><td>{_e(f.ruleset_detail(c))}</td></tr>"
        for c in data.compliance
    )
    cards.append(
        '<div class="card"><h3>Compliance</h3>'
        f"<p>{_fig('findings', t.findings)} findings: {_e(f.severities(t.findings_by_severity))}"
        f'</p><table class="mini">{comp}</table></div>'
        if data.compliance
        else '<div class="card"><h3>Compliance</h3><p>no rule set evaluated</p></div>'
    )
    chain_cls = "good" if data.audit_log.chain_ok else "bad"
    cards.append(
        '<div class="card"><h3>Audit log</h3>'
        f'<p class="{chain_cls}">chain {_e(f.chain(data))}</p>'
        f"<p>{_fig('rotations', t.rotations)} rotations, "
        f"{_fig('failures', t.failures, 'bad' if t.failures else '')} failed operations, "
        f"{_fig('other', t.other_operations)} other operations in the period</p></div>"
    )
    cards.append(
        '<div class="card"><h3>Monitor alerts</h3>'
        f'<div class="big">{_fig("alerts", t.alerts)}</div>'
        f"<p>{_e(f.severities(t.alerts_by_severity))}</p></div>"
    )
    return (
        '<section id="summary"><h2>Summary</h2><div class="summary">'
        + "".join(cards)
        + ("</div></section>")
    )


def _charts(data: ReportData) -> str:
    figs = [
        (
            charts.key_age_chart(data.keys),
            "Age of each key's primary version against its "
            "rotation interval; the most urgent keys, and every key in the histogram.",
        ),
        (
            charts.activity_chart(data.activity, data.period_start.date(), data.period_end.date()),
            "Rotations and failed operations recorded in the audit log over the period (UTC days).",
        ),
        (charts.findings_chart(data.compliance), "Compliance findings by severity per rule set."),
        (
            charts.calendar_strip(data.keys, data.period_end),
            "Scheduled rotations per UTC day for the next 90 days from the end of the period.",
        ),
    ]
    body = "".join(f"<figure>{svg}<figcaption>{_e(cap)}</figcaption></figure>" for svg, cap in figs)
    return f'<section id="charts"><h2>Charts</h2>{body}</section>'


def _key_cells(k: KeyRow) -> list[str]:
    return [
        _td(k.name),
        _td(k.type),
        _td(k.usage),
        _td(k.backend),
        _td(k.state_summary),
        _td(f.opt(k.primary_version), "n"),
        _td(k.versions, "n"),
        _td(f.days(k.age_days), "n"),
        _td(f.days(k.rotate_every_days), "n"),
        _td(f.when(k.next_rotation)),
        _td(k.dueness, f"due-{k.dueness}"),
    ]


def _finding_cells(x: FindingRow) -> list[str]:
    return [
        _td(x.rule_set),
        _td(x.rule),
        _td(f.opt(x.key)),
        _td(f.opt(x.version), "n"),
        _td(x.severity, f"sev-{x.severity}"),
        _td(x.message),
        _td(x.required),
        _td(x.cite),
    ]


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


def _group_cells(g: dg.FindingGroup) -> list[str]:
    return [
        _td(g.rule_set),
        _td(g.rule),
        _td(g.severity, f"sev-{g.severity}"),
        _td(g.findings, "n"),
        _td(g.keys, "n"),
        _td(", ".join(g.examples)),
        _td(g.required),
        _td(g.cite),
    ]


def _bounded(ident: str, rows: list[FindingRow], empty: str) -> str:
    """A findings table of at most LIST_LIMIT rows, with the sentence saying what is left out."""
    shown, more = dg.first_by_severity(rows)
    table = _table(ident, FINDING_HEAD, map(_finding_cells, shown), empty)
    if not more:
        return table
    note = _e(dg.more_findings(len(shown), more))
    return f'{table}<p class="more" data-left-out="{more}" id="{ident}-more">{note}</p>'


def _findings(data: ReportData, total: int) -> str:
    groups = dg.group_findings(data.findings)
    return (
        f'<section id="findings"><h2>Findings ({total})</h2>'
        f"<h3>By rule ({f.plural(len(groups), 'rule')})</h3>"
        + _table("findings-by-rule", GROUP_HEAD, map(_group_cells, groups), "No findings.")
        + "<h3>Individual findings</h3>"
        + _bounded("findings-table", data.findings, "No findings.")
        + "</section>"
    )


def _alert_cells(a: AlertRow) -> list[str]:
    return [
        _td(f.when(a.time)),
        _td(a.severity, f"sev-{a.severity}"),
        _td(a.check),
        _td(a.subject),
        _td(a.message),
    ]


def _alerts(data: ReportData, total: int) -> str:
    shown, more = dg.latest_alerts(data.alerts)
    table = _table(
        "alerts-table",
        ("time", "severity", "check", "subject", "message"),
        map(_alert_cells, shown),
        "No alerts in the period.",
    )
    if more:
        note = _e(dg.more_alerts(len(shown), more))
        table += f'<p class="more" data-left-out="{more}" id="alerts-table-more">{note}</p>'
    return f'<section id="alerts"><h2>Monitor alerts in the period ({total})</h2>{table}</section>'


def _changes(data: ReportData) -> str:
    c = data.changes
    items = [
        ("keys added", c.keys_added),
        ("keys removed", c.keys_removed),
        ("keys rotated", c.keys_rotated),
    ]
    lis = "".join(
        f"<li>{_fig(label.replace(' ', '-'), len(names))} {_e(label)}"
        f"{': ' + _e(', '.join(names)) if names else ''}</li>"
        for label, names in items
    )
    new = _bounded("findings-new", c.findings_new, "No new findings.")
    gone = _bounded("findings-resolved", c.findings_resolved, "No resolved findings.")
    return (
        f'<section id="changes"><h2>Changes</h2><p>{_e(f.since(data))}.</p>'
        f"<ul>{lis}</ul><h3>New findings</h3>{new}<h3>Resolved findings</h3>{gone}</section>"
    )


def _evidence(data: ReportData) -> str:
    rows = [
        ("Period", f.period(data)),
        ("Generated", f.when(data.generated_at)),
        ("ekm version", data.ekm_version),
        ("Home", data.home),
        ("Config fingerprint", data.config_fingerprint),
        ("Audit log head hash", data.audit_log.head_hash),
        ("Audit log chain", f.chain(data)),
    ]
    dl = "".join(f'<dt>{_e(k)}</dt><dd class="hash">{_e(v)}</dd>' for k, v in rows)
    return f'<footer id="evidence"><h2>Evidence</h2><dl>{dl}</dl></footer>'


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (validated first; raises InvalidError)."""
    data.validate()
    t = data.totals()
    due = data.due_keys()
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(f.TITLE)}: {_e(f.period(data))}</title><style>{CSS}</style></head><body>",
        f'<header><h1>{_e(f.TITLE)}</h1><p class="meta">Period {_e(f.period(data))}; '
        f"generated {_e(f.when(data.generated_at))}; ekm {_e(data.ekm_version)}; "
        f"config {_e(data.config_fingerprint)}</p></header>",
        _summary(data),
        _charts(data),
        f'<section id="due"><h2>Keys overdue or due within 30 days ({len(due)})</h2>',
        _table("due-table", KEY_HEAD, map(_key_cells, due), "No key is due within 30 days."),
        "</section>",
        _findings(data, t.findings),
        _changes(data),
        _alerts(data, t.alerts),
        f'<section id="inventory"><h2>Key inventory ({t.keys})</h2>'
        "<p>Metadata only: a report never contains key material.</p>",
        _table("inventory-table", KEY_HEAD, map(_key_cells, data.keys), "No keys."),
        "</section>",
        _evidence(data),
        "</body></html>\n",
    ]
    return "".join(parts)
