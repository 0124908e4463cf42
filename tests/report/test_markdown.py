"""The Markdown report: tables present, cells escaped, summary equal to the tables."""

from __future__ import annotations

import dataclasses
import re

from ekm.report.markdown import _e, render_markdown
from ekm.report.model import ReportData
from tests.report.synthetic import HEAD


def _section(md: str, heading: str) -> list[list[str]]:
    """Rows of the first table after ``heading`` (unescaped '|' splits cells)."""
    part = md.split(heading, 1)[1]
    rows = []
    for line in part.splitlines()[2:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
        rows.append([c.strip() for c in cells])
    return rows[2:] if rows and set(rows[1][0]) <= {"-"} else rows


def test_tables_and_counts(data: ReportData) -> None:
    md = render_markdown(data)
    t = data.totals()
    inventory = _section(md, f"## Key inventory ({t.keys})")
    assert len(inventory) == 46 and all(len(r) == 11 for r in inventory)
    findings = _section(md, "## Findings (4)")
    assert len(findings) == 4 and all(len(r) == 8 for r in findings)
    due = _section(md, f"## Keys overdue or due within 30 days ({t.due_within_30d})")
    assert len(due) == t.due_within_30d
    overdue = sum(1 for r in inventory if r[-1] == "overdue")
    assert f"- **Rotation:** {overdue} overdue" in md
    assert f"- **Keys:** {len(inventory)} " in md
    assert "- **Findings:** 4 (1 critical, 1 high, 1 medium, 1 low)" in md
    assert "| fips-140-2 | FIPS 140-2 | 3 | 1 critical, 1 medium, 1 low | 7/10 |" in md
    assert f"Audit log head hash: {HEAD}" in md
    assert "Since the previous report of 2026-03-01T12:00:00Z." in md
    assert "  - pci-dss-4 (PCI DSS 4.0): 1 finding (1 high); 11/12 rules passed" in md


def test_hostile_cells_cannot_break_tables_or_inject_html(small: ReportData) -> None:
    md = render_markdown(small)
    assert "<script>" not in md
    assert r"\<script\>alert(1)\</script\>\|x" in md
    # the pipe inside a finding message is escaped, so the row keeps its 8 cells
    assert r"home is world-listable \| fix" in md
    for row in _section(md, "## Findings (4)"):
        assert len(row) == 8


def test_escape_rules() -> None:
    assert _e("database_encryption") == "database_encryption"  # intraword _ left alone
    assert _e("_lead") == r"\_lead"
    assert _e("a\nb|c") == r"a b\|c"
    assert _e("[x](javascript:1)") == r"\[x\](javascript:1)"
    assert _e("") == "-"


def test_empty_sections_say_so(small: ReportData) -> None:
    empty = dataclasses.replace(small, keys=[], alerts=[], changes=type(small.changes)())
    md = render_markdown(empty)
    assert "_No keys._" in md and "_No alerts in the period._" in md
    assert "No previous report." in md
