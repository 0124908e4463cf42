"""Review 2: read-modify-writes on a shared (Vault) keystore go through ``Keystore.mutate``.

The usage counter (persisted before each block of AES-GCM wraps) and the retention
operations (destroy, recover, enable) saved with ``Keystore.save`` and the check-and-set
version read under the *local* lock. The local lock does not serialise hosts: when another
host wrote the same key in between, Vault refused the write and the operation failed with
"another writer" although nothing was wrong. ``mutate`` re-reads and re-decides, as rotation
already did. The server is the Vault-compatible one of tests/vault_integration, over HTTP,
with a second writer that rewrites the key just before our write lands.
"""

from __future__ import annotations

from datetime import timedelta

from ekm.crypto.keytypes import KeyState
from ekm.manager import KeyManager
from tests.vault_integration.conftest import make_home, pair, vault, venv

__all__ = ["make_home", "pair", "vault", "venv"]

ALPHA = "secret/data/ekm/keys/alpha"


def test_encrypt_survives_a_concurrent_write_of_the_key(pair, venv, vault) -> None:
    a, b = pair
    mgr = KeyManager(a, env=venv)
    vault.interfere(ALPHA, 1)  # another host saves alpha just before our usage count lands
    blob = mgr.encrypt("alpha", b"payload")
    mgr.close()
    assert vault.interfered == 1
    other = KeyManager(b, env=venv)
    assert other.decrypt(blob) == b"payload"
    assert other.key_info("alpha").version(1).usage_count >= 1  # the count was not lost


def test_destroy_recover_enable_retry_on_a_cas_conflict(pair, venv, vault) -> None:
    a, b = pair
    mgr = KeyManager(a, env=venv)
    start = mgr.key_info("alpha").created
    mgr.rotate("alpha", now=start + timedelta(days=1))
    when = start + timedelta(days=2)
    for op, state in (
        (lambda: mgr.destroy_version("alpha", 1, recovery_window="7d", now=when), "destroyed"),
        (lambda: mgr.recover_version("alpha", 1, now=when), "disabled"),
        (lambda: mgr.enable_version("alpha", 1, now=when), "active"),
    ):
        vault.interfere(ALPHA, 1)
        op()
        assert KeyManager(b, env=venv).key_info("alpha").version(1).state is KeyState(state)
    assert vault.interfered == 3
