"""The report's charts as reportlab drawings, from the same aggregates as the SVG charts.

reportlab's own vector graphics, not a browser: the PDF is built from PyPI wheels alone. The
figures come from :mod:`ekm.report.chartdata`, so the PDF and HTML charts show the same
numbers. Only imported by :mod:`ekm.report.pdf`, which is itself imported on use.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from reportlab.graphics.shapes import Drawing, Line, Rect, String
from reportlab.lib.colors import HexColor

from ekm.report import chartdata as cd
from ekm.report.model import SEVERITIES, DayActivity, KeyRow, RuleSetSummary

WIDTH = 515.0
FONT = "Helvetica"
SIZE = 7


class _Canvas:
    """Top-down coordinates (like SVG) flipped onto reportlab's bottom-up Drawing."""

    def __init__(self) -> None:
        self.items: list[tuple[str, tuple[Any, ...]]] = []
        self.height = 0.0

    def rect(self, x: float, y: float, w: float, h: float, colour: str) -> None:
        if w > 0 and h > 0:
            self.items.append(("r", (x, y, w, h, colour)))
        self.height = max(self.height, y + h)

    def text(self, x: float, y: float, s: str, anchor: str = "start", size: float = SIZE) -> None:
        self.items.append(("t", (x, y, _clip(s), anchor, size)))
        self.height = max(self.height, y + 2)

    def line(self, x1: float, y1: float, x2: float, y2: float, dash: bool = False) -> None:
        self.items.append(("l", (x1, y1, x2, y2, dash)))
        self.height = max(self.height, y1, y2)

    def drawing(self) -> Drawing:
        h = self.height + 4
        d = Drawing(WIDTH, h)
        for kind, a in self.items:
            if kind == "r":
                x, y, w, rh, colour = a
                c = HexColor(colour)
                d.add(Rect(x, h - y - rh, w, rh, fillColor=c, strokeColor=None, strokeWidth=0))
            elif kind == "t":
                x, y, s, anchor, size = a
                d.add(String(x, h - y, s, fontName=FONT, fontSize=size, textAnchor=anchor))
            else:
                x1, y1, x2, y2, dash = a
                d.add(
                    Line(
                        x1,
                        h - y1,
                        x2,
                        h - y2,
                        strokeWidth=0.6,
                        strokeDashArray=[2, 2] if dash else None,
                    )
                )
        return d


def _clip(s: str, limit: int = 60) -> str:
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _legend(c: _Canvas, y: float, items: Sequence[tuple[str, str]]) -> None:
    x = 0.0
    for label, colour in items:
        c.rect(x, y - 6, 7, 7, colour)
        c.text(x + 10, y, label)
        x += 18 + 4.2 * len(label)


def key_age_drawing(keys: Sequence[KeyRow], limit: int = cd.URGENT_KEYS) -> Drawing:
    c = _Canvas()
    urgent = cd.most_urgent(keys, limit)
    label_w, bar_x, bar_w, row = 140.0, 144.0, 300.0, 10.0
    c.text(0, 9, f"Key age / rotation interval ({len(urgent)} most urgent)", size=8)
    y = top = 14.0
    for k in urgent:
        ratio = cd.age_ratio(k)
        colour = cd.DUE_COLOURS.get(k.dueness, cd.DUE_COLOURS["none"])
        c.text(label_w - 3, y + 7.5, _clip(k.name, 32), anchor="end")
        if ratio is None:
            c.rect(bar_x, y + 1.5, 3, row - 3, colour)
            c.text(bar_x + 6, y + 7.5, f"{k.age_days:.0f}d, no rotation policy")
        else:
            w = min(ratio, 2.0) / 2.0 * bar_w
            c.rect(bar_x, y + 1.5, w, row - 3, colour)
            c.text(bar_x + w + 3, y + 7.5, f"{k.age_days:.0f}d / {k.rotate_every_days:g}d")
        y += row
    mid = bar_x + bar_w / 2
    c.line(mid, top, mid, y, dash=True)
    c.text(mid, y + 9, "rotation interval (100%)", anchor="middle")
    y += 16
    if len(keys) > len(urgent):
        buckets = cd.age_histogram(keys)
        c.text(0, y + 9, f"All {len(keys)} keys by age / rotation interval", size=8)
        y += 14
        height, col = 60.0, WIDTH / len(buckets)
        peak = max(b.total for b in buckets) or 1
        for i, b in enumerate(buckets):
            x, base = i * col + 8, y + height
            for d in ("ok", "soon", "overdue", "none"):
                h = b.counts[d] / peak * height
                c.rect(x, base - h, col - 16, h, cd.DUE_COLOURS[d])
                base -= h
            c.text(x + (col - 16) / 2, base - 2, str(b.total), anchor="middle")
            c.text(x + (col - 16) / 2, y + height + 9, b.label, anchor="middle")
        y += height + 14
    _legend(c, y + 10, [(cd.DUE_LABELS[d], cd.DUE_COLOURS[d]) for d in cd.DUE_LABELS])
    return c.drawing()


def activity_drawing(activity: Sequence[DayActivity], start: date, end: date) -> Drawing:
    c = _Canvas()
    bars = cd.timeline(activity, start, end)
    unit = "day" if bars[0].days == 1 else "week"
    left, plot_w, plot_h, top = 30.0, WIDTH - 36, 90.0, 14.0
    peak = max((b.rotations + b.failures for b in bars), default=0)
    c.text(0, 9, f"Rotations and failed operations per {unit}", size=8)
    step = plot_w / len(bars)
    base = top + plot_h
    for i, b in enumerate(bars):
        x = left + i * step
        h_rot = b.rotations / peak * plot_h if peak else 0
        h_fail = b.failures / peak * plot_h if peak else 0
        c.rect(x, base - h_rot, max(step - 0.6, 0.4), h_rot, "#1565c0")
        c.rect(x, base - h_rot - h_fail, max(step - 0.6, 0.4), h_fail, "#c62828")
    c.line(left, base, left + plot_w, base)
    c.text(left - 3, top + 6, str(peak), anchor="end")
    c.text(left - 3, base, "0", anchor="end")
    if not peak:
        c.text(left + plot_w / 2, base - plot_h / 2, "no rotations or failures", anchor="middle")
    for i in sorted({0, len(bars) // 2, len(bars) - 1}):
        c.text(left + i * step + step / 2, base + 10, bars[i].start.isoformat(), anchor="middle")
    _legend(c, base + 24, [("rotations", "#1565c0"), ("failures", "#c62828")])
    return c.drawing()


def findings_drawing(compliance: Sequence[RuleSetSummary]) -> Drawing:
    c = _Canvas()
    label_w, bar_x, bar_w, row = 120.0, 124.0, 260.0, 13.0
    peak = max((r.findings for r in compliance), default=0) or 1
    c.text(0, 9, "Findings by severity per rule set", size=8)
    y = 14.0
    for r in compliance:
        c.text(label_w - 3, y + 9, _clip(r.id, 28), anchor="end")
        x = bar_x
        for s in SEVERITIES:
            n = r.findings_by_severity.get(s, 0)
            if n:
                w = n / peak * bar_w
                c.rect(x, y + 2, w, row - 4, cd.SEVERITY_COLOURS[s])
                x += w
        status = f"{r.findings} finding{'s' * (r.findings != 1)}" if r.findings else "pass"
        c.text(x + 3, y + 9, f"{status} ({r.passed}/{r.evaluated} rules passed)")
        y += row
    if not compliance:
        c.text(bar_x, y + 9, "no rule sets evaluated")
        y += row
    _legend(c, y + 12, [(s, cd.SEVERITY_COLOURS[s]) for s in SEVERITIES])
    return c.drawing()


def calendar_drawing(keys: Sequence[KeyRow], start: datetime, days: int = 90) -> Drawing:
    c = _Canvas()
    cal = cd.calendar(keys, start, days)
    left, top, cell_h = 52.0, 16.0, 18.0
    cell_w = (WIDTH - left - 4) / days
    c.text(0, 9, f"Rotations due in the next {days} days (from {cal.start.isoformat()})", size=8)
    c.rect(0, top, left - 6, cell_h, cd.DUE_COLOURS["overdue"] if cal.overdue else "#eeeeee")
    c.text((left - 6) / 2, top + 12, f"{cal.overdue} overdue", anchor="middle")
    for i, n in enumerate(cal.per_day):
        day = date.fromordinal(cal.start.toordinal() + i)
        c.rect(left + i * cell_w, top, cell_w - 0.6, cell_h, cd.heat_colour(n))
        if i == 0 or (day.day == 1 and i >= 6):
            x = left + i * cell_w
            c.line(x, top - 3, x, top + cell_h + 3)
            c.text(x + 1.5, top + cell_h + 11, day.strftime("%d %b"))
    y = top + cell_h + 24
    heat = [
        ("1", cd.heat_colour(1)),
        ("2", cd.heat_colour(2)),
        ("3-4", cd.heat_colour(3)),
        ("5+ due per day", cd.heat_colour(5)),
    ]
    _legend(c, y, heat)
    c.text(WIDTH - 2, y, f"{sum(cal.per_day)} due in {days} days", anchor="end")
    return c.drawing()
