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

from .builders import NOW, Y2031, Y2033, Y2035, days, inv, key

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


CASES: dict[str, Case] = {
    # fips-140-3
    "FIPS140-3-ALG": Case(inv(key("aes-256-gcm")), inv(key("chacha20-poly1305"))),
    "FIPS140-3-MODULE": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm"), **_mod("none"))),
    "FIPS140-3-KDF": Case(
        inv(master_key_source="passphrase", passphrase_kdf="pbkdf2-hmac-sha256"),
        inv(master_key_source="passphrase", passphrase_kdf="argon2id"),
    ),
    "FIPS140-3-GCM-IV": Case(_gcm(GCM_WARN - 1), _gcm(GCM_WARN)),
    # fips-140-2
    "FIPS140-2-ALG": Case(inv(key("rsa-3072")), inv(key("ml-kem-768"))),
    "FIPS140-2-MODULE": Case(
        inv(key("rsa-3072"), **_mod("fips-140-2")), inv(key("rsa-3072"), **_mod("none"))
    ),
    "FIPS140-2-HISTORICAL": Case(inv(key("rsa-3072")), inv(key("rsa-3072"), **_mod("fips-140-2"))),
    # nist-800-57
    "SP800-57-STRENGTH-2031": Case(inv(key("rsa-3072")), inv(key("rsa-2048")), Y2031),
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
    "IR8547-QV-2035": Case(
        inv(key("ml-dsa-65"), key("ml-kem-768")), inv(key("ec-p384")), Y2035, matched=False
    ),
    "IR8547-QV-DEPRECATED": Case(
        inv(key("rsa-3072", versions=[_v(1, A, 10)])),
        inv(key("rsa-2048", versions=[_v(1, A, 10)])),
        Y2031,
    ),
    # pci-dss (PCI-3.6.1-STRONG: every ekm type has >= 112 bits; see test_strength_floor)
    "PCI-3.6.1-STRONG": Case(inv(key("rsa-2048")), None),
    "PCI-3.6.1.2-STORAGE": Case(
        inv(key("aes-256-gcm")), inv(key("aes-256-gcm"), master_key_source="key-file")
    ),
    "PCI-3.7.4-CRYPTOPERIOD": Case(
        inv(key("aes-256-gcm")), inv(key("aes-256-gcm", rotate_every=None))
    ),
    "PCI-3.7.4-ROTATION": Case(
        inv(key("hmac-sha256", age=29, rotate_every=30)),
        inv(key("hmac-sha256", age=31, rotate_every=30)),
    ),
    "PCI-3.7.5-RETIRED": Case(_retire(89), _retire(91)),
    "PCI-3.7.5-DESTROY": Case(_destroyed(False), _destroyed(True)),
    "PCI-3.6.1.1-INVENTORY": Case(inv(key("aes-256-gcm")), inv(key("aes-256-gcm", labels={}))),
    "PCI-10.2-AUDIT": Case(inv(), inv(audit_chain_ok=False)),
    "PCI-8.3.2-PIN": Case(inv(), inv(hsm_pin_in_config=True)),
    "PCI-7.2-PERMISSIONS": Case(inv(), inv(unsafe_paths=["/srv/ekm/keystore.json"])),
    # hipaa
    "HIPAA-164.312(a)(2)(iv)-ALG": Case(inv(key("aes-128-gcm")), inv(key("chacha20-poly1305"))),
    "HIPAA-164.312(b)-AUDIT": Case(inv(), inv(audit_log_present=False)),
    "HIPAA-164.312(c)(1)-INTEGRITY": Case(inv(), inv(keystore_mac_ok=False)),
    "HIPAA-164.312(a)(1)-ACCESS": Case(inv(), inv(unsafe_paths=["/srv/ekm"])),
    "HIPAA-164.308(a)(7)-BACKUP": Case(
        inv(key("aes-256-gcm", backup_required=True, last_backup=NOW)),
        inv(key("aes-256-gcm", backup_required=True, last_backup=NOW - days(2))),
    ),
    # cnsa-2.0
    "CNSA2-SYM": Case(inv(key("aes-256-gcm")), inv(key("aes-128-gcm"))),
    "CNSA2-HASH": Case(inv(key("hmac-sha384")), inv(key("hmac-sha256"))),
    "CNSA2-KEM": Case(inv(key("ml-kem-1024")), inv(key("x25519-ml-kem-768"))),
    "CNSA2-SIG": Case(inv(key("ml-dsa-87")), inv(key("ed25519-ml-dsa-65"))),
    "CNSA2-QV-TRANSITION": Case(inv(key("ml-kem-1024")), inv(key("ec-p384")), matched=False),
    "CNSA2-QV-2033": Case(inv(key("ml-dsa-87")), inv(key("rsa-4096")), Y2033, matched=False),
    # bsi-tr-02102-1
    "BSI-RSA-3000": Case(inv(key("rsa-3072")), inv(key("rsa-2048"))),
    "BSI-EC-CURVES": Case(inv(key("ec-p384")), inv(key("x25519"))),
    "BSI-SYM-AES": Case(inv(key("aes-128-gcm")), inv(key("chacha20-poly1305"))),
    "BSI-PQC-HYBRID": Case(inv(key("x25519-ml-kem-768")), inv(key("ml-kem-768")), matched=False),
    # anssi
    "ANSSI-RSA-2031": Case(inv(key("rsa-3072")), inv(key("rsa-2048")), Y2031),
    "ANSSI-RSA-LONGTERM": Case(inv(key("rsa-4096")), inv(key("rsa-2048"))),
    "ANSSI-EC-CURVES": Case(inv(key("ec-p256")), inv(key("ed25519"))),
    "ANSSI-PQC-HYBRID": Case(inv(key("ed25519-ml-dsa-65")), inv(key("ml-dsa-65")), matched=False),
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
