"""Long tables at scale: findings grouped by rule, rows listed up to a bound, JSON keeps all.

A synthetic model with 1,000 findings over 300 keys (and 450 alerts) stands in for the
70,000 of a 10,000-key home: big enough to cross every bound, small enough to stay fast.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from datetime import timedelta

import pytest

from ekm.report import digest as dg
from ekm.report import render
from ekm.report.html import render_html
from ekm.report.markdown import render_markdown
from ekm.report.model import AlertRow, FindingRow, ReportData, RuleSetSummary
from tests.report.htmlscan import scan
from tests.report.synthetic import AS_OF, report

RULES = [  # (rule set, rule, severity, requirement)
    ("nist-800-57", "rotation.cryptoperiod", "high", "cryptoperiod <= 90d"),
    ("nist-800-57", "backup.required", "medium", "a backup newer than the primary"),
    ("pci-dss-4", "strength.min", "critical", "strength >= 128 bits"),
    ("pci-dss-4", "labels.owner", "low", "label owner"),
]
N_KEYS = 300


def _finding(i: int, rule: tuple[str, str, str, str], key: str | None) -> FindingRow:
    rs, rid, sev, need = rule
    return FindingRow(rid, rs, key, 1 + i % 3, sev, f"finding {i}", need, f"{rs} cite")


@pytest.fixture(scope="module")
def big() -> ReportData:
    """1,000 findings: rule r hits keys i with i % (r + 1) == 0, plus one deployment finding."""
    base = report(extra_keys=0, n_events=50)
    rows: list[FindingRow] = []
    for r, rule in enumerate(RULES):
        rows += [_finding(i, rule, f"key_{i:05d}") for i in range(N_KEYS) if i % (r + 1) == 0]
    # the engine's table order is by rule, not severity: the bound must rank by severity
    rows.insert(0, _finding(-1, ("pci-dss-4", "deploy.perms", "low", "home mode 0700"), None))
    # one rule whose requirement differs between its findings
    rows += [
        _finding(i, ("pci-dss-4", "rotation.max-age", "high", f"every {30 + i}d"), f"key_{i:05d}")
        for i in range(3)
    ]
    by_set: dict[str, Counter[str]] = {}
    for f in rows:
        by_set.setdefault(f.rule_set, Counter())[f.severity] += 1
    alerts = [
        AlertRow(AS_OF - timedelta(minutes=450 - i), "medium", "key.overdue", f"key_{i:05d}", "x")
        for i in range(450)
    ]
    return dataclasses.replace(
        base,
        findings=rows,
        compliance=[RuleSetSummary(s, s.upper(), dict(c), 1, 9) for s, c in by_set.items()],
        alerts=alerts,
        changes=dataclasses.replace(base.changes, findings_new=rows, findings_resolved=[]),
    ).validate()


def test_groups_count_every_finding_keys_and_examples(big: ReportData) -> None:
    groups = dg.group_findings(big.findings)
    assert sum(g.findings for g in groups) == len(big.findings) == 629
    assert [g.severity for g in groups] == ["critical", "high", "high", "medium", "low", "low"]
    crit = groups[0]
    assert (crit.rule_set, crit.rule, crit.findings, crit.keys) == ("pci-dss-4", "strength.min",
                                                                   100, 100)  # fmt: skip
    assert crit.examples == ("key_00000", "key_00003", "key_00006")
    assert crit.required == "strength >= 128 bits" and crit.cite == "pci-dss-4 cite"
    varied = next(g for g in groups if g.rule == "rotation.max-age")
    assert varied.required == "every 30d (and 2 other values)"
    deploy = next(g for g in groups if g.rule == "deploy.perms")
    assert (deploy.findings, deploy.keys, deploy.examples) == (1, 0, ("deployment",))


def test_bound_lists_the_most_severe_first_and_counts_the_rest(big: ReportData) -> None:
    shown, more = dg.first_by_severity(big.findings)
    assert len(shown) == dg.LIST_LIMIT == 200 and more == len(big.findings) - 200
    assert [f.severity for f in shown[:100]] == ["critical"] * 100
    assert {f.severity for f in shown[100:]} == {"high"}
    # table order is kept within a severity
    assert [f.key for f in shown[:3]] == ["key_00000", "key_00003", "key_00006"]
    few, none_left = dg.first_by_severity(big.findings[:5])
    assert few == big.findings[:5] and none_left == 0  # small tables are not reordered


def test_latest_alerts_keeps_the_newest_in_time_order(big: ReportData) -> None:
    shown, older = dg.latest_alerts(big.alerts)
    assert older == 250 and shown == big.alerts[250:]
    assert dg.latest_alerts(big.alerts[:3]) == (big.alerts[:3], 0)


def test_html_grouped_table_adds_up_to_the_summary_and_rows_are_bounded(big: ReportData) -> None:
    s = scan(render_html(big))
    fig = {k: int(v) for k, v in s.figures.items()}
    grouped = s.tables["findings-by-rule"]
    assert fig["findings"] == sum(int(row[3]) for row in grouped) == 629
    for rs in big.compliance:
        assert fig[f"ruleset:{rs.id}"] == sum(int(r[3]) for r in grouped if r[0] == rs.id)
    assert grouped[0][:6] == ["pci-dss-4", "strength.min", "critical", "100", "100",
                              "key_00000, key_00003, key_00006"]  # fmt: skip
    assert len(s.tables["findings-table"]) == 200
    assert len(s.tables["findings-new"]) == 200
    assert len(s.tables["alerts-table"]) == 200 and fig["alerts"] == 450
    text = " ".join(" ".join(s.text).split())
    assert (
        "Only the first 200 of 629 findings by severity are listed; 429 more are not. The table "
        "above counts every one by rule, and `ekm report --format json` or `ekm audit --format "
        "json` lists each of them."
    ) in text
    assert "Only the 200 most recent of 450 alerts are listed; 250 older ones are not." in text


def test_markdown_grouped_and_bounded(big: ReportData) -> None:
    md = render_markdown(big)
    section = md.split("### By rule (6 rules)\n", 1)[1].split("### Individual findings", 1)
    grouped = [ln for ln in section[0].splitlines() if ln.startswith("| ") and "---" not in ln]
    assert len(grouped) == 7  # heading + 6 rules
    counts = [int(re.split(r"(?<!\\)\|", ln)[4]) for ln in grouped[1:]]
    assert sum(counts) == 629
    listed = section[1].split("## Compliance by rule set", 1)[0]
    assert len([ln for ln in listed.splitlines() if ln.startswith("| ")]) == 1 + 200
    assert "Only the first 200 of 629 findings by severity are listed; 429 more are not." in listed
    assert "Only the 200 most recent of 450 alerts are listed; 250 older ones are not." in md


def test_pdf_states_the_bound(big: ReportData, tmp_path) -> None:
    import subprocess

    path = tmp_path / "r.pdf"
    path.write_bytes(render(big, "pdf"))
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, check=True,
                          text=True).stdout  # fmt: skip
    flat = " ".join(text.split())
    assert "By rule (6 rules)" in flat
    assert "Only the first 200 of 629 findings by severity are listed; 429 more are not." in flat
    assert "Only the 200 most recent of 450 alerts are listed; 250 older ones are not." in flat
    assert "finding 299" not in flat  # a low-severity row past the bound is not printed


def test_json_keeps_every_finding_and_alert_one_per_line(big: ReportData) -> None:
    out = render(big, "json")
    doc = json.loads(out)
    assert len(doc["findings"]) == 629 and len(doc["alerts"]) == 450
    assert len(doc["changes"]["findings_new"]) == 629
    assert doc == json.loads(json.dumps(big.to_dict()))
    assert ReportData.from_dict(doc).findings == big.findings
    lines = out.decode().splitlines()
    assert sum(1 for ln in lines if ln.lstrip().startswith('{"rule": ')) == 2 * 629
    assert lines[0] == "{" and lines[1].startswith('  "generated_at": ')


def test_json_layout_of_empty_and_nested_values() -> None:
    from ekm.jsonout import dumps

    doc = {"a": [], "b": {}, "c": {"d": [1, {"e": "ü"}]}, "f": None}
    out = dumps(doc)
    assert json.loads(out) == doc
    assert out.decode() == (
        '{\n  "a": [],\n  "b": {},\n  "c": {\n    "d": [\n      1,\n      {"e": "ü"}\n    ]\n'
        '  },\n  "f": null\n}\n'
    )
