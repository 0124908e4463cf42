"""Each rule set gives a reasoned result on the default deployment, through ``ekm audit``."""

from __future__ import annotations

from tests.audit_cli.conftest import findings, items


def test_fips_140_3_algorithms_pass_module_fails_with_reason(audit_json):
    res, doc = audit_json("--compliance", "fips-140-3", "--verbose")
    assert res.code == 1  # the software keystore is not a validated module (high)
    assert [rs["id"] for rs in doc["rule_sets"]] == ["ekm-integrity", "fips-140-3"]
    for key in ("rsa", "database_encryption", "session", "hmac", "jwt_signing", "api_master"):
        assert items(doc, "passed", "FIPS140-3-ALG", key), key
        assert not findings(doc, "FIPS140-3-ALG", key)
        (mod,) = findings(doc, "FIPS140-3-MODULE", key)
        assert mod["found"] == "file module: not validated"
        assert mod["severity"] == "high"
    # the key-file master key needs no KDF: the KDF rule does not apply at all
    assert not items(doc, "passed", "FIPS140-3-KDF") and not findings(doc, "FIPS140-3-KDF")
    assert doc["evaluated"]["keys"] == 7
    assert doc["summary"] == {"critical": 0, "high": 7, "medium": 0, "low": 0}
    assert "7 keys against" in res.stderr and "7 at or above high" in res.stderr


def test_fail_on_and_soft_fail_decide_the_exit_code(run):
    assert run("audit", "--compliance", "fips-140-3", "--fail-on", "critical").code == 0
    assert run("audit", "--compliance", "fips-140-3", "--fail-on", "HIGH").code == 1
    soft = run("audit", "--compliance", "fips-140-3", "--soft-fail")
    assert soft.code == 0 and "FIPS140-3-MODULE" in soft.stdout


def test_rsa_2048_fails_bsi_and_passes_nist_until_2031(run, audit_json):
    run("generate", "legacy", "--type", "rsa-2048", "--usage", "signing").expect_ok()
    res, bsi = audit_json("--compliance", "bsi-tr-02102-1")
    (f,) = findings(bsi, "BSI-RSA-3000")
    assert f["key"] == "legacy" and "2048" in f["found"], f
    assert not findings(bsi, "BSI-RSA-3000", "rsa")  # rsa-4096 meets the 3000-bit floor
    assert res.code == 1

    res, nist = audit_json("--compliance", "nist-800-57", "--fail-on", "high")
    assert not [x for x in nist["findings"] if x["key"] == "legacy"]
    assert res.code == 0

    res, later = audit_json("--compliance", "nist-800-57", "--as-of", "2031-01-01")
    (f,) = findings(later, "SP800-57-STRENGTH-2031", "legacy")
    assert "112" in f["found"] and later["as_of"] == "2031-01-01T00:00:00Z"
    assert not findings(later, "SP800-57-STRENGTH-2031", "rsa")
    assert res.code == 1


def test_hmac_keys_pass_fips_and_fail_cnsa_with_the_reason(audit_json):
    _, fips = audit_json("--compliance", "fips-140-3", "--verbose")
    _, cnsa = audit_json("--compliance", "cnsa-2.0")
    for key in ("hmac", "jwt_signing", "api_master", "api_internal"):
        assert items(fips, "passed", "FIPS140-3-ALG", key)
        (f,) = findings(cnsa, "CNSA2-HASH", key)
        assert f["found"] == "type hmac-sha256"


def test_without_compliance_all_rule_sets_run_and_it_says_so(run, audit_json):
    res, doc = audit_json("--verbose")
    assert "no --compliance given: evaluated all built-in rule sets" in res.stderr
    ids = {rs["id"] for rs in doc["rule_sets"]}
    assert {"fips-140-3", "hipaa", "pci-dss", "nist-800-57", "ekm-integrity"} <= ids
    # a fresh deployment has no backup yet: HIPAA says so for each key whose policy needs one
    assert {f["key"] for f in findings(doc, "HIPAA-164.308(a)(7)-BACKUP")} == {
        "database_encryption", "jwt_signing", "api_master", "api_internal", "hmac", "rsa",
    }  # fmt: skip
    # deployment facts all evaluated on an unlocked, healthy home
    for rule, found in (
        ("HIPAA-164.312(c)(1)-INTEGRITY", "MAC verified"),
        ("HIPAA-164.312(b)-AUDIT", "audit log chain intact"),
        ("HIPAA-164.312(a)(1)-ACCESS", "permissions private"),
        ("EKM-STORE-INTEGRITY", "7 key documents authenticated"),
    ):
        assert [p["found"] for p in items(doc, "passed", rule)] == [found]
        assert not findings(doc, rule)
    assert doc["unknown"] == [] and doc["warnings"] == []


def test_comma_list_and_list_command(run):
    res = run("audit", "--compliance", "hipaa,pci-dss", "--format", "json", "--soft-fail")
    assert res.code == 0
    import json

    assert [r["id"] for r in json.loads(res.stdout)["rule_sets"]] == [
        "ekm-integrity", "hipaa", "pci-dss",
    ]  # fmt: skip
    listed = run("audit", "--list").expect_ok()
    assert "fips-140-3" in listed.stdout and "SP 800-140C" in listed.stdout
    as_json = json.loads(run("--json", "audit", "--list").expect_ok().stdout)
    fips = next(s for s in as_json["rule_sets"] if s["id"] == "fips-140-3")
    assert fips["version"] == "2.0.0" and fips["rules"] == 7
    assert any(s["url"].startswith("https://") for s in fips["sources"])


def test_rotation_overdue_is_a_finding_as_of_later(audit_json):
    res, doc = audit_json("--compliance", "nist-800-57", "--as-of", "+8d")
    (f,) = findings(doc, "SP800-57-ROTATION", "session")  # rotates every 7 days
    assert "overdue" in f["found"]
    assert not findings(doc, "SP800-57-ROTATION", "rsa")
    assert f["severity"] == "medium" and res.code == 0  # below the default --fail-on high
    res, _ = audit_json("--compliance", "nist-800-57", "--as-of", "+8d", "--fail-on", "medium")
    assert res.code == 1
