"""SVG charts: one <svg> each, escaped text, no external reference, aggregation at scale."""

from __future__ import annotations

import re
from datetime import date, timedelta
from xml.etree import ElementTree

import pytest

from ekm.report import chartdata as cd
from ekm.report.charts import activity_chart, calendar_strip, findings_chart, key_age_chart
from ekm.report.model import DayActivity, ReportData
from tests.report.synthetic import AS_OF


def _parse(svg: str) -> ElementTree.Element:
    """Parse our own chart output (not untrusted input): it must be well-formed XML."""
    return ElementTree.fromstring(svg)  # noqa: S314


def _charts(d: ReportData) -> list[str]:
    return [
        key_age_chart(d.keys),
        activity_chart(d.activity, d.period_start.date(), d.period_end.date()),
        findings_chart(d.compliance),
        calendar_strip(d.keys, d.period_end),
    ]


@pytest.mark.parametrize("which", range(4))
def test_each_chart_is_one_wellformed_svg_without_references(data: ReportData, which) -> None:
    svg = _charts(data)[which]
    assert svg.count("<svg") == 1 and svg.endswith("</svg>")
    root = _parse(svg)  # well-formed XML: every data string was escaped
    assert root.tag == "svg"
    assert root.find("title") is not None  # accessible name
    for el in root.iter():
        assert el.tag not in ("script", "image", "use", "a", "foreignObject", "style")
        assert not any("href" in k or k.startswith("on") for k in el.attrib), el.attrib
    assert "http" not in svg and "url(" not in svg


def test_hostile_key_name_stays_text(small: ReportData) -> None:
    svg = key_age_chart(small.keys)
    assert "<script" not in svg
    texts = [t.text for t in _parse(svg).iter("text")]
    assert "<script>alert(1)</script>|x" in texts


def test_key_age_chart_shows_most_urgent_and_histogram_past_the_limit(data: ReportData) -> None:
    svg = key_age_chart(data.keys, limit=10)
    root = _parse(svg)
    assert f"All {len(data.keys)} keys by age / rotation interval" in svg
    urgent = cd.most_urgent(data.keys, 10)
    assert all(k.dueness == "overdue" for k in urgent)  # 24 overdue of 46: top 10 all overdue
    labels = [t.text for t in root.iter("text")]
    for k in urgent:
        assert k.name in labels
    # histogram bucket totals add up to the number of keys
    assert sum(b.total for b in cd.age_histogram(data.keys)) == len(data.keys)


def test_key_age_chart_without_histogram_when_few_keys(small: ReportData) -> None:
    svg = key_age_chart(small.keys)
    assert "keys by age" not in svg
    assert "no rotation policy" in svg  # legacy_blob
    assert svg.count(cd.DUE_COLOURS["overdue"]) >= 2  # a bar and the legend


def test_most_urgent_order(small: ReportData) -> None:
    order = [k.name for k in cd.most_urgent(small.keys, 6)]
    assert order[:2] == ["database_encryption", "jwt_signing"]
    assert order[-1] == "legacy_blob"  # no policy comes last


def test_activity_chart_fills_gaps_and_bins_weekly_for_long_periods() -> None:
    start = date(2025, 1, 1)
    act = [DayActivity(start, 3, 1, 0), DayActivity(start + timedelta(days=200), 0, 2, 5)]
    daily = cd.timeline(act, start, start + timedelta(days=89))
    assert len(daily) == 90 and daily[0].rotations == 3  # day 200 is outside: dropped
    weekly = cd.timeline(act, start, start + timedelta(days=364))
    assert len(weekly) == 53 and weekly[0].days == 7
    assert sum(b.failures for b in weekly) == 3
    svg = activity_chart(act, start, start + timedelta(days=364))
    assert "per week" in svg and svg.count("<rect") >= 3
    empty = activity_chart([], start, start)
    assert "no rotations or failures" in empty


def test_findings_chart_says_pass_for_a_clean_rule_set(small: ReportData) -> None:
    svg = findings_chart(small.compliance)
    assert "pass (9/9 rules passed)" in svg
    assert "3 findings (7/10 rules passed)" in svg
    assert "1 finding (11/12 rules passed)" in svg
    assert "no rule sets evaluated" in findings_chart([])


def test_calendar_strip_counts(small: ReportData) -> None:
    cal = cd.calendar(small.keys, AS_OF, 90)
    assert cal.overdue == 1
    assert sum(cal.per_day) == 3  # jwt_signing, api_master, hostile name; rsa is 355 d away
    assert cal.per_day[4] == 1 and cal.names[4] == ["jwt_signing"]
    svg = calendar_strip(small.keys, AS_OF)
    assert "1 overdue" in svg and "3 due in 90 days" in svg
    # 1 overdue cell + 90 day cells + 4 legend swatches
    assert len(re.findall(r"<rect ", svg)) == 95


def test_charts_aggregate_at_scale() -> None:
    """10,000 keys: the charts stay bounded (N bars + histogram), not one mark per key."""
    from tests.report.synthetic import report

    big = report(extra_keys=10_000, n_events=5_000)
    age = key_age_chart(big.keys)
    # 25 urgent bars + at most 7 buckets x 4 due-ness segments + 4 legend swatches
    assert age.count("<rect") <= 25 + 28 + 4
    assert "All 10006 keys by age / rotation interval" in age
    cal = calendar_strip(big.keys, big.period_end)
    assert cal.count("<rect") == 1 + 90 + 4
    assert len(age) + len(cal) < 100_000
