"""The HTML report: self-contained, script-free, escaped, and its summary adds up to its tables."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekm.errors import InvalidError
from ekm.report.html import render_html
from ekm.report.model import ReportData
from tests.report.htmlscan import scan
from tests.report.synthetic import FINGERPRINT, HEAD, fixed_keys, report

SECRET = "S3CR3T-KEY-MATERIAL-0123456789abcdef"


def test_self_contained_no_scripts_no_fetches(data: ReportData) -> None:
    html = render_html(data)
    s = scan(html)
    assert s.tags["script"] == 0
    for tag in ("link", "img", "iframe", "object", "embed", "base", "form"):
        assert s.tags[tag] == 0, tag
    for tag, name, value in s.attrs:
        assert name not in ("src", "href", "xlink:href", "srcset", "action"), (tag, name, value)
        assert not name.startswith("on"), (tag, name)  # no event handlers
    assert "@import" not in html and "url(" not in html
    csp = [v for t, k, v in s.attrs if t == "meta" and k == "content" and "default-src" in v]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]
    assert "@media print" in html and "@page" in html


def test_exactly_one_svg_per_chart(data: ReportData) -> None:
    s = scan(render_html(data))
    assert s.tags["svg"] == 4
    assert s.tags["figure"] == 4


def test_summary_adds_up_to_the_tables(data: ReportData) -> None:
    s = scan(render_html(data))
    fig = {k: int(v) for k, v in s.figures.items()}
    inventory = s.tables["inventory-table"]
    findings = s.tables["findings-table"]
    assert fig["keys"] == len(inventory) == len(data.keys) == 46
    assert fig["due-30d"] == len(s.tables["due-table"])
    due_column = Counter(row[-1] for row in inventory)
    assert fig["overdue"] == due_column["overdue"] > 0
    assert fig["soon"] == due_column["soon"] > 0
    assert fig["no-policy"] == due_column["none"] > 0
    by_type = Counter(row[1] for row in inventory)
    by_backend = Counter(row[3] for row in inventory)
    assert {k: v for k, v in fig.items() if k.startswith("type:")} == {
        f"type:{t}": n for t, n in by_type.items()
    }
    assert {k: v for k, v in fig.items() if k.startswith("backend:")} == {
        f"backend:{b}": n for b, n in by_backend.items()
    }
    assert fig["findings"] == len(findings) == 4
    per_set = Counter(row[0] for row in findings)
    for rs in data.compliance:
        assert fig[f"ruleset:{rs.id}"] == per_set.get(rs.id, 0)
    assert fig["alerts"] == len(s.tables["alerts-table"]) == 2
    assert fig["rotations"] == sum(d.rotations for d in data.activity) > 0
    assert fig["failures"] == sum(d.failures for d in data.activity) > 0
    assert fig["keys-added"] == 1 and fig["keys-rotated"] == 1
    compliance_text = "".join(s.text)
    assert "1 finding1 high; 11/12 rules passed" in compliance_text
    assert "0 findingspass; 9/9 rules passed" in compliance_text
    assert len(s.tables["findings-new"]) == 1 and len(s.tables["findings-resolved"]) == 1


def test_findings_table_has_rule_key_version_severity_requirement_citation(small) -> None:
    s = scan(render_html(small))
    row = s.tables["findings-table"][0]
    assert row == [
        "pci-dss-4",
        "rotation.max-age",
        "database_encryption",
        "2",
        "high",
        "primary version is 120 days old",
        "rotate at least every 90 days",
        "PCI DSS 4.0 3.7.4",
    ]
    # a URL in a citation is text, never a link
    assert any("https://csrc.nist.gov" in r[-1] for r in s.tables["findings-table"])


def test_evidence_ties_the_document_to_config_and_log(small: ReportData) -> None:
    text = "".join(scan(render_html(small)).text)
    for needle in (
        HEAD,
        FINGERPRINT,
        "0.1.0",
        "/var/lib/ekm",
        "chain intact (200 records)",
        "2026-01-01T00:00:00Z to 2026-03-31T12:00:00Z (UTC)",
    ):
        assert needle in text


def test_broken_chain_is_shouted(small: ReportData) -> None:
    import dataclasses

    broken = dataclasses.replace(
        small,
        audit_log=dataclasses.replace(small.audit_log, chain_ok=False, first_bad="record 17"),
    )
    html = render_html(broken)
    assert 'class="bad">chain BROKEN at record 17 (200 records); run `ekm audit --verify-log`' in (
        html.replace("&#x27;", "'")
    )


def test_hostile_text_is_escaped(small: ReportData) -> None:
    html = render_html(small)
    s = scan(html)
    assert s.tags["script"] == 0
    assert [r[0] for r in s.tables["inventory-table"] if "alert" in r[0]] == [
        "<script>alert(1)</script>|x"
    ]


def test_material_never_rendered(small: ReportData) -> None:
    doc = small.to_dict()
    for row in doc["keys"]:
        row["material"] = SECRET
        row["secret"] = SECRET
    html = render_html(ReportData.from_dict(doc))
    assert SECRET not in html


def test_empty_report_renders(small: ReportData) -> None:
    import dataclasses

    empty = dataclasses.replace(
        small,
        keys=[],
        compliance=[],
        findings=[],
        activity=[],
        alerts=[],
        changes=type(small.changes)(),
    )
    s = scan(render_html(empty))
    assert s.figures["keys"] == "0"
    assert "inventory-table" not in s.tables
    text = "".join(s.text)
    assert "No keys." in text and "No findings." in text and "no previous report" in text.lower()
    assert s.tags["svg"] == 4


def test_inconsistent_model_is_refused(small: ReportData) -> None:
    import dataclasses

    with pytest.raises(InvalidError, match="summary counts"):
        render_html(dataclasses.replace(small, findings=[]))


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_key_name_round_trips_as_text(name: str) -> None:
    import dataclasses

    base = report(extra_keys=0, n_events=10)
    key = dataclasses.replace(fixed_keys()[3], name=name)
    s = scan(render_html(dataclasses.replace(base, keys=[key])))
    assert s.tags["script"] == 0
    # html.parser normalises CR and NUL like a browser would; compare what a browser shows
    shown = s.tables["inventory-table"][0][0]
    assert shown == name or "\r" in name or "\x00" in name
