"""Every rule carries its source as data; the documented severity mapping holds; the
catalogue in docs/compliance.md is generated from the rule files and may not drift."""

from __future__ import annotations

import re

import pytest

from ekm.compliance import docgen
from ekm.compliance.engine import evaluate, load_rule_sets
from ekm.compliance.explain import explain_text, rule_source
from ekm.compliance.ruleset import SEVERITY_RANK, STRENGTHS, parse_rule_set
from ekm.errors import InvalidError

from .builders import inv, key


def _all_rules():
    return [r for rs in load_rule_sets("all", enforce_drafts=True) for r in rs.rules]


def test_every_builtin_rule_names_source_section_and_strength():
    for rs in load_rule_sets("all", enforce_drafts=True):
        for s in rs.sources:
            assert s.title and s.publisher and s.edition and s.status in ("final", "draft")
            assert re.fullmatch(r"\d{4}(-\d{2}){0,2}", s.date), (rs.id, s.id)
        for r in rs.rules:
            assert r.source is not None and r.source in rs.sources, r.id
            assert r.section and r.strength in STRENGTHS, r.id
            low, high, _ = STRENGTHS[r.strength]
            assert SEVERITY_RANK[low] <= SEVERITY_RANK[r.declared_severity] <= SEVERITY_RANK[high]
            assert r.source.id in r.cite and r.source.edition in r.cite, r.id


def test_superseded_editions_are_gone():
    """The 2025-01 BSI edition, ANSSI's RecomFact-1 for the mandatory rule, PCI 3.7.9."""
    cites = {r.id: r.cite for r in _all_rules()}
    assert "Version 2026-01" in cites["BSI-RSA-3000"]
    assert not any("2025-01" in c for c in cites.values())
    assert "RègleFact-2" in cites["ANSSI-RSA-BEYOND-2030"]
    assert "3.7.9" not in cites["PCI-3.6.1.1-INVENTORY"]
    assert "3.7.8" in cites["PCI-3.7.8-ATTEST"]


def test_drafts_are_marked_and_capped():
    drafts = {r.id for r in _all_rules() if r.draft}
    assert {"IR8547-112-DEPRECATED", "IR8547-QV-2036", "FIPS140-2-ALG"} <= drafts
    capped = [r for rs in load_rule_sets("all") for r in rs.rules if r.draft]
    assert all(r.severity == "low" for r in capped)
    assert all("(draft)" in r.cite for r in capped)
    doc = rule_source(next(r for r in capped if r.id == "IR8547-QV-2036"))
    assert doc["draft_capped"] and doc["declared_severity"] == "critical"
    assert doc["source"]["status"] == "draft"


def test_custom_rule_with_a_draft_source_is_capped_too():
    rs = parse_rule_set(
        'id = "acme"\ntitle = "t"\nversion = "1"\n'
        '[[sources]]\nid = "A"\ntitle = "A draft"\nstatus = "draft"\n'
        '[[rule]]\nid = "R"\ntitle = "t"\nseverity = "high"\nsource = "A"\nsection = "1"\n'
        'strength = "shall"\n[rule.require]\nmin_strength = 256\n',
        "acme.toml",
        custom=True,
    )
    from ekm.compliance.ruleset import cap_drafts

    (r,) = cap_drafts(rs).rules
    assert r.severity == "low" and r.declared_severity == "high"
    result = evaluate(inv(key("rsa-3072")), [cap_drafts(rs)])
    assert [f.rule.severity for f in result.findings] == ["low"]


@pytest.mark.parametrize(
    ("severity", "strength", "error"),
    [
        ("critical", "should", "outside the range low..medium documented for strength 'should'"),
        ("low", "disallowed", "outside the range high..critical"),
        ("high", "must-ish", "expected one of: shall"),
    ],
)
def test_severity_outside_the_documented_mapping_is_refused(severity, strength, error):
    text = (
        'id = "acme"\ntitle = "t"\nversion = "1"\n'
        '[[rule]]\nid = "R"\ntitle = "t"\n'
        f'severity = "{severity}"\ncite = "x"\nstrength = "{strength}"\n'
        "[rule.require]\nmin_strength = 128\n"
    )
    with pytest.raises(InvalidError) as exc:
        parse_rule_set(text, "acme.toml", custom=True)
    assert "acme.toml: rule 'R'" in str(exc.value) and error in str(exc.value)


def test_builtin_rule_without_a_source_is_refused():
    text = (
        'id = "x"\ntitle = "t"\nversion = "1"\n'
        'sources = [{ id = "S", title = "s", publisher = "p", edition = "1", date = "2020" }]\n'
        '[[rule]]\nid = "R"\ntitle = "t"\nseverity = "high"\ncite = "S 1"\n'
        "[rule.require]\nmin_strength = 128\n"
    )
    with pytest.raises(InvalidError, match="field 'source': missing"):
        parse_rule_set(text, "x.toml")


def test_explain_names_the_edition_and_date():
    rule = next(r for r in _all_rules() if r.id == "BSI-KA-CLASSICAL-2032")
    text = "\n".join(explain_text(rule))
    assert "Version 2026-01 (2026-01-23), final" in text
    assert "in force:  from 2032-01-01" in text
    assert "labels" not in text  # this rule matches no label


def test_docs_catalogue_does_not_drift():
    """docs/compliance.md's catalogue is what docgen renders from the rule files now."""
    current = docgen.DOC.read_text(encoding="utf-8")
    assert docgen.update(current) == current, "run: python -m ekm.compliance.docgen"
    assert docgen.main(["--check"]) == 0
    for r in _all_rules():
        assert f"| {r.id}" in current
    # no link leaves the repository: source addresses are code, not links
    catalogue = current.split(docgen.BEGIN, 1)[1].split(docgen.END, 1)[0]
    assert "](http" not in catalogue


def test_docs_drift_is_detected(tmp_path, monkeypatch):
    stale = docgen.DOC.read_text(encoding="utf-8").replace("| CNSA2-SYM |", "| CNSA2-X |")
    fake = tmp_path / "compliance.md"
    fake.write_text(stale, encoding="utf-8")
    monkeypatch.setattr(docgen, "DOC", fake)
    assert docgen.main(["--check"]) == 1
    assert docgen.main([]) == 0
    assert "| CNSA2-SYM |" in fake.read_text(encoding="utf-8")
