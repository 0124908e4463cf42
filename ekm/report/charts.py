"""The report's charts as inline SVG strings: pure functions, no scripts, no external references.

Each function returns exactly one ``<svg>`` element, sized by a viewBox so it scales on screen
and in print. Every piece of text that comes from data (key names, rule-set ids) is escaped,
and no element carries an ``href``: the HTML report must render the same offline, in a mail
client or from an archive, and a hostile key name must not become markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from html import escape

from ekm.report import chartdata as cd
from ekm.report.model import SEVERITIES, DayActivity, KeyRow, RuleSetSummary

WIDTH = 720
FONT = 'font-family="Helvetica,Arial,sans-serif" font-size="11"'


def _t(text: object, limit: int = 40) -> str:
    """Escape text for SVG, shortened to ``limit`` characters (charts are not the inventory)."""
    s = str(text)
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return escape(s, quote=True)


def _svg(height: int, title: str, body: list[str], cls: str) -> str:
    return (
        f'<svg class="chart {cls}" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-label="{_t(title, 200)}" {FONT}><title>{_t(title, 200)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _text(x: float, y: float, s: str, *, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{s}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str = "") -> str:
    title = f"<title>{tip}</title>" if tip else ""
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
        f'fill="{fill}">{title}</rect>'
    )


def _legend(y: float, items: Sequence[tuple[str, str]]) -> list[str]:
    out, x = [], 0.0
    for label, colour in items:
        out.append(_rect(x, y - 9, 10, 10, colour))
        out.append(_text(x + 14, y, _t(label)))
        x += 24 + 7 * len(label)
    return out


def key_age_chart(keys: Sequence[KeyRow], limit: int = cd.URGENT_KEYS) -> str:
    """Age against rotation interval: the ``limit`` most urgent keys, plus a histogram of all.

    Bars are coloured by due-ness (ok / notify window / overdue); the dashed line is the
    rotation interval. Past ``limit`` keys a histogram over every key keeps the chart honest.
    """
    urgent = cd.most_urgent(keys, limit)
    label_w, bar_x, bar_w, row = 190, 195, 440, 16
    body: list[str] = []
    y = 14
    body.append(_text(0, y, _t(f"Key age / rotation interval ({len(urgent)} most urgent)", 80)))
    y += 8
    top = y
    for k in urgent:
        ratio = cd.age_ratio(k)
        colour = cd.DUE_COLOURS.get(k.dueness, cd.DUE_COLOURS["none"])
        body.append(_text(label_w - 4, y + 11, _t(k.name, 30), anchor="end"))
        if ratio is None:
            body.append(_rect(bar_x, y + 2, 4, row - 4, colour))
            body.append(_text(bar_x + 8, y + 11, f"{k.age_days:.0f}d, no rotation policy"))
        else:
            w = min(ratio, 2.0) / 2.0 * bar_w
            tip = _t(f"{k.name}: {k.age_days:.0f}d of {k.rotate_every_days:g}d ({k.dueness})", 200)
            body.append(_rect(bar_x, y + 2, w, row - 4, colour, tip))
            label = f"{k.age_days:.0f}d / {k.rotate_every_days:g}d"
            body.append(_text(bar_x + min(w, bar_w) + 4, y + 11, _t(label)))
        y += row
    if not urgent:
        body.append(_text(bar_x, y + 11, "no keys"))
        y += row
    mid = bar_x + bar_w / 2
    body.append(
        f'<line x1="{mid:.1f}" y1="{top}" x2="{mid:.1f}" y2="{y}" stroke="#333" '
        'stroke-dasharray="3,3"/>'
    )
    body.append(_text(mid, y + 12, "rotation interval (100%)", anchor="middle"))
    y += 20
    if len(keys) > len(urgent):
        y = _histogram(keys, y, body)
    y += 14
    legend = [(cd.DUE_LABELS[d], cd.DUE_COLOURS[d]) for d in ("ok", "soon", "overdue", "none")]
    body.extend(_legend(y, legend))
    return _svg(y + 8, "Key age against rotation interval", body, "key-age")


def _histogram(keys: Sequence[KeyRow], y: int, body: list[str]) -> int:
    buckets = cd.age_histogram(keys)
    body.append(_text(0, y + 12, _t(f"All {len(keys)} keys by age / rotation interval", 80)))
    y += 20
    height, col = 90, WIDTH / len(buckets)
    peak = max((b.total for b in buckets), default=0) or 1
    for i, b in enumerate(buckets):
        x, base = i * col + 10, y + height
        for d in ("ok", "soon", "overdue", "none"):
            h = b.counts[d] / peak * height
            if h:
                tip = _t(f"{b.label}: {b.counts[d]} {cd.DUE_LABELS[d]}", 120)
                body.append(_rect(x, base - h, col - 20, h, cd.DUE_COLOURS[d], tip))
                base -= h
        body.append(_text(x + (col - 20) / 2, base - 3, str(b.total), anchor="middle"))
        body.append(_text(x + (col - 20) / 2, y + height + 13, _t(b.label), anchor="middle"))
    return y + height + 18


def activity_chart(
    activity: Sequence[DayActivity], start: date | None = None, end: date | None = None
) -> str:
    """Rotations and failed operations per day of the period (per week for long periods)."""
    if start is None or end is None:
        days = [d.date for d in activity]
        start = start or (min(days) if days else date(1970, 1, 1))
        end = end or (max(days) if days else start)
    bars = cd.timeline(activity, start, end)
    unit = "day" if bars[0].days == 1 else "week"
    left, plot_w, plot_h, top = 40, WIDTH - 50, 140, 22
    peak = max((b.rotations + b.failures for b in bars), default=0)
    body = [_text(0, 12, f"Rotations and failed operations per {unit}")]
    step = plot_w / len(bars)
    base = top + plot_h
    for i, b in enumerate(bars):
        x = left + i * step
        h_rot = b.rotations / peak * plot_h if peak else 0
        h_fail = b.failures / peak * plot_h if peak else 0
        tip = f"{b.start.isoformat()}: {b.rotations} rotations, {b.failures} failures"
        if h_rot:
            body.append(_rect(x, base - h_rot, max(step - 1, 0.5), h_rot, "#1565c0", tip))
        if h_fail:
            y = base - h_rot - h_fail
            body.append(_rect(x, y, max(step - 1, 0.5), h_fail, "#c62828", tip))
    body.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#333"/>')
    body.append(_text(left - 4, top + 8, str(peak), anchor="end"))
    body.append(_text(left - 4, base, "0", anchor="end"))
    if not peak:
        body.append(
            _text(left + plot_w / 2, base - plot_h / 2, "no rotations or failures", anchor="middle")
        )
    for i in sorted({0, len(bars) // 2, len(bars) - 1}):
        x = left + i * step + step / 2
        body.append(_text(x, base + 14, bars[i].start.isoformat(), anchor="middle"))
    body.extend(_legend(base + 34, [("rotations", "#1565c0"), ("failures", "#c62828")]))
    return _svg(base + 42, f"Rotations and failed operations per {unit}", body, "activity")


def findings_chart(compliance: Sequence[RuleSetSummary]) -> str:
    """Findings by severity, one stacked bar per rule set; a rule set with none says 'pass'."""
    label_w, bar_x, bar_w, row = 170, 175, 470, 20
    peak = max((c.findings for c in compliance), default=0) or 1
    body = [_text(0, 12, "Findings by severity per rule set")]
    y = 20
    for c in compliance:
        body.append(_text(label_w - 4, y + 14, _t(c.id, 28), anchor="end"))
        x = float(bar_x)
        for s in SEVERITIES:
            n = c.findings_by_severity.get(s, 0)
            if n:
                w = n / peak * bar_w
                body.append(_rect(x, y + 3, w, row - 6, cd.SEVERITY_COLOURS[s], f"{n} {s}"))
                x += w
        status = f"{c.findings} finding{'s' * (c.findings != 1)}" if c.findings else "pass"
        body.append(_text(x + 4, y + 14, f"{status} ({c.passed}/{c.evaluated} rules passed)"))
        y += row
    if not compliance:
        body.append(_text(bar_x, y + 14, "no rule sets evaluated"))
        y += row
    y += 18
    body.extend(_legend(y, [(s, cd.SEVERITY_COLOURS[s]) for s in SEVERITIES]))
    return _svg(y + 8, "Findings by severity per rule set", body, "findings")


def calendar_strip(keys: Sequence[KeyRow], start: datetime, days: int = 90) -> str:
    """Upcoming rotations on a strip of ``days`` day cells from ``start``; overdue on the left."""
    cal = cd.calendar(keys, start, days)
    left, top, cell_h = 70, 26, 26
    cell_w = (WIDTH - left - 10) / days
    body = [_text(0, 12, f"Rotations due in the next {days} days (from {cal.start.isoformat()})")]
    fill = cd.DUE_COLOURS["overdue"] if cal.overdue else "#eeeeee"
    body.append(_rect(0, top, left - 8, cell_h, fill, f"{cal.overdue} overdue"))
    colour = ' fill="#fff"' if cal.overdue else ""
    body.append(
        _text((left - 8) / 2, top + 17, f"{cal.overdue} overdue", anchor="middle", extra=colour)
    )
    for i, n in enumerate(cal.per_day):
        day = date.fromordinal(cal.start.toordinal() + i)
        who = ", ".join(cal.names[i]) + (" …" if n > len(cal.names[i]) else "")
        tip = _t(f"{day.isoformat()}: {n} due" + (f" ({who})" if n else ""), 200)
        body.append(_rect(left + i * cell_w, top, cell_w - 1, cell_h, cd.heat_colour(n), tip))
        if i == 0 or (day.day == 1 and i >= 6):
            x = left + i * cell_w
            body.append(
                f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{top + cell_h + 4}" '
                'stroke="#333"/>'
            )
            body.append(_text(x + 2, top + cell_h + 16, day.strftime("%d %b")))
    legend_y = top + cell_h + 36
    heat = [
        ("1", cd.heat_colour(1)),
        ("2", cd.heat_colour(2)),
        ("3-4", cd.heat_colour(3)),
        ("5+ due per day", cd.heat_colour(5)),
    ]
    body.extend(_legend(legend_y, heat))
    total = sum(cal.per_day)
    body.append(_text(WIDTH - 4, legend_y, f"{total} due in {days} days", anchor="end"))
    return _svg(legend_y + 8, f"Rotations due in the next {days} days", body, "calendar")
