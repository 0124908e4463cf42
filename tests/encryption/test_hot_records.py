"""The warm record path (ekm/ops/hot_records.py) keeps every check of the full path.

Each test first warms the path (so the next record would take it), then changes what a check
depends on — the version's state, the primary, the data key's age or use count, the bytes of
the record, the associated data — and shows the next record is refused or re-sealed exactly as
without the warm path, with the audit record the full path writes.
"""

from __future__ import annotations

import json

import pytest

from ekm.crypto import envelope
from ekm.crypto.dekcache import DataKeyCache
from ekm.errors import IntegrityError, StateError
from ekm.manager import KeyManager
from ekm.ops import hot_records


def _audit(home, op: str) -> list[dict]:
    lines = (home / "audit.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("op") == op]


def _warm(mgr, name: str = "session", aad: bytes = b"row:1") -> bytes:
    blob = mgr.encrypt(name, b"secret value", aad)
    for _ in range(3):
        assert mgr.decrypt(blob, aad) == b"secret value"
    assert mgr.__dict__["_hot_records"].dec, "the path should be warm by now"
    return blob


def test_a_version_disabled_after_warming_is_refused_and_audited(mgr, home):
    blob = _warm(mgr)
    mgr.rotate("session", force=True)
    mgr.destroy_version("session", 1, recovery_window="7d")
    mgr.recover_version("session", 1)  # back inside the window: disabled
    with pytest.raises(StateError, match="version 1 of key 'session' is disabled"):
        mgr.decrypt(blob, b"row:1")
    failures = [r for r in _audit(home, "decrypt") if r.get("result") != "ok"]
    assert failures and failures[-1]["key"] == "session" and failures[-1]["version"] == 1


def test_a_rotation_after_warming_seals_new_records_under_the_new_primary(mgr):
    _warm(mgr)
    assert envelope.peek(mgr.encrypt("session", b"x"))[1] == 1
    mgr.rotate("session", force=True)
    assert envelope.peek(mgr.encrypt("session", b"x"))[1] == 2


@pytest.mark.parametrize("where", ["tag", "body", "nonce"])
def test_a_tampered_record_with_a_warm_prefix_is_refused_and_audited(mgr, home, where):
    blob = bytearray(_warm(mgr))
    index = {"tag": -1, "body": -20, "nonce": len(blob) - 12 - 16 - 12}[where]
    blob[index] ^= 1
    with pytest.raises(IntegrityError, match="not authentic"):
        mgr.decrypt(bytes(blob), b"row:1")
    assert _audit(home, "decrypt")[-1]["result"] == "denied"


def test_wrong_associated_data_on_a_warm_prefix_is_refused(mgr):
    blob = _warm(mgr)
    with pytest.raises(IntegrityError, match="not authentic"):
        mgr.decrypt(blob, b"row:2")
    with pytest.raises(IntegrityError, match="not authentic"):
        mgr.decrypt(blob[:-1], b"row:1")


def test_an_expired_data_key_leaves_the_warm_path(mgr, monkeypatch):
    blob = _warm(mgr)
    hot = mgr.__dict__["_hot_records"]
    docs = mgr.keystore.cached_documents()
    assert hot_records.hot_decrypt(hot, docs, blob, b"row:1") == b"secret value"
    monkeypatch.setattr(hot_records, "_clock", lambda: 1e12)
    assert hot_records.hot_decrypt(hot, docs, blob, b"row:1") is None


def test_the_data_key_use_limit_still_makes_new_data_keys(home):
    mgr = KeyManager(home, env={})
    mgr._dek_cache = DataKeyCache(16, 300.0, max_messages=5)
    before = len(_audit(home, "datakey.wrap"))
    blobs = [mgr.encrypt("session", b"r%d" % i) for i in range(12)]
    mgr.close()
    assert len(_audit(home, "datakey.wrap")) - before == 3  # 12 records, 5 per data key
    assert len({envelope.parse(b).wrapped for b in blobs}) == 3


def test_another_manager_never_sees_this_ones_warm_entries(mgr, home):
    blob = _warm(mgr)
    other = KeyManager(home, env={})
    assert other.decrypt(blob, b"row:1") == b"secret value"  # the full path, audited
    assert _audit(home, "datakey.unwrap")[-1]["key"] == "session"
    other.close()


def test_close_drops_the_warm_entries(mgr):
    _warm(mgr)
    mgr.close()
    assert not mgr.__dict__["_hot_records"].dec and not mgr.__dict__["_hot_records"].enc


def test_a_reloaded_key_document_is_checked_again(mgr, home):
    """Another process destroys the version; after a refresh this one sees it at once."""
    blob = _warm(mgr)
    other = KeyManager(home, env={})
    other.rotate("session", force=True)
    other.destroy_version("session", 1, recovery_window="7d")
    assert mgr.decrypt(blob, b"row:1") == b"secret value"  # this process's cached view
    mgr.keystore.forget()  # what any write in this process does too
    with pytest.raises(StateError, match="is destroyed"):
        mgr.decrypt(blob, b"row:1")
