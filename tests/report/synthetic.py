"""A varied synthetic ReportData: due keys, findings, rotations and failures, alerts, changes.

Deterministic (a seeded RNG) so a failing assertion reproduces; shared by the tests and by
benchmarks/bench_report.py for the 10,000-key figure.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from ekm.report.activity import bin_activity, classify_due
from ekm.report.model import (
    AlertRow,
    AuditLogSummary,
    Changes,
    FindingRow,
    KeyRow,
    ReportData,
    RuleSetSummary,
)

UTC = timezone.utc
AS_OF = datetime(2026, 3, 31, 12, 0, 0, tzinfo=UTC)
START = datetime(2026, 1, 1, tzinfo=UTC)
TYPES = ["aes-256-gcm", "hmac-sha256", "rsa-4096", "ed25519", "ml-kem-768"]
BACKENDS = ["file", "pkcs11", "vault"]
HEAD = "sha256:" + "ab12" * 16
FINGERPRINT = "sha256:" + "cd34" * 16


def make_keys(n: int, rng: random.Random) -> list[KeyRow]:
    keys = []
    for i in range(n):
        every = rng.choice([7, 30, 60, 90, 365, None])
        age = rng.uniform(0, 2.5 * (every or 200))
        nxt = AS_OF + timedelta(days=every - age) if every else None
        # JSON times have second precision (ekm.timeutil.iso): keep the model exact under it
        nxt = nxt.replace(microsecond=0) if nxt else None
        versions = rng.randint(1, 6)
        keys.append(
            KeyRow(
                name=f"key_{i:05d}",
                type=TYPES[i % len(TYPES)],
                usage="encryption",
                backend=BACKENDS[i % len(BACKENDS)],
                state_summary=f"1 primary, {versions - 1} active",
                primary_version=versions,
                versions=versions,
                age_days=round(age, 1),
                rotate_every_days=every,
                next_rotation=nxt,
                dueness=classify_due(nxt, timedelta(days=7), AS_OF),
            )
        )
    return keys


def fixed_keys() -> list[KeyRow]:
    """Hand-made keys covering every due-ness, including a hostile name."""

    def k(name: str, every: float | None, age: float, backend: str = "file") -> KeyRow:
        nxt = AS_OF + timedelta(days=every - age) if every else None
        return KeyRow(
            name,
            "aes-256-gcm",
            "encryption",
            backend,
            "1 primary, 1 active",
            2,
            2,
            age,
            every,
            nxt,
            classify_due(nxt, timedelta(days=7), AS_OF),
        )

    return [
        k("database_encryption", 90, 120),  # overdue
        k("jwt_signing", 30, 26),  # soon (4 days left, notify 7)
        k("api_master", 60, 40, "vault"),  # ok, but due within 30 days (20 days left)
        k("rsa", 365, 10, "pkcs11"),  # ok, far away
        k("legacy_blob", None, 800),  # no policy
        k("<script>alert(1)</script>|x", 30, 1),  # hostile name, ok
    ]


def findings() -> list[FindingRow]:
    cite = "https://csrc.nist.gov/pubs/sp/800/57/pt1/r5/final section 5.3"
    return [
        FindingRow(
            "rotation.max-age",
            "pci-dss-4",
            "database_encryption",
            2,
            "high",
            "primary version is 120 days old",
            "rotate at least every 90 days",
            "PCI DSS 4.0 3.7.4",
        ),
        FindingRow(
            "strength.min-bits",
            "fips-140-2",
            "legacy_blob",
            1,
            "critical",
            "key has no rotation policy",
            "every key has a cryptoperiod",
            cite,
        ),
        FindingRow(
            "backup.required",
            "fips-140-2",
            "jwt_signing",
            None,
            "medium",
            "no backup recorded",
            "back up signing keys",
            "internal policy B-2",
        ),
        FindingRow(
            "naming",
            "fips-140-2",
            None,
            None,
            "low",
            "home is world-listable | fix",
            "home mode 0700",
            "DESIGN.md storage",
        ),
    ]


def compliance() -> list[RuleSetSummary]:
    return [
        RuleSetSummary("pci-dss-4", "PCI DSS 4.0", {"high": 1}, 11, 12),
        RuleSetSummary("fips-140-2", "FIPS 140-2", {"critical": 1, "medium": 1, "low": 1}, 7, 10),
        RuleSetSummary("nist-800-57", "NIST SP 800-57", {}, 9, 9),
    ]


def events(n: int, rng: random.Random) -> list[tuple[datetime, str, str]]:
    span = (AS_OF - START).total_seconds()
    ops = ["rotate", "rotate.complete", "encrypt", "decrypt", "generate", "export"]
    out = []
    for _ in range(n):
        when = START + timedelta(seconds=rng.uniform(0, span))
        out.append((when, rng.choice(ops), "ok" if rng.random() > 0.05 else "error"))
    return out


def alerts() -> list[AlertRow]:
    return [
        AlertRow(
            AS_OF - timedelta(days=3),
            "high",
            "permissions",
            "keystore/db.key",
            "mode 0644 on key file",
        ),
        AlertRow(AS_OF - timedelta(days=1), "medium", "rotation", "jwt_signing", "due in 4 days"),
    ]


def report(extra_keys: int = 0, n_events: int = 2000, seed: int = 7) -> ReportData:
    rng = random.Random(seed)
    keys = fixed_keys() + make_keys(extra_keys, rng)
    f = findings()
    return ReportData(
        generated_at=AS_OF,
        period_start=START,
        period_end=AS_OF,
        ekm_version="0.1.0",
        home="/var/lib/ekm",
        config_fingerprint=FINGERPRINT,
        audit_log=AuditLogSummary(records=n_events, chain_ok=True, head_hash=HEAD),
        keys=keys,
        compliance=compliance(),
        findings=f,
        activity=bin_activity(events(n_events, rng), START, AS_OF),
        alerts=alerts(),
        changes=Changes(
            keys_added=["api_master"],
            keys_removed=["old_session"],
            keys_rotated=["jwt_signing"],
            findings_new=[f[0]],
            findings_resolved=[
                FindingRow(
                    "rotation.max-age",
                    "pci-dss-4",
                    "old_session",
                    3,
                    "high",
                    "primary version is 9 days old",
                    "rotate every 7 days",
                    "PCI DSS",
                )
            ],
            since=AS_OF - timedelta(days=30),
        ),
    )
