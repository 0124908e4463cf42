"""Staged (zero-downtime) rotation: prepare -> activate -> complete, rollback until complete.

Every transition through the ``ekm`` command and the Python API, the old async-style API
(``await mgr.prepare_rotation("all")``), and every invalid transition: exit 3 with the key's
current state in the one-line message.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from ekm.errors import StateError
from ekm.manager import KeyManager
from tests.rotation.helpers import FAST_KEYS, audit, audit_since, snapshot, states, t0


def stage(home: Path, name: str) -> str | None:
    from tests.rotation.helpers import doc

    return doc(home, name)["meta"].get("rotation_stage")


def test_prepare_activate_complete_through_the_command(frun, fhome: Path) -> None:
    mark = len(audit(fhome))
    res = frun("--json", "rotate", "hmac", "--prepare").expect_ok()
    (entry,) = json.loads(res.stdout)["keys"]
    assert (entry["stage"], entry["primary_version"], entry["version"]) == ("prepared", 1, 2)
    assert states(fhome, "hmac") == {1: "primary", 2: "pending"}
    res = frun("rotate", "hmac", "--activate").expect_ok()
    assert "activated" in res.stdout
    assert states(fhome, "hmac") == {1: "active", 2: "primary"}
    assert stage(fhome, "hmac") == "activated"
    backups = list((fhome / "backups").glob("pre-activate-*.ekmbak"))
    assert len(backups) == 1  # hmac's policy backs up before the switch
    res = frun("rotate", "hmac", "--complete").expect_ok()
    assert "done" in res.stdout and stage(fhome, "hmac") is None
    assert states(fhome, "hmac") == {1: "active", 2: "primary"}  # kept: keep_versions 2
    ops = [
        (r["op"], r.get("key"), r.get("version"), r["result"])
        for r in audit_since(fhome, mark)
        if r["op"].startswith("rotate.")
    ]
    assert ops == [
        ("rotate.prepare", "hmac", 2, "ok"),
        ("rotate.activate", "hmac", 2, "ok"),
        ("rotate.complete", "hmac", 2, "ok"),
    ]


def test_rollback_after_prepare_and_after_activate(frun, fhome: Path) -> None:
    frun("rotate", "session", "jwt_signing", "--prepare").expect_ok()
    frun("rotate", "jwt_signing", "--activate").expect_ok()
    mark = len(audit(fhome))
    frun("rotate", "session", "jwt_signing", "--rollback").expect_ok()
    assert states(fhome, "session") == {1: "primary", 2: "disabled"}
    assert states(fhome, "jwt_signing") == {1: "primary", 2: "disabled"}
    assert stage(fhome, "session") is None and stage(fhome, "jwt_signing") is None
    recs = [(r["op"], r["key"], r["version"]) for r in audit_since(fhome, mark)]
    assert recs == [("rotate.rollback", "session", 1), ("rotate.rollback", "jwt_signing", 1)]
    # after a rollback the key rotates normally again, to version 3
    frun("rotate", "session").expect_ok()
    assert states(fhome, "session") == {1: "active", 2: "disabled", 3: "primary"}


def test_pending_material_decrypts_before_it_is_primary(mgr: KeyManager, fhome: Path) -> None:
    mgr.prepare_rotation(["database_encryption"], now=t0(fhome))
    pending = mgr.get_key("database_encryption", version=2)
    assert mgr.get_key("database_encryption") != pending  # v1 still encrypts
    mgr.activate_rotation(["database_encryption"], now=t0(fhome))
    assert mgr.get_key("database_encryption") == pending


@pytest.mark.parametrize(
    ("setup", "args", "fragments"),
    [
        ([], ["--activate"], ["no pending version to activate", "(current: v1 primary)"]),
        ([], ["--complete"], ["no activated rotation to complete", "(current: v1 primary)"]),
        ([], ["--rollback"], ["no rotation in progress", "(current: v1 primary)"]),
        (
            [["--prepare"]],
            ["--prepare"],
            ["staged rotation", "(current: v1 primary, v2 pending; staged rotation prepared)"],
        ),
        (
            [["--prepare"]],
            ["--complete"],
            ["no activated rotation", "v2 pending; staged rotation prepared)"],
        ),
        (
            [["--prepare"], ["--activate"]],
            ["--activate"],
            ["no pending version", "(current: v1 active, v2 primary; staged rotation activated)"],
        ),
        (
            [["--prepare"], ["--activate"], ["--complete"]],
            ["--rollback"],
            ["a completed rotation cannot be rolled back", "(current: v1 active, v2 primary)"],
        ),
        ([["--prepare"]], [], ["is in a staged rotation", "v2 pending"]),
        ([["--prepare"]], ["--force"], ["is in a staged rotation"]),
    ],
)
def test_invalid_transitions_exit_3_with_the_current_state(
    frun, fhome: Path, setup: list[list[str]], args: list[str], fragments: list[str]
) -> None:
    for step in setup:
        frun("rotate", "hmac", *step).expect_ok()
    before = snapshot(fhome / "keys")
    frun("rotate", "hmac", *args).expect_error(3, "'hmac'", *fragments)
    assert snapshot(fhome / "keys") == before
    if args and args[0] != "--force":
        last = audit(fhome)[-1]
        assert (last["op"], last["key"], last["result"]) == (
            f"rotate.{args[0][2:]}",
            "hmac",
            "error",
        )


def test_api_transitions_and_invalid_ones(mgr: KeyManager, fhome: Path) -> None:
    now = t0(fhome) + timedelta(hours=1)
    (r,) = mgr.prepare_rotation(["api_master"], now=now)
    assert r["versions"] == {1: "primary", 2: "pending"} and r["stage"] == "prepared"
    with pytest.raises(StateError, match=r"current: v1 primary, v2 pending") as exc:
        mgr.prepare_rotation(["api_master"], now=now)
    assert exc.value.exit_code == 3
    (r,) = mgr.activate_rotation(["api_master"], now=now)
    assert r["versions"] == {1: "active", 2: "primary"}
    (r,) = mgr.complete_rotation(["api_master"], now=now)
    assert r["stage"] is None
    with pytest.raises(StateError, match="cannot be rolled back"):
        mgr.rollback_rotation("api_master", now=now)
    with pytest.raises(StateError, match="no pending version"):
        mgr.activate_rotation(["api_master"], now=now)


def test_old_api_await_prepare_all_then_start_migration_then_complete(mgr, fhome) -> None:
    async def flow() -> list:
        prepared = await mgr.prepare_rotation("all")
        return prepared

    prepared = asyncio.run(flow())
    assert sorted(p["name"] for p in prepared) == FAST_KEYS
    assert all(states(fhome, n)[2] == "pending" for n in FAST_KEYS)
    activated = mgr.start_migration(prepared)  # accepts what prepare_rotation returned
    assert all(a["primary_version"] == 2 for a in activated)
    done = mgr.complete_rotation_with_rollback(health_check=lambda: True)
    assert sorted(d["name"] for d in done) == FAST_KEYS
    assert all(stage(fhome, n) is None for n in FAST_KEYS)
    assert all(states(fhome, n) == {1: "active", 2: "primary"} for n in FAST_KEYS)
    # nothing activated any more: nothing to complete
    assert mgr.complete_rotation_with_rollback(health_check=lambda: True) == []


async def _unhealthy() -> bool:
    return False


def _raises() -> bool:
    raise RuntimeError("new keys fail in production")


@pytest.mark.parametrize(
    "check", [lambda: False, _unhealthy, _raises], ids=["false", "async", "raises"]
)
def test_failed_health_check_rolls_back(mgr: KeyManager, fhome: Path, check) -> None:
    mgr.prepare_rotation(["hmac", "session"])
    mgr.start_migration(["hmac", "session"])
    mark = len(audit(fhome))
    result = mgr.complete_rotation_with_rollback(["hmac", "session"], health_check=check)
    assert sorted(r["name"] for r in result) == ["hmac", "session"]
    assert states(fhome, "hmac") == {1: "primary", 2: "disabled"}
    assert states(fhome, "session") == {1: "primary", 2: "disabled"}
    assert {r["op"] for r in audit_since(fhome, mark)} == {"rotate.rollback"}


def test_async_healthy_check_completes(mgr: KeyManager, fhome: Path) -> None:
    async def healthy() -> bool:
        return True

    mgr.prepare_rotation(["hmac"])
    mgr.start_migration(["hmac"])
    (r,) = mgr.complete_rotation_with_rollback(["hmac"], health_check=healthy)
    assert r["stage"] is None and states(fhome, "hmac") == {1: "active", 2: "primary"}


def test_the_cron_run_skips_keys_in_a_staged_rotation(frun, fhome: Path) -> None:
    """A nightly `ekm rotate` must not trample an operator's staged rotation."""
    frun("rotate", "session", "--prepare").expect_ok()
    res = frun("--json", "rotate", "--as-of", "+8d").expect_ok()
    assert "session" not in {r["name"] for r in json.loads(res.stdout)["rotated"]}
    assert states(fhome, "session") == {1: "primary", 2: "pending"}
