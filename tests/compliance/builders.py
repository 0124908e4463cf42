"""Builders for compliance tests: keys, deployments and inventories as plain data.

The engine takes an :class:`Inventory`, so these tests need no keystore: each case states the
exact facts a rule reasons over. ``NOW`` is fixed; nothing reads the clock.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

from ekm.compliance.inventory import (
    Attestation,
    DeploymentFacts,
    Inventory,
    KeyRecord,
    VersionRecord,
)
from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage, spec

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)
Y2031 = datetime(2031, 1, 1, tzinfo=timezone.utc)
Y2033 = datetime(2033, 1, 1, tzinfo=timezone.utc)
Y2035 = datetime(2035, 1, 1, tzinfo=timezone.utc)
Y2036 = datetime(2036, 1, 1, tzinfo=timezone.utc)


def attested_rules() -> list[str]:
    """Every built-in rule the operator attests (``attestation = true``)."""
    from ekm.compliance.engine import load_rule_sets

    return [
        r.id
        for rs in load_rule_sets("all")
        for r in rs.rules
        if any(name == "attestation" for name, _ in r.checks)
    ]


def attestation(rule: str, *, recorded: datetime = NOW, valid_days: int = 365) -> Attestation:
    return Attestation(
        rule=rule,
        by="A. Custodian",
        evidence="evidence.pdf",
        evidence_sha256="ab" * 32,
        recorded=recorded,
        expires=recorded + timedelta(days=valid_days),
    )


GOOD = DeploymentFacts(
    unsafe_paths=[],
    master_key_source="pkcs11",
    passphrase_kdf=None,
    keystore_mac_ok=True,
    audit_log_present=True,
    audit_chain_ok=True,
    hsm_pin_in_config=False,
    module_validation={"file": "fips-140-3", "pkcs11": "fips-140-3", "vault": "fips-140-3"},
    master_key_id="0011223344556677",
    master_key_created=NOW - timedelta(days=10),
    master_key_created_authentic=True,
    master_key_first_seen=NOW - timedelta(days=10),
    master_key_strength=256,
    attestations={r: attestation(r) for r in attested_rules()},
)

_DEFAULT_USAGE = {
    "aead": KeyUsage.ENCRYPTION,
    "mac": KeyUsage.MAC,
    "ecdh": KeyUsage.KEY_AGREEMENT,
    "ml-kem": KeyUsage.KEY_AGREEMENT,
    "hybrid-kem": KeyUsage.KEY_AGREEMENT,
}


def days(n: int) -> timedelta:
    return timedelta(days=n)


def key(
    type_: str,
    name: str | None = None,
    *,
    usage: str | None = None,
    age: int = 1,
    versions: list[VersionRecord] | None = None,
    rotate_every: int | None = 365,
    **kw,
) -> KeyRecord:
    """A key with one primary version ``age`` days old (unless versions are given)."""
    t = KeyType(type_)
    u = KeyUsage(usage) if usage else _DEFAULT_USAGE.get(spec(t).family, KeyUsage.SIGNING)
    if versions is None:
        versions = [VersionRecord(1, KeyState.PRIMARY, NOW - days(age), fingerprint=f"fp-{name}")]
    kw.setdefault("labels", {"owner": "platform"})
    return KeyRecord(
        name=name or type_,
        type=t,
        usage=u,
        versions=versions,
        rotate_every=None if rotate_every is None else days(rotate_every),
        **kw,
    )


def inv(*keys: KeyRecord, deployment: DeploymentFacts = GOOD, **changes) -> Inventory:
    """An inventory at NOW; ``changes`` override deployment facts."""
    if changes:
        deployment = replace(deployment, **changes)
    return Inventory(home="/srv/ekm", as_of=NOW, keys=list(keys), deployment=deployment)


def default_key_set(*, age: int = 1) -> list[KeyRecord]:
    """The default key set of CLI.md, each with one fresh primary version and a backup."""
    rows = [
        ("database_encryption", "aes-256-gcm", "encryption", 90, True),
        ("jwt_signing", "hmac-sha256", "signing", 30, True),
        ("api_master", "hmac-sha256", "api-auth", 60, True),
        ("api_internal", "hmac-sha256", "api-auth", 60, True),
        ("session", "aes-256-gcm", "encryption", 7, False),
        ("hmac", "hmac-sha256", "mac", 30, True),
        ("rsa", "rsa-4096", "signing", 365, True),
    ]
    return [
        key(t, n, usage=u, age=age, rotate_every=r, backup_required=b, last_backup=NOW)
        for n, t, u, r, b in rows
    ]
