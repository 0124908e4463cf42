"""The engine on the default key set, the dated transitions, unknown facts and rule-set lookup."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ekm.compliance.engine import (
    evaluate,
    list_rule_sets,
    load_rule_sets,
    strength_table,
)
from ekm.compliance.inventory import DeploymentFacts, Inventory, VersionRecord
from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage, spec
from ekm.errors import UsageError

from .builders import NOW, Y2031, Y2035, Y2036, days, default_key_set, inv, key

ALL_IDS = [
    "anssi",
    "bsi-tr-02102-1",
    "cnsa-2.0",
    "common-criteria",
    "fips-140-2",
    "fips-140-3",
    "hipaa",
    "nist-800-131a",
    "nist-800-53",
    "nist-800-57",
    "pci-dss",
    "soc2",
]


def _keys_with_findings(result, rule_prefix=""):
    return {(f.key, f.rule.id) for f in result.findings if f.rule.id.startswith(rule_prefix)}


def test_list_rule_sets_has_every_documented_id_with_sources():
    infos = list_rule_sets()
    assert [i.id for i in infos] == ALL_IDS
    for i in infos:
        assert i.title and i.version and i.rules > 0
        assert i.sources and all(s.id and s.title for s in i.sources)


def test_default_key_set_passes_fips_140_3_algorithms():
    result = evaluate(inv(*default_key_set()), load_rule_sets(["fips-140-3"]))
    assert result.findings == []
    passed = {(p.key, p.rule.id) for p in result.passed}
    for name in ("database_encryption", "jwt_signing", "hmac", "rsa", "session"):
        assert (name, "FIPS140-3-ALG") in passed
        assert (name, "FIPS140-3-MODULE") in passed


def test_default_key_set_under_every_rule_set_now():
    """Fresh default keys on a good deployment: only CNSA 2.0 (SHA-256 HMAC) objects.

    Changed on purpose (issue 18): rsa-4096 no longer gets a medium CNSA "plan the
    migration" finding; CNSA 1.0 (CNSSP-15 Annex B) allows RSA >= 3072 until the CNSA 2.0
    milestone for the key's use (2033 for custom applications).
    """
    result = evaluate(inv(*default_key_set()), load_rule_sets("all"))
    assert {f.rule.rule_set for f in result.findings} == {"cnsa-2.0"}
    assert _keys_with_findings(result) == {
        ("jwt_signing", "CNSA2-HASH"),
        ("api_master", "CNSA2-HASH"),
        ("api_internal", "CNSA2-HASH"),
        ("hmac", "CNSA2-HASH"),
    }
    assert result.unknown == []
    assert result.keys_evaluated == 7


def test_rsa_2048_fails_bsi_and_passes_nist_800_57_until_2031():
    keys = [*default_key_set(), key("rsa-2048", "legacy_rsa", rotate_every=None)]
    bsi = evaluate(inv(*keys), load_rule_sets(["bsi-tr-02102-1"]))
    assert _keys_with_findings(bsi) == {("legacy_rsa", "BSI-RSA-3000")}

    nist = load_rule_sets(["nist-800-57"])
    assert evaluate(inv(*keys), nist).findings == []
    # the snapshot ages by four years, so cryptoperiod rules fire; the strength rule must not
    eve = _keys_with_findings(evaluate(inv(*keys), nist, as_of=Y2031 - days(1)))
    assert ("legacy_rsa", "SP800-57-STRENGTH-2031") not in eve
    assert ("legacy_rsa", "SP800-57-CP-SIGN") in eve
    later = evaluate(inv(*keys), nist, as_of=Y2031)
    assert ("legacy_rsa", "SP800-57-STRENGTH-2031") in _keys_with_findings(later)
    assert ("rsa", "SP800-57-STRENGTH-2031") not in _keys_with_findings(later)


def test_2036_flags_rsa_and_ecc_while_ml_kem_and_ml_dsa_pass():
    """IR 8547 disallows quantum-vulnerable algorithms *after* 2035: from 2036-01-01 (issue 18:
    the rule used to fire on 2035-01-01). The source is a draft: low unless enforced."""
    keys = [
        key("rsa-4096", "rsa"),
        key("ec-p384", "ec"),
        key("ed25519", "ed"),
        key("ml-kem-768", "kem"),
        key("ml-dsa-65", "dsa"),
        key("x25519-ml-kem-768", "hybrid"),
    ]
    rs = load_rule_sets(["nist-800-131a"])
    for eve in (Y2035, Y2036 - days(1)):
        before = evaluate(inv(*keys), rs, as_of=eve)
        assert not [f for f in before.findings if f.rule.id == "IR8547-QV-2036"]
    after = evaluate(inv(*keys), rs, as_of=Y2036)
    hits = [f for f in after.findings if f.rule.id == "IR8547-QV-2036"]
    assert {f.key for f in hits} == {"rsa", "ec", "ed"}
    assert all(f.rule.severity == "low" and f.rule.declared_severity == "critical" for f in hits)
    assert {"kem", "dsa", "hybrid"}.isdisjoint({f.key for f in after.findings})
    enforced = evaluate(
        inv(*keys), load_rule_sets(["nist-800-131a"], enforce_drafts=True), as_of=Y2036
    )
    assert {f.rule.severity for f in enforced.findings if f.rule.id == "IR8547-QV-2036"} == {
        "critical"
    }


def test_processing_only_112_bit_key_is_not_an_applying_finding_in_2031():
    """A retired rsa-2048 version kept to verify old signatures is legacy use, not applying."""
    versions = [VersionRecord(1, KeyState.ACTIVE, NOW), VersionRecord(2, KeyState.DISABLED, NOW)]
    k = key("rsa-2048", "old", versions=versions)
    result = evaluate(inv(k), load_rule_sets(["nist-800-131a"]), as_of=Y2031)
    assert {f.rule.id for f in result.findings} == {
        "IR8547-112-DEPRECATED",
        "SP800-131A-112-LEGACY",
    }
    assert {f.version for f in result.findings} == {1}
    assert {f.rule.severity for f in result.findings} == {"low"}


def test_empty_inventory_reports_what_was_evaluated():
    empty = Inventory(home="/h", as_of=NOW, keys=[], deployment=DeploymentFacts())
    result = evaluate(empty, load_rule_sets("all"))
    assert result.keys_evaluated == 0
    assert result.rules_evaluated > 0
    assert result.findings == [] and result.passed == []
    # every deployment fact unknown: each deployment rule is reported as not evaluated
    assert result.unknown
    assert all(u.status == "unknown" and "not checked" in u.found for u in result.unknown)


def test_unknown_facts_are_not_passes():
    facts = DeploymentFacts()  # nothing checked
    k = key("aes-256-gcm")
    result = evaluate(inv(k, deployment=facts), load_rule_sets(["fips-140-3", "pci-dss"]))
    unknown = {u.rule.id for u in result.unknown}
    assert {"FIPS140-3-MODULE", "PCI-3.6.1.2-STORAGE", "PCI-10.2-AUDIT"} <= unknown
    assert unknown.isdisjoint({p.rule.id for p in result.passed})


def test_audit_chain_unknown_when_log_present_but_unverified():
    result = evaluate(inv(audit_log_present=True, audit_chain_ok=None), load_rule_sets(["hipaa"]))
    assert [u.rule.id for u in result.unknown] == ["HIPAA-164.312(b)-AUDIT"]
    assert "chain" in result.unknown[0].found


def test_fips_140_2_historical_from_2026_09_21():
    facts = {"module_validation": {"file": "fips-140-2"}}
    rs = load_rule_sets(["fips-140-2"])
    from datetime import datetime, timezone

    cutoff = datetime(2026, 9, 21, tzinfo=timezone.utc)
    assert evaluate(inv(key("aes-256-gcm"), **facts), rs, as_of=cutoff - days(1)).findings == []
    later = evaluate(inv(key("aes-256-gcm"), **facts), rs, as_of=cutoff)
    assert [f.rule.id for f in later.findings] == ["FIPS140-2-HISTORICAL"]
    assert "fips-140-2" in later.findings[0].found


def test_destroyed_material_finding_names_the_version():
    vs = [
        VersionRecord(1, KeyState.DESTROYED, NOW - days(100), material_present=True),
        VersionRecord(2, KeyState.DESTROYED, NOW - days(50), material_present=False),
        VersionRecord(3, KeyState.PRIMARY, NOW - days(1)),
    ]
    result = evaluate(inv(key("aes-256-gcm", "db", versions=vs)), load_rule_sets(["pci-dss"]))
    hits = [f for f in result.findings if f.rule.id == "PCI-3.7.5-DESTROY"]
    assert [(f.key, f.version) for f in hits] == [("db", 1)]
    assert "material still present" in hits[0].message


def test_same_material_under_two_names_names_the_other_key():
    a = key(
        "aes-256-gcm", "alpha", versions=[VersionRecord(1, KeyState.PRIMARY, NOW, fingerprint="x")]
    )
    b = key(
        "hmac-sha256", "beta", versions=[VersionRecord(4, KeyState.PRIMARY, NOW, fingerprint="x")]
    )
    result = evaluate(inv(a, b), load_rule_sets(["nist-800-57"]))
    hits = {(f.key, f.version, f.found) for f in result.findings if f.rule.id == "SP800-57-UNIQUE"}
    assert hits == {
        ("alpha", 1, "version 1 has the same material as beta"),
        ("beta", 4, "version 4 has the same material as alpha"),
    }


def test_usage_declared_that_the_type_cannot_serve():
    k = key("aes-256-gcm", "weird", usage="signing")
    result = evaluate(inv(k), load_rule_sets(["nist-800-57"]))
    hit = [f for f in result.findings if f.rule.id == "SP800-57-ONE-PURPOSE"]
    assert hit and hit[0].found == "aes-256-gcm declared for signing"


def test_backup_older_than_newest_version_names_that_version():
    vs = [
        VersionRecord(1, KeyState.ACTIVE, NOW - days(40)),
        VersionRecord(2, KeyState.PRIMARY, NOW),
    ]
    k = key("aes-256-gcm", "db", versions=vs, backup_required=True, last_backup=NOW - days(1))
    result = evaluate(inv(k), load_rule_sets(["hipaa"]))
    hit = [f for f in result.findings if f.rule.id == "HIPAA-164.308(a)(7)-BACKUP"]
    assert hit[0].version == 2 and "predates version 2" in hit[0].found
    # a key whose policy needs no backup is not evaluated by the rule at all
    k2 = replace(k, backup_required=False, last_backup=None)
    result2 = evaluate(inv(k2), load_rule_sets(["hipaa"]))
    assert not [r for r in result2.passed + result2.findings if r.rule.id.endswith("BACKUP")]


def test_at_or_above_and_summary():
    keys = [key("rsa-2048", "r"), key("chacha20-poly1305", "c")]
    result = evaluate(inv(*keys), load_rule_sets(["bsi-tr-02102-1", "anssi"]))
    summary = result.summary()
    assert list(summary) == ["critical", "high", "medium", "low"]
    assert summary == {"critical": 0, "high": 1, "medium": 1, "low": 1}
    assert [f.rule.id for f in result.at_or_above("high")] == ["BSI-RSA-3000"]
    assert len(result.at_or_above("low")) == 3
    assert result.at_or_above("critical") == []
    with pytest.raises(UsageError, match=r"unknown severity 'severe'; expected one of: low"):
        result.at_or_above("severe")


def test_findings_sorted_by_severity_first():
    keys = [key("rsa-2048", "r"), key("chacha20-poly1305", "c")]
    result = evaluate(inv(*keys), load_rule_sets(["bsi-tr-02102-1", "anssi"]))
    ranks = [f.rule.rank for f in result.findings]
    assert ranks == sorted(ranks, reverse=True)


def test_unknown_rule_set_is_a_usage_error_listing_valid_ids():
    with pytest.raises(UsageError) as exc:
        load_rule_sets(["fips-140-3", "sox"])
    assert exc.value.exit_code == 2
    assert "unknown rule set 'sox'" in str(exc.value)
    for i in ALL_IDS:
        assert i in str(exc.value)


def test_empty_rule_set_selection_is_a_usage_error():
    with pytest.raises(UsageError, match="no rule set named"):
        load_rule_sets("")


def test_comma_list_and_all():
    assert [r.id for r in load_rule_sets("hipaa, pci-dss,hipaa")] == ["hipaa", "pci-dss"]
    assert [r.id for r in load_rule_sets("all")] == ALL_IDS
    assert [r.id for r in load_rule_sets(["all"])] == ALL_IDS


def test_naive_as_of_is_refused():
    from datetime import datetime

    with pytest.raises(UsageError, match="timezone-aware"):
        evaluate(inv(), load_rule_sets("hipaa"), as_of=datetime(2031, 1, 1))


def test_strength_table_covers_every_type_and_agrees_with_keytypes():
    table = strength_table()
    for t in KeyType:
        assert table[t.value]["strength"] == spec(t).strength, t
    assert table["rsa-2048"]["strength"] == 112
    assert table["rsa-3072"]["strength"] == 128
    assert table["ec-p256"]["curve"] == "P-256"


def test_strength_floor_rule_fails_below_its_floor():
    """PCI's 112-bit floor has no failing ekm type; the same check fails a 128 floor."""
    rs = load_rule_sets(["pci-dss"])
    strong = next(r for r in rs[0].rules if r.id == "PCI-3.6.1-STRONG")
    name, floor = strong.checks[0]
    assert (name, floor) == ("min_strength", 112)
    assert min(v["strength"] for v in strength_table().values()) == 112


def test_every_rule_cites_and_unverified_rules_say_why():
    for rs in load_rule_sets("all"):
        for r in rs.rules:
            assert r.cite and r.title
            if not r.verified:
                assert len(r.note) > 20, r.id


def test_usage_filter_applies():
    """HIPAA's algorithm rule concerns encryption keys; a MAC key is not matched."""
    result = evaluate(inv(key("hmac-sha256", usage="mac")), load_rule_sets(["hipaa"]))
    assert not [r for r in result.passed if r.rule.id == "HIPAA-164.312(a)(2)(iv)-ALG"]
    k = key("rsa-2048", usage=KeyUsage.ENCRYPTION.value)
    result = evaluate(inv(k), load_rule_sets(["hipaa"]))
    assert [r.rule.id for r in result.passed if r.key == "rsa-2048"] == [
        "HIPAA-164.312(a)(2)(iv)-ALG",
        "HIPAA-KEYS-APART",
    ]


def test_docs_catalogue_lists_every_rule_and_every_unverified_rule():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "compliance.md").read_text()
    unverified = doc.split("### Unverified rules", 1)[1]
    for rs in load_rule_sets("all"):
        assert f"### {rs.id} ({rs.version})" in doc
        for r in rs.rules:
            assert f"| {r.id}" in doc, r.id
            assert (f"**{r.id}**" in unverified) == (not r.verified), r.id


def test_inventory_with_naive_time_is_refused():
    from datetime import datetime

    from ekm.errors import InvalidError

    naive = VersionRecord(3, KeyState.PRIMARY, datetime(2026, 1, 1))
    with pytest.raises(InvalidError) as exc:
        evaluate(inv(key("aes-256-gcm", "db", versions=[naive])), load_rule_sets("hipaa"))
    assert "key 'db' version 3: created has no timezone" in str(exc.value)
    assert exc.value.exit_code == 3


def test_inventory_with_duplicate_names_or_bad_types_is_refused():
    from ekm.errors import InvalidError

    with pytest.raises(InvalidError, match="key 'a' is listed twice"):
        evaluate(inv(key("aes-256-gcm", "a"), key("rsa-3072", "a")), load_rule_sets("hipaa"))
    bad = replace(key("aes-256-gcm", "s"), usage="encryption")
    with pytest.raises(InvalidError, match="key 's': type and usage must be"):
        evaluate(inv(bad), load_rule_sets("hipaa"))


def test_storage_classes_follow_backend_and_master_key_source():
    rs = load_rule_sets(["pci-dss"])

    def storage(k, **facts):
        r = evaluate(inv(k, **facts), rs)
        return [(x.status, x.found) for x in r.findings + r.passed + r.unknown
                if x.rule.id == "PCI-3.6.1.2-STORAGE"]  # fmt: skip

    aes = key("aes-256-gcm")
    assert storage(replace(aes, backend="pkcs11")) == [("pass", "stored hsm")]
    assert storage(replace(aes, backend="vault")) == [("pass", "stored kms")]
    assert storage(aes, master_key_source="vault-transit") == [("pass", "stored wrapped-kms")]
    assert storage(aes, master_key_source="key-file") == [("fail", "stored wrapped-keyfile")]
    assert storage(aes, master_key_source=None) == [("unknown", "master key source not checked")]
    assert storage(replace(aes, backend="floppy")) == [("fail", "stored unknown backend 'floppy'")]


def test_retired_versions_only_concern_active_superseded_versions():
    """``retire_after`` (custom rules only since PCI-3.7.5-RETIRED was removed: its 90-day
    grace period was not PCI's) judges active superseded versions only."""
    from ekm.compliance.ruleset import parse_rule_set

    custom = parse_rule_set(
        'id = "acme"\ntitle = "t"\nversion = "1"\n[[rule]]\nid = "RETIRE"\ntitle = "t"\n'
        'severity = "medium"\ncite = "acme 1"\n[rule.require]\nretire_after = "90d"\n',
        "acme.toml",
        custom=True,
    )
    vs = [
        VersionRecord(1, KeyState.DISABLED, NOW - days(400)),
        VersionRecord(2, KeyState.ACTIVE, NOW - days(300)),
        VersionRecord(3, KeyState.PRIMARY, NOW - days(200)),
        VersionRecord(4, KeyState.PENDING, NOW - days(1)),
    ]
    r = evaluate(inv(key("aes-256-gcm", "db", versions=vs)), [custom])
    hits = [(f.version, f.status) for f in r.findings + r.passed if f.rule.id == "RETIRE"]
    assert hits == [(2, "fail")]
    assert "PCI-3.7.5-RETIRED" not in {r.id for r in load_rule_sets("pci-dss")[0].rules}


def test_migrated_key_judges_each_version_by_its_own_algorithm():
    """rsa-2048 v1 kept for verification after migrating to rsa-3072 v2 (key_type set)."""
    vs = [
        VersionRecord(1, KeyState.ACTIVE, NOW - days(30)),
        VersionRecord(2, KeyState.PRIMARY, NOW - days(1), key_type=KeyType.RSA_3072),
    ]
    k = key("rsa-2048", "signer", versions=vs, rotate_every=365)
    bsi = evaluate(inv(k), load_rule_sets(["bsi-tr-02102-1"]))
    assert [(f.rule.id, f.version) for f in bsi.findings] == [("BSI-RSA-3000", 1)]
    assert [(p.rule.id, p.version) for p in bsi.passed] == [("BSI-RSA-3000", 2)]

    later = evaluate(inv(k), load_rule_sets(["nist-800-131a", "nist-800-57"]), as_of=Y2031)
    ids = {(f.rule.id, f.version) for f in later.findings}
    assert ("IR8547-112-DEPRECATED", 1) in ids  # 112-bit RSA deprecated after 2030
    assert ("SP800-57-LEGACY-2031", 1) in ids  # processing with 112 bits: legacy use
    assert not any(i == "SP800-57-STRENGTH-2031" for i, _ in ids)  # the primary is 128-bit
    # policy checks (rotation) run once for the key, on its primary
    rot = [r for r in later.findings + later.passed if r.rule.id == "SP800-57-ROTATION"]
    assert [(r.version, r.status) for r in rot] == [(2, "fail")]
