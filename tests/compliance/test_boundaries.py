"""Every dated verdict at the day before and the day of its boundary, for every key type.

The expected sets below are written out by hand from the sources (not read from the rule
files), so a wrong date or a wrong type selection in the data fails here. A boundary "from
D" means the rule fires on D at 00:00 UTC and not on D-1; "until D" means it still fires on D
and no longer on D+1.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ekm.compliance.engine import evaluate, load_rule_sets
from ekm.compliance.inventory import VersionRecord
from ekm.crypto.keytypes import KeyState, KeyType, spec

from .builders import NOW, days, inv, key

ALL_TYPES = [t.value for t in KeyType]
QV = {"rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ed25519", "x25519"}


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=timezone.utc)


def _usage(t: str, prefer: str) -> str:
    usages = {u.value for u in spec(t).usages}
    return prefer if prefer in usages else sorted(usages)[0]


def failing(rule: str, set_id: str, when: datetime, *, prefer: str = "signing",
            labels: dict[str, str] | None = None, state: KeyState = KeyState.PRIMARY,
            enforce: bool = False, **facts) -> set[str]:  # fmt: skip
    """The key types (one key of each) that ``rule`` finds against at ``when``."""
    keys = []
    for t in ALL_TYPES:
        versions = [VersionRecord(1, state, NOW - days(1))]
        keys.append(
            key(
                t,
                t,
                usage=_usage(t, prefer),
                versions=versions,
                labels={"owner": "o", **(labels or {})},
            )
        )
    result = evaluate(
        inv(*keys, **facts), load_rule_sets([set_id], enforce_drafts=enforce), as_of=when
    )
    return {f.key for f in result.findings if f.rule.id == rule}


@pytest.mark.parametrize(
    ("rule", "set_id", "eve", "first", "types", "kw"),
    [
        # SP 800-57 Pt 1 Table 4: 112-bit applying protection disallowed after 2030
        ("SP800-57-STRENGTH-2031", "nist-800-57", day(2030, 12, 31), day(2031, 1, 1),
         {"rsa-2048"}, {}),
        ("SP800-131A-112-2031", "nist-800-131a", day(2030, 12, 31), day(2031, 1, 1),
         {"rsa-2048"}, {}),
        # ... processing with it is legacy use (superseded, active versions)
        ("SP800-57-LEGACY-2031", "nist-800-57", day(2030, 12, 31), day(2031, 1, 1),
         {"rsa-2048"}, {"state": KeyState.ACTIVE}),
        ("SP800-131A-112-LEGACY", "nist-800-131a", day(2030, 12, 31), day(2031, 1, 1),
         {"rsa-2048"}, {"state": KeyState.ACTIVE}),
        # NIST IR 8547 (draft): 112-bit QV deprecated after 2030, all QV disallowed after 2035
        ("IR8547-112-DEPRECATED", "nist-800-131a", day(2030, 12, 31), day(2031, 1, 1),
         {"rsa-2048"}, {}),
        ("IR8547-QV-2036", "nist-800-131a", day(2035, 12, 31), day(2036, 1, 1), QV, {}),
        # CNSA 2.0 milestones by use ("by YEAR" = from 1 January of YEAR)
        ("CNSA2-SWSIGN-PREFER", "cnsa-2.0", day(2024, 12, 31), day(2025, 1, 1), QV,
         {"labels": {"cnsa-use": "software-signing"}}),
        ("CNSA2-SWSIGN-EXCLUSIVE", "cnsa-2.0", day(2029, 12, 31), day(2030, 1, 1), QV,
         {"labels": {"cnsa-use": "software-signing"}}),
        ("CNSA2-NET-PREFER", "cnsa-2.0", day(2025, 12, 31), day(2026, 1, 1), QV,
         {"labels": {"cnsa-use": "networking"}}),
        ("CNSA2-NET-EXCLUSIVE", "cnsa-2.0", day(2029, 12, 31), day(2030, 1, 1), QV,
         {"labels": {"cnsa-use": "networking"}}),
        ("CNSA2-WEB-PREFER", "cnsa-2.0", day(2024, 12, 31), day(2025, 1, 1), QV,
         {"labels": {"cnsa-use": "web-cloud"}}),
        ("CNSA2-WEB-EXCLUSIVE", "cnsa-2.0", day(2032, 12, 31), day(2033, 1, 1), QV,
         {"labels": {"cnsa-use": "web-cloud"}}),
        ("CNSA2-OS-PREFER", "cnsa-2.0", day(2026, 12, 31), day(2027, 1, 1), QV,
         {"labels": {"cnsa-use": "os"}}),
        ("CNSA2-OS-EXCLUSIVE", "cnsa-2.0", day(2032, 12, 31), day(2033, 1, 1), QV,
         {"labels": {"cnsa-use": "os"}}),
        ("CNSA2-NICHE-PREFER", "cnsa-2.0", day(2029, 12, 31), day(2030, 1, 1), QV,
         {"labels": {"cnsa-use": "niche"}}),
        ("CNSA2-NICHE-EXCLUSIVE", "cnsa-2.0", day(2032, 12, 31), day(2033, 1, 1), QV,
         {"labels": {"cnsa-use": "niche"}}),
        ("CNSA2-CUSTOM-2033", "cnsa-2.0", day(2032, 12, 31), day(2033, 1, 1), QV, {}),
        ("CNSA2-CUSTOM-2033", "cnsa-2.0", day(2032, 12, 31), day(2033, 1, 1), QV,
         {"labels": {"cnsa-use": "custom"}}),
        # BSI TR-02102-1 2026-01: classical key agreement alone until end of 2031 (2030 for
        # very high protection needs); classical signatures alone until end of 2035
        ("BSI-KA-CLASSICAL-2032", "bsi-tr-02102-1", day(2031, 12, 31), day(2032, 1, 1),
         {"rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "x25519"},
         {"prefer": "key-agreement"}),
        ("BSI-KA-CLASSICAL-VHIGH-2031", "bsi-tr-02102-1", day(2030, 12, 31), day(2031, 1, 1),
         {"rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "x25519"},
         {"prefer": "key-agreement", "labels": {"protection-need": "very-high"}}),
        ("BSI-SIG-CLASSICAL-2036", "bsi-tr-02102-1", day(2035, 12, 31), day(2036, 1, 1),
         {"rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "ed25519"}, {}),
        # ANSSI RègleFact-2: 3072 bits for any RSA key in use beyond 2030
        ("ANSSI-RSA-BEYOND-2030", "anssi", day(2030, 12, 31), day(2031, 1, 1), {"rsa-2048"},
         {}),
        # CMVP: FIPS 140-2 certificates historical from 2026-09-21
        ("FIPS140-2-HISTORICAL", "fips-140-2", day(2026, 9, 20), day(2026, 9, 21),
         set(ALL_TYPES), {"module_validation": {"file": "fips-140-2"}}),
    ],
)  # fmt: skip
def test_boundary(rule, set_id, eve, first, types, kw):
    """Nothing the day before; exactly ``types`` from the boundary day on."""
    assert failing(rule, set_id, eve, **kw) == set()
    assert failing(rule, set_id, first, **kw) == types


@pytest.mark.parametrize(
    ("rule", "set_id", "last", "types", "kw"),
    [
        ("IR8547-112-DEPRECATED", "nist-800-131a", day(2035, 12, 31), {"rsa-2048"}, {}),
        ("CNSA2-SWSIGN-PREFER", "cnsa-2.0", day(2029, 12, 31), QV,
         {"labels": {"cnsa-use": "software-signing"}}),
        ("CNSA2-NET-PREFER", "cnsa-2.0", day(2029, 12, 31), QV,
         {"labels": {"cnsa-use": "networking"}}),
        ("CNSA2-WEB-PREFER", "cnsa-2.0", day(2032, 12, 31), QV,
         {"labels": {"cnsa-use": "web-cloud"}}),
        ("CNSA2-OS-PREFER", "cnsa-2.0", day(2032, 12, 31), QV, {"labels": {"cnsa-use": "os"}}),
        ("CNSA2-NICHE-PREFER", "cnsa-2.0", day(2032, 12, 31), QV,
         {"labels": {"cnsa-use": "niche"}}),
        ("ANSSI-RSA-RECOM", "anssi", day(2030, 12, 31), {"rsa-2048"}, {}),
    ],
)  # fmt: skip
def test_end_boundary(rule, set_id, last, types, kw):
    """Still in force on its last day, gone the next day."""
    assert failing(rule, set_id, last, **kw) == types
    assert failing(rule, set_id, last + days(1), **kw) == set()


def test_cnsa_1_0_rejects_rsa_2048_p256_ed25519_x25519_now():
    """CNSSP-15 Annex B: RSA >= 3072 and P-384 only; the others are non-compliant today,
    high (not a medium 'plan the migration' note)."""
    for when in (NOW, day(2020, 1, 1), day(2040, 1, 1)):
        assert failing("CNSA1-PUBKEY", "cnsa-2.0", when) == {
            "rsa-2048", "ec-p256", "ed25519", "x25519",
        }  # fmt: skip
    rule = next(r for r in load_rule_sets("cnsa-2.0")[0].rules if r.id == "CNSA1-PUBKEY")
    assert rule.severity == "high" and rule.source.id == "CNSSP-15"


def test_cnsa_milestone_labels_do_not_leak_into_each_other():
    """A networking key is not judged by the web/cloud milestone and vice versa."""
    net = {"labels": {"cnsa-use": "networking"}}
    assert failing("CNSA2-WEB-EXCLUSIVE", "cnsa-2.0", day(2040, 1, 1), **net) == set()
    assert failing("CNSA2-CUSTOM-2033", "cnsa-2.0", day(2040, 1, 1), **net) == set()
    assert failing("CNSA2-NET-EXCLUSIVE", "cnsa-2.0", day(2040, 1, 1), **net) == QV


def test_ir8547_is_a_draft_low_unless_enforced():
    result = evaluate(inv(key("rsa-3072")), load_rule_sets("nist-800-131a"), as_of=day(2036, 1, 1))
    (f,) = [f for f in result.findings if f.rule.id == "IR8547-QV-2036"]
    assert (f.rule.severity, f.rule.declared_severity, f.rule.capped) == ("low", "critical", True)
    assert failing("IR8547-QV-2036", "nist-800-131a", day(2036, 1, 1), enforce=True) == QV
    enforced = evaluate(
        inv(key("rsa-3072")),
        load_rule_sets("nist-800-131a", enforce_drafts=True),
        as_of=day(2036, 1, 1),
    )
    assert {f.rule.severity for f in enforced.findings} == {"critical"}


def test_anssi_rsa_2048_meant_to_outlive_2030_is_a_mandatory_finding_now():
    """RègleFact-2 (mandatory, high): a key whose planned use extends beyond 2030 needs 3072
    bits already; a key retiring before 2031 is only the low RecomFact-1."""
    rs = load_rule_sets("anssi")
    short = key("rsa-2048", "short", rotate_every=365)  # due 2027
    forever = key("rsa-2048", "forever", rotate_every=None)
    late = key("rsa-2048", "late", versions=[VersionRecord(1, KeyState.PRIMARY, day(2030, 6, 1))])
    result = evaluate(inv(short, forever, late), rs, as_of=day(2030, 6, 1))
    beyond = {f.key for f in result.findings if f.rule.id == "ANSSI-RSA-BEYOND-2030"}
    assert beyond == {"forever", "late"}
    assert all(f.rule.severity == "high" for f in result.findings
               if f.rule.id == "ANSSI-RSA-BEYOND-2030")  # fmt: skip
    recom = {f.key for f in result.findings if f.rule.id == "ANSSI-RSA-RECOM"}
    assert recom == {"short", "forever", "late"}


def test_bsi_ml_dsa_44_not_recommended():
    assert failing("BSI-MLDSA-44", "bsi-tr-02102-1", NOW) == {"ml-dsa-44"}


def test_kek_strength_every_type():
    """Encryption and key-agreement keys seal 256-bit data keys: below 256 bits they fail;
    signing and MAC keys are only wrapped by the 256-bit master key and pass."""
    sealing = {"encryption", "key-wrapping", "key-agreement"}
    for prefer in ("encryption", "signing"):
        got = failing("SP800-57-KEK-STRENGTH", "nist-800-57", NOW, prefer=prefer)
        want = {
            t for t in ALL_TYPES
            if _usage(t, prefer) in sealing and spec(t).strength < 256
        }  # fmt: skip
        assert got == want, prefer
    enc = failing("SP800-57-KEK-STRENGTH", "nist-800-57", NOW, prefer="encryption")
    assert {"aes-128-gcm", "rsa-4096", "ml-kem-768", "x25519"} <= enc
    assert not {"aes-256-gcm", "chacha20-poly1305", "ml-kem-1024", "hmac-sha256"} & enc
    # types that cannot sign get their first usage (encryption / key-agreement): they seal
    assert failing("SP800-57-KEK-STRENGTH", "nist-800-57", NOW, prefer="signing") == {
        "aes-128-gcm", "x25519", "ml-kem-768", "x25519-ml-kem-768",
    }  # fmt: skip


def test_kek_strength_passphrase_master_key_is_not_evaluated():
    result = evaluate(
        inv(key("hmac-sha256"), master_key_source="passphrase", master_key_strength=None),
        load_rule_sets("nist-800-57"),
    )
    (u,) = [u for u in result.unknown if u.rule.id == "SP800-57-KEK-STRENGTH"]
    assert "cannot be measured" in u.found


@pytest.mark.parametrize(
    ("facts", "status", "fragment"),
    [
        ({"master_key_created": NOW - days(730)}, "pass", "730d old"),
        ({"master_key_created": NOW - days(731)}, "fail", "731d old"),
        ({"master_key_created_authentic": False}, "fail", "does not authenticate"),
        ({"master_key_created_authentic": None}, "unknown", "not authenticated"),
        ({"master_key_created": None, "master_key_first_seen": NOW - days(100)}, "unknown",
         "records no creation time"),
        ({"master_key_created": None, "master_key_first_seen": NOW - days(800)}, "fail",
         "in use since"),
    ],
)  # fmt: skip
def test_master_key_cryptoperiod(facts, status, fragment):
    result = evaluate(inv(**facts), load_rule_sets("nist-800-57"))
    (r,) = [
        r for r in result.findings + result.passed + result.unknown
        if r.rule.id == "SP800-57-CP-MASTER"
    ]  # fmt: skip
    assert r.status == status and fragment in r.found, r.found
