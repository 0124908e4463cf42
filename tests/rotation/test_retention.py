"""Retention: keep_versions, crypto-shredding (``ekm keys destroy``), soft delete with a
recovery window (``ekm keys recover``), expiry (``ekm keys purge``) and re-enabling.

"Destroyed" must mean the wrapped material is gone from the key document, not merely a
state flag: the tests read the JSON on disk.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ekm.errors import NotFoundError, StateError, UsageError
from ekm.manager import KeyManager
from tests.rotation.helpers import audit, audit_since, doc, snapshot, states, t0


@pytest.fixture
def rotated(mgr: KeyManager, fhome: Path) -> KeyManager:
    """hmac and jwt_signing at v2 (v1 active)."""
    mgr.rotate(["hmac", "jwt_signing"], now=t0(fhome) + timedelta(days=1))
    return mgr


def test_destroy_crypto_shreds_and_keeps_metadata(frun, rotated: KeyManager, fhome) -> None:
    assert "1" in doc(fhome, "hmac")["material"]
    created = doc(fhome, "hmac")["meta"]["versions"][0]["created"]
    mark = len(audit(fhome))
    res = frun("keys", "destroy", "--yes", "hmac", "--version", "1", "--recovery-window", "0s")
    res.expect_ok()
    assert res.stderr.strip() == "hmac v1 destroyed; its material is gone"
    d = doc(fhome, "hmac")
    assert sorted(d["material"]) == ["2"]  # the wrapped bytes of v1 are gone from the file
    v1 = d["meta"]["versions"][0]
    assert (v1["version"], v1["state"], v1["created"]) == (1, "destroyed", created)
    assert "destroy_after" not in v1
    (rec,) = audit_since(fhome, mark)
    assert (rec["op"], rec["key"], rec["version"]) == ("key.destroy", "hmac", 1)
    assert rec["result"] == "ok"
    fresh = KeyManager(fhome, env={})
    with pytest.raises(NotFoundError, match="version 1 is destroyed"):
        fresh.get_key("hmac", version=1)
    frun("keys", "destroy", "--yes", "hmac", "--version", "1").expect_error(3, "already destroyed")
    frun("keys", "export", "hmac", "--version", "1", "--reveal").expect_error(3, "destroyed")


@pytest.mark.parametrize(
    ("name", "version", "code", "fragments"),
    [
        ("hmac", "2", 3, ["version 2 is the primary of 'hmac'", "rotate first"]),
        ("hmac", "9", 3, ["'hmac' has no version 9", "versions: 1, 2"]),
        ("nosuch", "1", 3, ["no key named 'nosuch'"]),
        ("hmac", "x", 2, ["--version"]),
    ],
)
def test_destroy_refusals(
    frun, rotated: KeyManager, fhome: Path, name: str, version: str, code: int, fragments
) -> None:
    before = snapshot(fhome / "keys")
    frun("keys", "destroy", "--yes", name, "--version", version).expect_error(code, *fragments)
    assert snapshot(fhome / "keys") == before


def test_destroy_refuses_the_primary_and_a_pending_version_in_the_api(mgr, fhome) -> None:
    with pytest.raises(StateError, match="is the primary") as exc:
        mgr.destroy_version("session", 1)
    assert exc.value.exit_code == 3
    mgr.prepare_rotation(["session"])
    with pytest.raises(StateError, match="pending; roll the rotation back"):
        mgr.destroy_version("session", 2)
    assert sorted(doc(fhome, "session")["material"]) == ["1", "2"]


@pytest.mark.parametrize("window", ["3d", "31d"])
def test_recovery_window_out_of_range(frun, rotated, fhome: Path, window: str) -> None:
    frun("keys", "destroy", "--yes", "hmac", "-v", "1", "--recovery-window", window).expect_error(
        2, f"--recovery-window {window}", "7d to 30d"
    )
    with pytest.raises(UsageError, match="7d to 30d"):
        rotated.destroy_version("hmac", 1, recovery_window=window)
    assert states(fhome, "hmac") == {1: "active", 2: "primary"}


def test_malformed_recovery_window_is_a_usage_error(frun, rotated, fhome: Path) -> None:
    frun("keys", "destroy", "--yes", "hmac", "-v", "1", "--recovery-window", "soon").expect_error(
        2, "--recovery-window"
    )


def test_soft_delete_then_recover(frun, rotated: KeyManager, fhome: Path) -> None:
    old = rotated.get_key("hmac", version=1)
    res = frun("keys", "destroy", "--yes", "hmac", "--version", "1", "--recovery-window", "7d")
    assert "recoverable with `ekm keys recover` until" in res.expect_ok().stderr
    d = doc(fhome, "hmac")
    assert d["meta"]["versions"][0]["state"] == "destroyed"
    assert "destroy_after" in d["meta"]["versions"][0] and "1" in d["material"]
    with pytest.raises(NotFoundError):
        KeyManager(fhome, env={}).get_key("hmac", version=1)  # unusable while destroyed
    mark = len(audit(fhome))
    res = frun("keys", "recover", "hmac", "--version", "1").expect_ok()
    assert res.stderr.strip() == "hmac v1 recovered (disabled)"
    assert states(fhome, "hmac") == {1: "disabled", 2: "primary"}
    frun("keys", "enable", "hmac", "--version", "1").expect_ok()
    assert states(fhome, "hmac") == {1: "active", 2: "primary"}
    assert KeyManager(fhome, env={}).get_key("hmac", version=1) == old
    ops = [(r["op"], r["version"]) for r in audit_since(fhome, mark)]
    assert ops == [("key.recover", 1), ("key.enable", 1), ("key.read", 1)]
    frun("keys", "recover", "hmac", "--version", "1").expect_error(
        3, "version 1 is active, not scheduled for destruction"
    )
    frun("keys", "enable", "hmac", "--version", "2").expect_error(3, "is primary, not disabled")


def test_purge_after_the_window_with_time_travel(rotated: KeyManager, fhome: Path) -> None:
    now = t0(fhome) + timedelta(days=2)
    rotated.destroy_version("hmac", 1, recovery_window="7d", now=now)
    rotated.destroy_version("jwt_signing", 1, recovery_window="10d", now=now)
    assert rotated.purge_destroyed(now=now + timedelta(days=6)) == []
    assert "1" in doc(fhome, "hmac")["material"]
    mark = len(audit(fhome))
    assert rotated.purge_destroyed(now=now + timedelta(days=7)) == [("hmac", 1)]
    assert sorted(doc(fhome, "hmac")["material"]) == ["2"]
    assert "destroy_after" not in doc(fhome, "hmac")["meta"]["versions"][0]
    assert "1" in doc(fhome, "jwt_signing")["material"]  # its window is still open
    (rec,) = audit_since(fhome, mark)
    assert (rec["op"], rec["key"], rec["version"]) == ("key.purge", "hmac", 1)
    with pytest.raises(StateError, match="not scheduled for destruction"):
        rotated.recover_version("hmac", 1, now=now + timedelta(days=8))
    # past its window but not yet purged: recovery is refused all the same
    with pytest.raises(StateError, match="recovery window of 'jwt_signing' version 1 ended"):
        rotated.recover_version("jwt_signing", 1, now=now + timedelta(days=11))


def test_a_rotation_run_purges_expired_soft_deletes(rotated: KeyManager, fhome: Path) -> None:
    now = t0(fhome) + timedelta(days=2)
    rotated.destroy_version("hmac", 1, recovery_window="7d", now=now)
    rotated.rotate(["session"], now=now + timedelta(days=8))
    assert sorted(doc(fhome, "hmac")["material"]) == ["2"]


def test_purge_command_and_config_window(frun, fhome: Path, rotated: KeyManager) -> None:
    cfg = fhome / "ekm.toml"
    cfg.write_text(cfg.read_text() + '\n[rotation]\nsoft_delete_window = "14d"\n')
    res = frun("--json", "keys", "destroy", "--yes", "jwt_signing", "--version", "1").expect_ok()
    assert '"material_removed": false' in res.stdout
    assert "1" in doc(fhome, "jwt_signing")["material"]  # the configured window applies
    res = frun("keys", "purge").expect_ok()  # today: nothing has expired
    assert res.stderr.strip() == "purged 0 versions"
    assert "1" in doc(fhome, "jwt_signing")["material"]
