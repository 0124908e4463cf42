"""The report as PDF, with reportlab (pure-Python wheels; no browser, no system packages).

Same content and order as the HTML report. Paragraph text goes through reportlab's mini
markup, so every value placed in a Paragraph is XML-escaped; table cells are plain strings
(reportlab does not parse those), wrapped by hand, which also keeps 10,000 inventory rows fast.
Long tables are cut into chunks so reportlab's page splitting stays linear. The document is
built with ``invariant=1``: the same model gives the same bytes, so a report can be hashed.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import escape

from ekm.report import _fmt as f
from ekm.report import digest as dg
from ekm.report.model import FindingRow, ReportData

CHUNK = 250  # rows per reportlab Table; splitting one huge table is quadratic
FONT_SIZE = 6.5

KEY_COLS = (  # (heading, width in points, wrap width in characters)
    ("key", 92, 24),
    ("type", 52, 13),
    ("usage", 42, 10),
    ("backend", 32, 8),
    ("versions (state)", 70, 19),
    ("primary", 28, 6),
    ("vers.", 22, 5),
    ("age", 30, 7),
    ("every", 28, 7),
    ("next rotation", 78, 20),
    ("due", 32, 8),
)
FINDING_COLS = (
    ("rule set", 50, 12),
    ("rule", 58, 15),
    ("key", 62, 16),
    ("ver.", 20, 4),
    ("severity", 34, 8),
    ("finding", 100, 27),
    ("requirement", 90, 24),
    ("citation", 87, 23),
)
GROUP_COLS = (
    ("rule set", 50, 12),
    ("rule", 58, 15),
    ("severity", 34, 8),
    ("findings", 32, 7),
    ("keys", 26, 6),
    ("example keys", 90, 24),
    ("requirement", 90, 24),
    ("citation", 121, 32),
)
ALERT_COLS = (
    ("time", 72, 20),
    ("severity", 40, 10),
    ("check", 60, 15),
    ("subject", 110, 30),
    ("message", 233, 64),
)


def _wrap(value: object, width: int) -> str:
    s = str(value)
    if len(s) <= width and "\n" not in s:
        return s
    return "\n".join(textwrap.wrap(s, width, break_long_words=True) or [""])


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


class _Builder:
    """Collects flowables; keeps reportlab imports in one function-local place."""

    def __init__(self) -> None:
        from reportlab.lib.styles import getSampleStyleSheet

        self.story: list[Any] = []
        self.styles = getSampleStyleSheet()

    def para(self, text: str, style: str = "BodyText") -> None:
        from reportlab.platypus import Paragraph

        self.story.append(Paragraph(escape(text), self.styles[style]))

    def heading(self, text: str, level: int = 2) -> None:
        self.para(text, f"Heading{level}")

    def table(
        self, cols: Sequence[tuple[str, int, int]], rows: Iterable[Sequence[object]], empty: str
    ) -> None:
        from reportlab.lib import colors
        from reportlab.platypus import Table, TableStyle

        style = TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), "Helvetica", FONT_SIZE, FONT_SIZE + 1.5),
                ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", FONT_SIZE, FONT_SIZE + 1.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#bbbbbb")),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ]
        )
        head = [c[0] for c in cols]
        widths = [c[1] for c in cols]
        chunk: list[list[str]] = []
        seen = False
        for row in rows:
            chunk.append([_wrap(v, c[2]) for v, c in zip(row, cols, strict=True)])
            if len(chunk) == CHUNK:
                self.story.append(Table([head, *chunk], widths, repeatRows=1, style=style))
                chunk, seen = [], True
        if chunk:
            self.story.append(Table([head, *chunk], widths, repeatRows=1, style=style))
        elif not seen:
            self.para(empty)

    def findings(self, rows: list[FindingRow], empty: str) -> None:
        """At most LIST_LIMIT findings, then the sentence saying what is left out and where."""
        shown, more = dg.first_by_severity(rows)
        self.table(FINDING_COLS, map(f.finding_cells, shown), empty)
        if more:
            self.para(dg.more_findings(len(shown), more))

    def figure(self, drawing: Any, caption: str) -> None:
        from reportlab.platypus import KeepTogether, Paragraph, Spacer

        cap = Paragraph(escape(caption), self.styles["Italic"])
        self.story.append(KeepTogether([drawing, cap, Spacer(1, 8)]))


def _summary(b: _Builder, data: ReportData) -> None:
    t = data.totals()
    due = t.keys_by_dueness
    b.heading("Summary")
    types = ", ".join(f"{k}: {n}" for k, n in t.keys_by_type.items()) or "none"
    backends = ", ".join(f"{k}: {n}" for k, n in t.keys_by_backend.items()) or "none"
    b.para(f"Keys: {t.keys} (by type: {types}; by backend: {backends})")
    b.para(
        f"Rotation: {due['overdue']} overdue, {due['soon']} in the notify window, "
        f"{t.due_within_30d} overdue or due within 30 days, {due['none']} without a policy"
    )
    b.para(f"Findings: {t.findings} ({f.severities(t.findings_by_severity)})")
    for c in data.compliance:
        b.para(f"    {c.id} ({c.title}): {f.ruleset_status(c)}")
    b.para(
        f"Audit log: chain {f.chain(data)}; {t.rotations} rotations, {t.failures} failed "
        f"operations, {t.other_operations} other operations in the period"
    )
    b.para(f"Monitor alerts: {t.alerts} ({f.severities(t.alerts_by_severity)})")


def _charts(b: _Builder, data: ReportData) -> None:
    from ekm.report import pdf_charts as pc

    b.heading("Charts")
    b.figure(
        pc.key_age_drawing(data.keys),
        "Age of each key's primary version against its "
        "rotation interval: the most urgent keys, and every key in the histogram.",
    )
    b.figure(
        pc.activity_drawing(data.activity, data.period_start.date(), data.period_end.date()),
        "Rotations and failed operations recorded in the audit log (UTC days).",
    )
    b.figure(pc.findings_drawing(data.compliance), "Compliance findings by severity per rule set.")
    b.figure(
        pc.calendar_drawing(data.keys, data.period_end),
        "Scheduled rotations per UTC day for the next 90 days from the end of the period.",
    )


def _changes(b: _Builder, data: ReportData) -> None:
    c = data.changes
    b.heading("Changes")
    b.para(f"{f.since(data)}.")
    for label, names in (
        ("added", c.keys_added),
        ("removed", c.keys_removed),
        ("rotated", c.keys_rotated),
    ):
        b.para(f"Keys {label} ({len(names)}): {', '.join(names) or f.DASH}")
    b.heading(f"New findings ({len(c.findings_new)})", 3)
    b.findings(c.findings_new, "No new findings.")
    b.heading(f"Resolved findings ({len(c.findings_resolved)})", 3)
    b.findings(c.findings_resolved, "No resolved findings.")


def render_pdf(data: ReportData) -> bytes:
    """The whole report as PDF bytes (validated first; raises InvalidError)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.platypus import SimpleDocTemplate

    data.validate()
    t = data.totals()
    b = _Builder()
    b.para(f.TITLE, "Title")
    b.para(
        f"Period {f.period(data)}; generated {f.when(data.generated_at)}; "
        f"ekm {data.ekm_version}; config {data.config_fingerprint}"
    )
    _summary(b, data)
    _charts(b, data)
    b.heading(f"Keys overdue or due within 30 days ({t.due_within_30d})")
    b.table(KEY_COLS, map(f.key_cells, data.due_keys()), "No key is due within 30 days.")
    b.heading(f"Findings ({t.findings})")
    groups = dg.group_findings(data.findings)
    b.heading(f"By rule ({f.plural(len(groups), 'rule')})", 3)
    b.table(GROUP_COLS, map(_group, groups), "No findings.")
    b.heading("Individual findings", 3)
    b.findings(data.findings, "No findings.")
    _changes(b, data)
    b.heading(f"Monitor alerts in the period ({t.alerts})")
    alerts, older = dg.latest_alerts(data.alerts)
    b.table(
        ALERT_COLS,
        ([f.when(a.time), a.severity, a.check, a.subject, a.message] for a in alerts),
        "No alerts in the period.",
    )
    if older:
        b.para(dg.more_alerts(len(alerts), older))
    b.heading(f"Key inventory ({t.keys})")
    b.para("Metadata only: a report never contains key material.")
    b.table(KEY_COLS, map(f.key_cells, data.keys), "No keys.")
    b.heading("Evidence")
    for label, value in (
        ("Period", f.period(data)),
        ("Generated", f.when(data.generated_at)),
        ("ekm version", data.ekm_version),
        ("Home", data.home),
        ("Config fingerprint", data.config_fingerprint),
        ("Audit log head hash", data.audit_log.head_hash),
        ("Audit log chain", f.chain(data)),
    ):
        b.para(f"{label}: {value}")

    footer = f"{f.TITLE}, {f.period(data)}"

    def on_page(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(doc.leftMargin, 20, footer[:140])
        canvas.drawRightString(A4[0] - doc.rightMargin, 20, f"page {doc.page}")
        canvas.restoreState()

    buf = io.BytesIO()
    doc = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=40,
        rightMargin=40,
        topMargin=40,
        bottomMargin=40,
        title=f.TITLE,
        author=f"ekm {data.ekm_version}",
        subject=f.period(data),
        invariant=1,
    )
    doc.build(b.story, onFirstPage=on_page, onLaterPages=on_page)
    return buf.getvalue()
