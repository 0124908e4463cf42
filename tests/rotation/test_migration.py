"""Algorithm migration: a rotation whose new version uses another algorithm.

The key keeps its name and history: old versions keep their own type (they still verify
what they signed), new ones use the target type. Only migrations that keep the key's usage
and its symmetric/asymmetric nature are allowed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from ekm.errors import InvalidError, UsageError
from ekm.manager import KeyManager
from tests.rotation.helpers import snapshot, states, t0

PLAN = {
    "from_algorithm": "RSA-2048",
    "to_algorithm": "RSA-4096",
    "migration_period_days": 90,
    "rollback_capability": True,
}


@pytest.fixture
def legacy(mgr: KeyManager, fhome: Path) -> KeyManager:
    """An rsa-2048 signing key named ``legacy`` in the fast home."""
    mgr.generate("legacy", type="rsa-2048", usage="signing", now=t0(fhome))
    return mgr


def _bits(mgr: KeyManager, version: int) -> int:
    from cryptography.hazmat.primitives.serialization import load_der_private_key

    return load_der_private_key(mgr.material("legacy", version), None).key_size


def test_rotate_to_type_keeps_both_types_in_the_history(frun, legacy: KeyManager) -> None:
    res = frun("--json", "rotate", "legacy", "--to-type", "rsa-4096").expect_ok()
    (entry,) = json.loads(res.stdout)["rotated"]
    assert (entry["from_version"], entry["to_version"], entry["type"]) == (1, 2, "rsa-4096")
    shown = json.loads(frun("--json", "keys", "show", "legacy").expect_ok().stdout)
    assert shown["type"] == "rsa-4096"
    assert [(v["version"], v["state"], v.get("type")) for v in shown["versions"]] == [
        (1, "active", "rsa-2048"),
        (2, "primary", "rsa-4096"),
    ]
    table = frun("keys", "show", "legacy").expect_ok().stdout
    rows = [line.split() for line in table.splitlines() if line.startswith("v")]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("v1", "active", "rsa-2048"),
        ("v2", "primary", "rsa-4096"),
    ]
    fresh = KeyManager(legacy.home, env={})
    assert (_bits(fresh, 1), _bits(fresh, 2)) == (2048, 4096)
    jwks = json.loads(frun("keys", "export", "legacy", "--format", "jwks").expect_ok().stdout)
    assert sorted(k["kid"] for k in jwks["keys"]) == ["legacy:v1", "legacy:v2"]


def test_staged_migration_and_its_rollback_restore_the_type(frun, legacy, fhome) -> None:
    frun("rotate", "legacy", "--prepare", "--to-type", "rsa-3072").expect_ok()
    frun("rotate", "legacy", "--activate").expect_ok()
    assert json.loads(frun("--json", "keys", "show", "legacy").stdout)["type"] == "rsa-3072"
    frun("rotate", "legacy", "--rollback").expect_ok()
    shown = json.loads(frun("--json", "keys", "show", "legacy").stdout)
    assert shown["type"] == "rsa-2048"
    assert states(fhome, "legacy") == {1: "primary", 2: "disabled"}


@pytest.mark.parametrize(
    ("name", "to_type", "fragments"),
    [
        (
            "database_encryption",
            "rsa-4096",
            ["from aes-256-gcm to rsa-4096", "symmetric and asymmetric types do not mix"],
        ),
        ("legacy", "aes-256-gcm", ["to aes-256-gcm", "cannot be used for signing"]),
        ("legacy", "ml-kem-768", ["a ml-kem-768 key cannot be used for signing"]),
        ("jwt_signing", "aes-256-gcm", ["cannot be used for signing"]),
        ("legacy", "rsa-1024", ["--to-type", "unknown key type 'rsa-1024'"]),
    ],
)
def test_invalid_migrations_exit_2(
    frun, legacy: KeyManager, fhome: Path, name: str, to_type: str, fragments: list[str]
) -> None:
    before = snapshot(fhome / "keys")
    frun("rotate", name, "--to-type", to_type).expect_error(2, *fragments)
    frun("rotate", name, "--prepare", "--to-type", to_type).expect_error(2, fragments[-1])
    with pytest.raises(UsageError) as exc:
        KeyManager(fhome, env={}).rotate(name, to_type=to_type)
    assert fragments[-1] in str(exc.value) and exc.value.exit_code == 2
    assert snapshot(fhome / "keys") == before


def test_prepare_with_an_unknown_type_is_a_usage_error(frun, legacy: KeyManager) -> None:
    frun("rotate", "legacy", "--prepare", "--to-type", "rsa-1024").expect_error(
        2, "unknown key type 'rsa-1024'"
    )


def test_plan_algorithm_migration(legacy: KeyManager, fhome: Path) -> None:
    before = snapshot(fhome)
    now = t0(fhome) + timedelta(days=1)
    plan = legacy.plan_algorithm_migration(dict(PLAN), now=now)
    assert (plan["from"], plan["to"], plan["period_days"], plan["rollback"], plan["ok"]) == (
        "rsa-2048", "rsa-4096", 90, True, True,
    )  # fmt: skip
    (entry,) = plan["keys"]
    assert entry["name"] == "legacy" and (entry["from_version"], entry["new_version"]) == (1, 2)
    assert entry["old_versions_readable_until"] == (now + timedelta(days=90)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert entry["command"] == "ekm rotate legacy --to-type rsa-4096"
    assert snapshot(fhome) == before  # planning changes nothing
    # a plan that cannot work says why, per key, instead of failing as a whole
    bad = legacy.plan_algorithm_migration(
        {"from_algorithm": "AES-256-GCM", "to_algorithm": "RSA-4096"}, now=now
    )
    assert bad["ok"] is False
    assert {k["name"] for k in bad["keys"]} == {"database_encryption", "session"}
    assert all("do not mix" in k["problem"] for k in bad["keys"])


def test_migration_plans_from_the_config(legacy: KeyManager, fhome: Path) -> None:
    cfg = fhome / "ekm.toml"
    cfg.write_text(
        cfg.read_text()
        + '\n[[migration]]\nfrom_algorithm = "RSA-2048"\nto_algorithm = "RSA-4096"\n'
        + 'migration_period_days = 30\nkeys = ["legacy"]\n'
    )
    (plan,) = KeyManager(fhome, env={}).plan_algorithm_migration()
    assert plan["period_days"] == 30 and [k["name"] for k in plan["keys"]] == ["legacy"]


@pytest.mark.parametrize(
    ("plan", "fragment"),
    [
        ({**PLAN, "to_algorithm": "RSA-999"}, "to_algorithm"),
        ({**PLAN, "from_algorithm": None}, "from_algorithm is missing"),
        ({**PLAN, "migration_period_days": 0}, "migration_period_days"),
        ({**PLAN, "migration_period_days": True}, "migration_period_days"),
        ({**PLAN, "migration_period_days": "90"}, "migration_period_days"),
    ],
)
def test_invalid_migration_plans(legacy: KeyManager, plan: dict, fragment: str) -> None:
    with pytest.raises(InvalidError, match=fragment) as exc:
        legacy.plan_algorithm_migration(plan)
    assert exc.value.exit_code == 3 and "\n" not in str(exc.value)
