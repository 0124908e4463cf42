"""Client behaviour that must hold against VaultLike and against a real Vault alike.

Each function takes a logged-in client and a unique KV prefix, so the same checks run in
test_kv.py / test_transit.py (VaultLike) and test_real_vault.py (``vault server -dev``).
"""

from __future__ import annotations

import pytest

from ekm.backends.vault_client import CasConflict, VaultClient
from ekm.errors import BackendError, IntegrityError


def kv_roundtrip(client: VaultClient, prefix: str) -> None:
    path = f"{prefix}/keys/db"
    assert client.kv_read(path) is None
    assert client.kv_write(path, {"v": "1"}, cas=0) == 1
    assert client.kv_read(path) == ({"v": "1"}, 1)
    assert client.kv_write(path, {"v": "2"}, cas=1) == 2
    assert client.kv_read(path) == ({"v": "2"}, 2)
    client.kv_write(f"{prefix}/keys/jwt", {"v": "x"}, cas=0)
    client.kv_write(f"{prefix}/keys/sub/inner", {"v": "y"}, cas=0)
    assert client.kv_list(f"{prefix}/keys") == ["db", "jwt", "sub/"]
    assert client.kv_list(f"{prefix}/nothing-here") == []
    client.kv_delete_all(path)
    assert client.kv_read(path) is None
    client.kv_delete_all(path)  # idempotent
    assert client.kv_list(f"{prefix}/keys") == ["jwt", "sub/"]


def kv_cas_conflict(first: VaultClient, second: VaultClient, prefix: str) -> None:
    """Two hosts read version 1 and rotate at once: exactly one wins, nothing is lost."""
    path = f"{prefix}/race"
    first.kv_write(path, {"gen": "1"}, cas=0)
    _, seen_a = first.kv_read(path)  # type: ignore[misc]
    _, seen_b = second.kv_read(path)  # type: ignore[misc]
    assert first.kv_write(path, {"gen": "2-from-a"}, cas=seen_a) == 2
    with pytest.raises(CasConflict) as err:
        second.kv_write(path, {"gen": "2-from-b"}, cas=seen_b)
    assert err.value.exit_code == 5
    assert isinstance(err.value, BackendError)
    assert err.value.expected == 1 and err.value.current == 2
    assert "changed since it was read (expected version 1, now 2)" in str(err.value)
    # The loser re-reads and retries on top of the winner's version.
    data, version = second.kv_read(path)  # type: ignore[misc]
    assert data == {"gen": "2-from-a"}
    assert second.kv_write(path, {"gen": "3-from-b"}, cas=version) == 3
    with pytest.raises(CasConflict):
        first.kv_write(f"{prefix}/race", {"gen": "new"}, cas=0)  # create-only, exists


def transit_roundtrip(client: VaultClient) -> None:
    client.transit_ensure_key()
    ct = client.transit_encrypt(b"\x00master key\xff")
    assert ct.startswith("vault:v1:")
    assert client.transit_decrypt(ct) == b"\x00master key\xff"
    assert (
        client.transit_encrypt(b"") and client.transit_decrypt(client.transit_encrypt(b"")) == b""
    )
    body = ct.split(":", 2)[2]
    flipped = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB")
    with pytest.raises(IntegrityError) as err:
        client.transit_decrypt(f"vault:v1:{flipped}")
    assert err.value.exit_code == 4
    assert "tampered" in str(err.value)
