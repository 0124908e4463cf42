"""Report formats: JSON shape, SARIF against the official 2.1.0 schema, JUnit via junitparser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ekm.compliance.engine import evaluate, load_rule_sets
from ekm.compliance.formats import table_rows, to_json, to_junit, to_markdown, to_sarif

from .builders import default_key_set, inv, key

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def result():
    keys = [*default_key_set(), key("rsa-2048", "legacy|rsa"), key("chacha20-poly1305", "stream")]
    facts = {"hsm_pin_in_config": True, "keystore_mac_ok": None}
    return evaluate(
        inv(*keys, **facts), load_rule_sets(["fips-140-3", "bsi-tr-02102-1", "pci-dss"])
    )


def test_json_shape(result):
    doc = to_json(result)
    json.dumps(doc)  # serialisable as is
    assert [r["id"] for r in doc["rule_sets"]] == ["fips-140-3", "bsi-tr-02102-1", "pci-dss"]
    assert doc["rule_sets"][0]["sources"][0]["id"] == "FIPS 140-3"
    assert doc["summary"] == result.summary()
    assert doc["evaluated"]["keys"] == 9
    assert doc["evaluated"]["rules"] == result.rules_evaluated
    assert len(doc["findings"]) == len(result.findings)
    f = next(x for x in doc["findings"] if x["rule"] == "BSI-RSA-3000")
    assert f["key"] == "legacy|rsa" and f["version"] == 1 and f["severity"] == "high"
    assert f["cite"].startswith("BSI TR-02102-1") and f["required"] == "key size >= 3000 bits"
    assert "key legacy|rsa v1" in f["message"]
    pin = next(x for x in doc["findings"] if x["rule"] == "PCI-8.3.2-PIN")
    assert pin["key"] is None and pin["version"] is None
    # passed results are part of the document without --verbose (issue 18)
    assert len(doc["passed"]) == len(result.passed) > 0
    assert doc["home"] == "/srv/ekm" and doc["home_id"] == "0011223344556677"
    assert doc["keystore"] == "keystore.json"
    assert doc["collected_at"] == "2026-11-28T12:00:00Z" and doc["as_of"] == doc["collected_at"]
    assert f["source"]["edition"] == "Version 2026-01" and f["source"]["status"] == "final"
    full = doc["rules"]["bsi-tr-02102-1/BSI-RSA-3000"]
    assert full["source"]["publisher"].startswith("Bundesamt") and "maps to" in full["mapping"]
    assert f["source"]["strength"] == "recommended" and f["source"]["draft_capped"] is False
    assert f["facts"]["type"] == "rsa-2048" and f["facts"]["strength"] == 112
    assert (
        f["facts"]["created"] and f["facts"]["age_days"] == 1 and f["facts"]["state"] == "primary"
    )
    assert pin["facts"]["home_id"] == "0011223344556677"


def test_json_lists_unknown_results(result):
    doc = to_json(result)
    assert [u["rule"] for u in doc["unknown"]] == ["FIPS140-3-SSP-STORAGE"]
    r2 = evaluate(inv(keystore_mac_ok=None), load_rule_sets(["hipaa"]))
    assert [u["rule"] for u in to_json(r2)["unknown"]] == ["HIPAA-164.312(c)(1)-INTEGRITY"]
    assert to_json(r2)["evaluated"]["unknown"] == 1


def test_sarif_validates_against_official_schema(result):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    doc = to_sarif(result, home="/srv/ekm home", tool_version="0.1.0")
    jsonschema.validate(doc, schema)  # raises on any violation
    run = doc["runs"][0]
    assert doc["version"] == "2.1.0"
    rules = run["tool"]["driver"]["rules"]
    assert len(rules) == len(result.rules)
    for r in rules:
        assert r["help"]["text"] and r["shortDescription"]["text"]
        assert 0 < float(r["properties"]["security-severity"]) <= 10
    assert run["originalUriBaseIds"]["EKMHOME"]["uri"] == "file:///srv/ekm%20home/"
    fails = [r for r in run["results"] if r["kind"] == "fail"]
    assert len(fails) == len(result.findings)
    passes = [r for r in run["results"] if r["kind"] == "pass"]
    assert len(passes) == len(result.passed) and all(r["level"] == "none" for r in passes)
    for res in fails:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["properties"]["facts"]
        phys = res["locations"][0]["physicalLocation"]["artifactLocation"]
        assert phys["uriBaseId"] == "EKMHOME"
    bsi = next(r for r in fails if r["ruleId"] == "BSI-RSA-3000")
    assert bsi["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "keystore.json"
    assert bsi["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "legacy|rsa/v1"
    assert bsi["level"] == "error"
    pin = next(r for r in run["results"] if r["ruleId"] == "PCI-8.3.2-PIN")
    assert pin["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "ekm.toml"
    assert "logicalLocations" not in pin["locations"][0]
    prints = [r["partialFingerprints"]["ekmFinding/v1"] for r in run["results"]]
    assert len(set(prints)) == len(prints)


def test_sarif_schema_catches_a_broken_document(result):
    """The schema check is real: a result without a message is rejected."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    doc = to_sarif(result, home="/h", tool_version="0.1.0")
    del doc["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_sarif_relative_home_and_empty_result():
    empty = evaluate(inv(), load_rule_sets(["nist-800-131a"]))
    doc = to_sarif(empty, home="rel dir", tool_version="9")
    assert doc["runs"][0]["results"] == []
    assert doc["runs"][0]["originalUriBaseIds"]["EKMHOME"]["uri"] == "rel%20dir/"


def test_junit_parses_with_one_suite_per_rule_set(result, tmp_path):
    from junitparser import Failure, JUnitXml, Skipped

    path = tmp_path / "audit.xml"
    path.write_text(to_junit(result), encoding="utf-8")
    xml = JUnitXml.fromfile(str(path))
    suites = {s.name: s for s in xml}
    assert list(suites) == ["fips-140-3", "bsi-tr-02102-1", "pci-dss"]
    bsi = suites["bsi-tr-02102-1"]
    cases = {(c.classname, c.name): c for c in bsi}
    rsa = cases[("bsi-tr-02102-1.BSI-RSA-3000", "legacy|rsa")]
    failures = [r for r in rsa.result if isinstance(r, Failure)]
    assert failures and failures[0].type == "high"
    assert "3000 bits" in failures[0].message
    ok = cases[("bsi-tr-02102-1.BSI-RSA-3000", "rsa")]
    assert ok.is_passed
    assert bsi.failures == sum(1 for c in bsi if any(isinstance(r, Failure) for r in c.result))
    assert bsi.tests == len(cases)
    pci = suites["pci-dss"]
    pin = next(c for c in pci if c.classname == "pci-dss.PCI-8.3.2-PIN")
    assert pin.name == "(deployment)" and not pin.is_passed
    total_failures = sum(s.failures for s in xml)
    assert total_failures == len({(f.rule.id, f.key) for f in result.findings})
    r2 = evaluate(inv(keystore_mac_ok=None), load_rule_sets(["hipaa"]))
    path.write_text(to_junit(r2), encoding="utf-8")
    skipped = [c for s in JUnitXml.fromfile(str(path)) for c in s if c.is_skipped]
    assert [c.classname for c in skipped] == ["hipaa.HIPAA-164.312(c)(1)-INTEGRITY"]
    assert isinstance(skipped[0].result[0], Skipped)


def test_junit_escapes_hostile_names():
    k = key("rsa-2048", 'x"<&>]]>')
    out = to_junit(evaluate(inv(k), load_rule_sets(["bsi-tr-02102-1"])))
    import xml.etree.ElementTree as ET

    root = ET.fromstring(out.split("?>", 1)[1])  # noqa: S314 (our own output)
    names = {c.get("name") for c in root.iter("testcase")}
    assert 'x"<&>]]>' in names


def test_markdown_report(result):
    md = to_markdown(result)
    assert md.startswith("# ekm compliance audit")
    assert "Evaluated 9 keys against" in md
    assert "| BSI-RSA-3000 (unverified) | legacy\\|rsa | 1 |" in md
    assert "BSI TR-02102-1 Version 2026-01" in md and "final" in md
    assert "## Not evaluated" in md and "## Passed" not in md
    assert "## Passed" in to_markdown(result, verbose=True)
    unverified = evaluate(inv(key("rsa-2048")), load_rule_sets(["nist-800-131a"]), as_of=None)
    assert "None." in to_markdown(unverified)


def test_table_rows(result):
    rows = table_rows(result, verbose=False)
    assert len(rows) == len(result.findings) + len(result.unknown)
    assert set(rows[0]) == {
        "status",
        "severity",
        "rule",
        "key",
        "version",
        "found",
        "required",
        "cite",
        "source",
        "facts",
    }
    assert rows[0]["severity"] == "high"  # sorted most severe first
    verbose = table_rows(result, verbose=True)
    assert len(verbose) == len(rows) + len(result.passed)
    assert {r["status"] for r in verbose} == {"fail", "pass", "unknown"}


def test_no_format_leaks_fingerprints_or_material():
    """Fingerprints identify material; no report should carry them."""
    from ekm.compliance.inventory import VersionRecord
    from ekm.crypto.keytypes import KeyState

    from .builders import NOW

    v = [VersionRecord(1, KeyState.PRIMARY, NOW, fingerprint="SECRETFP0123")]
    a, b = key("aes-256-gcm", "a", versions=v), key("aes-256-gcm", "b", versions=v)
    r = evaluate(inv(a, b), load_rule_sets("all"))
    assert r.findings
    blobs = [
        json.dumps(to_json(r, verbose=True)),
        json.dumps(to_sarif(r, home="/h", tool_version="1")),
        to_junit(r),
        to_markdown(r, verbose=True),
        json.dumps(table_rows(r, verbose=True)),
    ]
    for blob in blobs:
        assert "SECRETFP0123" not in blob
