"""Every shipped rule, with one key (or deployment) that passes it and one that fails it.

The table is checked against the shipped rule files, so a new rule without cases fails the
suite. A pass case must produce no finding for the rule and at least one result (pass) when the
rule matches; a fail case must produce a finding of the rule, naming the key and version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest

from ekm.compliance.engine import evaluate, list_rule_sets, load_rule_sets
from ekm.compliance.inventory import Inventory, VersionRecord
from ekm.crypto.keytypes import KeyState, KeyUsage

from .builders import NOW, Y2031, Y2033, Y2036, attested_rules, days, inv, key

P, A, D = KeyState.PRIMARY, KeyState.ACTIVE, KeyState.DESTROYED
GCM_WARN = int(2**32 * 0.9)


@dataclass
class Case:
    ok: Inventory
    bad: Inventory | None
    as_of: datetime = NOW
    matched: bool = True  # the pass key is one the rule matches (so a pass result exists)


def _v(n, state, age, **kw):
    return VersionRecord(n, state, NOW - days(age), **kw)


def _retire(superseded_days: int) -> Inventory:
    vs = [_v(1, A, 400), _v(2, P, superseded_days)]
    return inv(key("aes-256-gcm", versions=vs))


def _destroyed(present: bool) -> Inventory:
    vs = [_v(1, D, 400, material_present=present), _v(2, P, 10)]
    return inv(key("aes-256-gcm", versions=vs))


def _twins(shared: bool) -> Inventory:
    a = key("aes-256-gcm", "a", versions=[_v(1, P, 1, fingerprint="fp1")])
    b = key("aes-256-gcm", "b", versions=[_v(1, P, 1, fingerprint="fp1" if shared else "fp2")])
    return inv(a, b)


def _gcm(uses: int) -> Inventory:
    return inv(key("aes-256-gcm", versions=[_v(1, P, 1, usage_count=uses)]))


def _mod(level: str) -> dict:
    return {"module_validation": {"file": level}}


def _labelled(type_: str, **labels: str):
    return key(type_, labels={"owner": "platform", **labels})


def _legacy(type_: str) -> Inventory:
    return inv(key(type_, versions=[_v(1, A, 10)]))


_KEYFILE = {"master_key_source": "key-file"}
_KEK = Case(inv(key("aes-256-gcm")), inv(key("aes-128-gcm")))
_Y2026 = datetime(2026, 1, 1, tzinfo=NOW.tzinfo)
_Y2030 = datetime(2030, 1, 1, tzinfo=NOW.tzinfo)
_Y2032 = datetime(2032, 1, 1, tzinfo=NOW.tzinfo)


def _cnsa(use: str, when: datetime) -> Case:
    return Case(
        inv(_labelled("ml-dsa-87", **{"cnsa-use": use})),
        inv(_labelled("rsa-4096", **{"cnsa-use": use})),
        when,
        matched=False,
    )


CASES: dict[str, Case] = {
    # fips-140-3
    "FIPS140-3-ALG": Case(inv(key("aes-256-gcm")), inv(key("chacha20-poly1305"))),
    "FIPS140-3-MODULE": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm"), **_mod("none"))),
    "FIPS140-3-KDF": Case(
        inv(master_key_source="passphrase", passphrase_kdf="pbkdf2-hmac-sha256"),
        inv(master_key_source="passphrase", passphrase_kdf="argon2id"),
    ),
    "FIPS140-3-GCM-IV": Case(_gcm(GCM_WARN - 1), _gcm(GCM_WARN)),
    "FIPS140-3-ZEROISE": Case(_destroyed(False), _destroyed(True)),
    "FIPS140-3-SSP-STORAGE": Case(inv(), inv(keystore_mac_ok=False)),
    "FIPS140-3-KEK-STRENGTH": _KEK,
    # fips-140-2
    "FIPS140-2-ALG": Case(inv(key("rsa-3072")), inv(key("ml-kem-768"))),
    "FIPS140-2-MODULE": Case(
        inv(key("rsa-3072"), **_mod("fips-140-2")), inv(key("rsa-3072"), **_mod("none"))
    ),
    "FIPS140-2-HISTORICAL": Case(inv(key("rsa-3072")), inv(key("rsa-3072"), **_mod("fips-140-2"))),
    "FIPS140-2-ZEROIZE": Case(_destroyed(False), _destroyed(True)),
    "FIPS140-2-STORAGE": Case(
        inv(key("aes-256-gcm"), **_KEYFILE), inv(key("aes-256-gcm", backend="floppy"))
    ),
    "FIPS140-2-GCM-IV": Case(_gcm(GCM_WARN - 1), _gcm(GCM_WARN)),
    # nist-800-57
    "SP800-57-STRENGTH-2031": Case(inv(key("rsa-3072")), inv(key("rsa-2048")), Y2031),
    "SP800-57-LEGACY-2031": Case(_legacy("rsa-3072"), _legacy("rsa-2048"), Y2031),
    "SP800-57-KEK-STRENGTH": _KEK,
    "SP800-57-CP-MASTER": Case(inv(), inv(master_key_created=NOW - days(731))),
    "SP800-57-CP-SYMENC": Case(inv(key("aes-256-gcm", age=700)), inv(key("aes-256-gcm", age=731))),
    "SP800-57-CP-SYMAUTH": Case(inv(key("hmac-sha256", age=700)), inv(key("hmac-sha256", age=731))),
    "SP800-57-CP-SIGN": Case(inv(key("rsa-4096", age=1000)), inv(key("rsa-4096", age=1096))),
    "SP800-57-CP-ASYMENC": Case(inv(key("ml-kem-768", age=700)), inv(key("ml-kem-768", age=731))),
    "SP800-57-ONE-PURPOSE": Case(
        inv(key("aes-256-gcm", observed_usages=frozenset({KeyUsage.ENCRYPTION}))),
        inv(key("aes-256-gcm", observed_usages=frozenset({KeyUsage.ENCRYPTION, KeyUsage.SIGNING}))),
    ),
    "SP800-57-ROTATION": Case(
        inv(key("aes-256-gcm", age=89, rotate_every=90)),
        inv(key("aes-256-gcm", age=90, rotate_every=90)),
    ),
    "SP800-57-DESTROY": Case(_destroyed(False), _destroyed(True)),
    "SP800-57-UNIQUE": Case(_twins(False), _twins(True)),
    "SP800-57-GCM-IV": Case(_gcm(0), _gcm(2**32)),
    "SP800-57-INTEGRITY": Case(inv(), inv(keystore_mac_ok=False)),
    # nist-800-131a
    "SP800-131A-112-2031": Case(inv(key("ml-dsa-44")), inv(key("rsa-2048")), Y2031),
    "SP800-131A-112-LEGACY": Case(_legacy("rsa-3072"), _legacy("rsa-2048"), Y2031),
    "IR8547-112-DEPRECATED": Case(_legacy("rsa-3072"), _legacy("rsa-2048"), Y2031),
    "IR8547-QV-2036": Case(
        inv(key("ml-dsa-65"), key("ml-kem-768")), inv(key("ec-p384")), Y2036, matched=False
    ),
    # pci-dss (PCI-3.6.1-STRONG: every ekm type has >= 112 bits; see test_strength_floor)
    "PCI-3.6.1-STRONG": Case(inv(key("rsa-2048")), None),
    "PCI-3.6.1-KEK-STRENGTH": _KEK,
    "PCI-3.6.1.2-STORAGE": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm"), **_KEYFILE)),
    "PCI-3.7.4-CRYPTOPERIOD": Case(
        inv(key("aes-256-gcm")), inv(key("aes-256-gcm", rotate_every=None))
    ),
    "PCI-3.7.4-ROTATION": Case(
        inv(key("hmac-sha256", age=29, rotate_every=30)),
        inv(key("hmac-sha256", age=31, rotate_every=30)),
    ),
    "PCI-3.7.5-DESTROY": Case(_destroyed(False), _destroyed(True)),
    "PCI-3.6.1.1-INVENTORY": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm", labels={}))),
    "PCI-10.2-AUDIT": Case(inv(), inv(audit_chain_ok=False)),
    "PCI-8.3.2-PIN": Case(inv(), inv(hsm_pin_in_config=True)),
    "PCI-7.2-PERMISSIONS": Case(inv(), inv(unsafe_paths=["/srv/ekm/keystore.json"])),
    # hipaa
    "HIPAA-164.312(a)(2)(iv)-ALG": Case(inv(key("aes-128-gcm")), inv(key("chacha20-poly1305"))),
    "HIPAA-KEYS-APART": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm"), **_KEYFILE)),
    "HIPAA-164.312(b)-AUDIT": Case(inv(), inv(audit_log_present=False)),
    "HIPAA-164.312(c)(1)-INTEGRITY": Case(inv(), inv(keystore_mac_ok=False)),
    "HIPAA-164.312(a)(1)-ACCESS": Case(inv(), inv(unsafe_paths=["/srv/ekm"])),
    "HIPAA-164.308(a)(7)-BACKUP": Case(
        inv(key("aes-256-gcm", backup_required=True, last_backup=NOW)),
        inv(key("aes-256-gcm", backup_required=True, last_backup=NOW - days(2))),
    ),
    # cnsa-2.0
    "CNSA1-PUBKEY": Case(inv(key("rsa-3072"), key("ec-p384")), inv(key("rsa-2048"))),
    "CNSA2-SYM": Case(inv(key("aes-256-gcm")), inv(key("aes-128-gcm"))),
    "CNSA2-HASH": Case(inv(key("hmac-sha384")), inv(key("hmac-sha256"))),
    "CNSA2-KEM": Case(inv(key("ml-kem-1024")), inv(key("x25519-ml-kem-768"))),
    "CNSA2-SIG": Case(inv(key("ml-dsa-87")), inv(key("ed25519-ml-dsa-65"))),
    "CNSA2-SWSIGN-PREFER": _cnsa("software-signing", datetime(2025, 1, 1, tzinfo=NOW.tzinfo)),
    "CNSA2-SWSIGN-EXCLUSIVE": _cnsa("software-signing", _Y2030),
    "CNSA2-NET-PREFER": _cnsa("networking", _Y2026),
    "CNSA2-NET-EXCLUSIVE": _cnsa("networking", _Y2030),
    "CNSA2-WEB-PREFER": _cnsa("web-cloud", datetime(2025, 1, 1, tzinfo=NOW.tzinfo)),
    "CNSA2-WEB-EXCLUSIVE": _cnsa("web-cloud", Y2033),
    "CNSA2-OS-PREFER": _cnsa("os", datetime(2027, 1, 1, tzinfo=NOW.tzinfo)),
    "CNSA2-OS-EXCLUSIVE": _cnsa("os", Y2033),
    "CNSA2-NICHE-PREFER": _cnsa("niche", _Y2030),
    "CNSA2-NICHE-EXCLUSIVE": _cnsa("niche", Y2033),
    "CNSA2-CUSTOM-2033": Case(inv(key("ml-dsa-87")), inv(key("ec-p384")), Y2033, matched=False),
    # bsi-tr-02102-1
    "BSI-RSA-3000": Case(inv(key("rsa-3072")), inv(key("rsa-2048"))),
    "BSI-EC-CURVES": Case(inv(key("ec-p384")), inv(key("x25519"))),
    "BSI-SYM-AES": Case(inv(key("aes-128-gcm")), inv(key("chacha20-poly1305"))),
    "BSI-PQC-HYBRID": Case(inv(key("x25519-ml-kem-768")), inv(key("ml-kem-768")), matched=False),
    "BSI-MLDSA-44": Case(inv(key("ml-dsa-65")), inv(key("ml-dsa-44")), matched=False),
    "BSI-KA-CLASSICAL-2032": Case(
        inv(key("x25519-ml-kem-768")),
        inv(key("ec-p384", usage="key-agreement")),
        _Y2032,
        matched=False,
    ),
    "BSI-KA-CLASSICAL-VHIGH-2031": Case(
        inv(key("x25519-ml-kem-768")),
        inv(_labelled("x25519", **{"protection-need": "very-high"})),
        Y2031,
        matched=False,
    ),
    "BSI-SIG-CLASSICAL-2036": Case(
        inv(key("ed25519-ml-dsa-65")), inv(key("ed25519")), Y2036, matched=False
    ),
    # anssi
    "ANSSI-RSA-2048": Case(inv(key("rsa-2048")), None),
    "ANSSI-RSA-BEYOND-2030": Case(
        inv(key("rsa-3072", rotate_every=None)), inv(key("rsa-2048", rotate_every=None))
    ),
    "ANSSI-RSA-RECOM": Case(inv(key("rsa-4096")), inv(key("rsa-2048"))),
    "ANSSI-SYM-128": Case(inv(key("aes-128-gcm")), None),
    "ANSSI-EC-CURVES": Case(inv(key("ec-p256")), inv(key("ed25519"))),
    "ANSSI-ONE-KEY-ONE-USE": Case(
        inv(key("aes-256-gcm")),
        inv(key("aes-256-gcm", observed_usages=frozenset({KeyUsage.SIGNING}))),
    ),
    "ANSSI-PQC-HYBRID": Case(inv(key("ed25519-ml-dsa-65")), inv(key("ml-dsa-65")), matched=False),
    # common-criteria
    "CC-FCS_CKM.1-GEN": Case(inv(key("aes-256-gcm")), inv(key("chacha20-poly1305"))),
    "CC-FCS_CKM.2-EST": Case(inv(key("ec-p256", usage="key-agreement")), None),
    "CC-FCS_CKM.6-DESTROY": Case(_destroyed(False), _destroyed(True)),
    "CC-FCS_COP.1-ALG": Case(inv(key("aes-256-gcm")), inv(key("chacha20-poly1305"))),
    "CC-FCS_COP.1-GCM-IV": Case(_gcm(GCM_WARN - 1), _gcm(GCM_WARN)),
    "CC-FCS_STG_EXT.1-STORAGE": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm"), **_KEYFILE)),
    "CC-FCS_STG_EXT.1-INTEGRITY": Case(inv(), inv(keystore_mac_ok=False)),
    # nist-800-53
    "NIST53-SC-12-CRYPTOPERIOD": Case(
        inv(key("aes-256-gcm")), inv(key("aes-256-gcm", rotate_every=None))
    ),
    "NIST53-SC-12-ROTATION": Case(
        inv(key("hmac-sha256", age=29, rotate_every=30)),
        inv(key("hmac-sha256", age=31, rotate_every=30)),
    ),
    "NIST53-SC-12-KEK": _KEK,
    "NIST53-SC-12(1)-AVAILABILITY": Case(
        inv(key("aes-256-gcm", backup_required=True, last_backup=NOW)),
        inv(key("aes-256-gcm", backup_required=True)),
    ),
    "NIST53-SC-13-ALG": Case(inv(key("aes-256-gcm")), inv(key("chacha20-poly1305"))),
    "NIST53-SC-13-MODULE": Case(inv(key("rsa-3072")), inv(key("rsa-3072"), **_mod("none"))),
    "NIST53-SC-28-STORAGE": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm"), **_KEYFILE)),
    "NIST53-SC-28-INTEGRITY": Case(inv(), inv(keystore_mac_ok=False)),
    "NIST53-AU-9-AUDIT": Case(inv(), inv(audit_chain_ok=False)),
    "NIST53-AU-9-ACCESS": Case(inv(), inv(unsafe_paths=["/srv/ekm/audit.log"])),
    # soc2
    "SOC2-CC6.1-KEYS-PROTECTED": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm"), **_KEYFILE)),
    "SOC2-CC6.1-ACCESS": Case(inv(), inv(unsafe_paths=["/srv/ekm"])),
    "SOC2-CC6.1-INTEGRITY": Case(inv(), inv(keystore_mac_ok=False)),
    "SOC2-CC6.1-DESTROY": Case(_destroyed(False), _destroyed(True)),
    "SOC2-CC6.1-ROTATION": Case(
        inv(key("aes-256-gcm", age=89, rotate_every=90)),
        inv(key("aes-256-gcm", age=90, rotate_every=90)),
    ),
    "SOC2-CC7.2-AUDIT": Case(inv(), inv(audit_chain_ok=False)),
    # attestations: a current one passes, none is a finding
    **{rid: Case(inv(), inv(attestations={})) for rid in attested_rules()},
}

_RULE_SET_OF = {r.id: rs.id for rs in load_rule_sets("all") for r in rs.rules}


def _run(rule_id: str, inventory: Inventory, as_of: datetime):
    rs = load_rule_sets([_RULE_SET_OF[rule_id]])
    result = evaluate(inventory, rs, as_of=as_of)
    pick = lambda items: [i for i in items if i.rule.id == rule_id]  # noqa: E731
    return pick(result.findings), pick(result.passed), pick(result.unknown)


def test_every_shipped_rule_has_cases():
    assert set(CASES) == set(_RULE_SET_OF), "add a pass and a fail case for each new rule"
    assert sum(i.rules for i in list_rule_sets()) == len(_RULE_SET_OF)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_pass_case(rule_id):
    case = CASES[rule_id]
    findings, passed, unknown = _run(rule_id, case.ok, case.as_of)
    assert findings == []
    assert unknown == []
    if case.matched:
        assert passed, f"{rule_id}: the pass case produced no result at all"
        assert all(p.status == "pass" for p in passed)


@pytest.mark.parametrize("rule_id", sorted(r for r, c in CASES.items() if c.bad is not None))
def test_fail_case(rule_id):
    case = CASES[rule_id]
    findings, _, _ = _run(rule_id, case.bad, case.as_of)
    assert findings, f"{rule_id}: the fail case produced no finding"
    for f in findings:
        assert f.status == "fail"
        assert f.rule.cite and f.found and f.required
        if f.rule.scope == "key":
            assert f.key is not None and f.version is not None
            assert f"key {f.key} v{f.version}" in f.message
        else:
            assert f.key is None and f.message.startswith("deployment: ")


@pytest.mark.parametrize(
    "rule_id", sorted(r for r, c in CASES.items() if c.as_of != NOW and c.bad is not None)
)
def test_dated_rules_are_silent_the_day_before(rule_id):
    """A rule with valid_from is not in force (no finding, no pass) the day before."""
    case = CASES[rule_id]
    findings, passed, _ = _run(rule_id, case.bad, case.as_of - days(1))
    assert findings == [] and passed == []
