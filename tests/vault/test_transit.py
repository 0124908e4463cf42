"""Transit: key creation, encrypt/decrypt, context, rotation, rewrap, tampering."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ekm.backends.vault_client import PolicyDenied, VaultClient
from ekm.errors import BackendError, IntegrityError
from tests.vault import contract
from tests.vaultlike.server import VaultLike


def test_transit_roundtrip_and_tamper(client: VaultClient) -> None:
    contract.transit_roundtrip(client)


def test_ensure_key_creates_once(vault: VaultLike, client: VaultClient) -> None:
    info = client.transit_ensure_key()
    assert info == {
        "type": "aes256-gcm96",
        "derived": False,
        "latest_version": 1,
        "min_decryption_version": 1,
    }
    client.transit_ensure_key()
    creates = [r for r in vault.requests if r["method"] == "POST" and "keys/ekm" in r["path"]]
    assert len(creates) == 1


def test_ensure_key_refuses_a_key_of_another_type(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    with pytest.raises(BackendError, match="Transit key transit/keys/sig cannot encrypt"):
        make_client(transit_key="sig").transit_ensure_key("ed25519")  # creates, then refuses
    with pytest.raises(BackendError) as err:
        make_client(transit_key="sig").transit_ensure_key()
    assert str(err.value) == (
        f"Vault at {vault.url}: Transit key transit/keys/sig is ed25519 (derived=False), "
        "not aes256-gcm96 (derived=False); set vault.transit_key to another name"
    )


def test_derived_key_needs_the_same_context(client: VaultClient) -> None:
    client.transit_ensure_key(derived=True)
    ct = client.transit_encrypt(b"kek", context=b"database_encryption:v1")
    assert client.transit_decrypt(ct, context=b"database_encryption:v1") == b"kek"
    with pytest.raises(IntegrityError, match="key or context is wrong"):
        client.transit_decrypt(ct, context=b"jwt_signing:v1")
    with pytest.raises(IntegrityError, match="could not decrypt"):
        client.transit_decrypt(ct)


def test_rotation_keeps_old_ciphertexts_and_rewrap_moves_them(
    vault: VaultLike, client: VaultClient
) -> None:
    client.transit_ensure_key()
    old = client.transit_encrypt(b"kek")
    vault.transit_engine().keys["ekm"].rotate()
    assert client.transit_encrypt(b"x").startswith("vault:v2:")
    assert client.transit_decrypt(old) == b"kek"
    new = client.transit_rewrap(old)
    assert new.startswith("vault:v2:") and client.transit_decrypt(new) == b"kek"
    vault.transit_engine().keys["ekm"].min_decryption_version = 2
    with pytest.raises(IntegrityError, match="below the key's min_decryption_version"):
        client.transit_decrypt(old)


def test_unknown_version_is_an_integrity_error(client: VaultClient) -> None:
    client.transit_ensure_key()
    ct = client.transit_encrypt(b"kek").replace("vault:v1:", "vault:v9:")
    with pytest.raises(IntegrityError, match="names a key version the Transit key does not have"):
        client.transit_decrypt(ct)


@pytest.mark.parametrize("bad", ["", "vault:v1:", "v1:abcd", "vault:v0:abcd", "vault:v1:ab cd"])
def test_malformed_ciphertext_is_refused_locally(
    vault: VaultLike, client: VaultClient, bad: str
) -> None:
    before = len(vault.requests)
    with pytest.raises(IntegrityError, match=r"not a Vault Transit ciphertext"):
        client.transit_decrypt(bad)
    assert len(vault.requests) == before


def test_missing_transit_key_on_decrypt(vault: VaultLike, client: VaultClient) -> None:
    with pytest.raises(BackendError, match="Transit key transit/decrypt/ekm does not exist"):
        client.transit_decrypt("vault:v1:AAAA")


def test_transit_policy_denial(vault: VaultLike, make_client: Callable[..., VaultClient]) -> None:
    vault.set_policy("enc-only", {"transit/encrypt/ekm": ["update"]})
    root = make_client()
    root.transit_ensure_key()
    ct = root.transit_encrypt(b"kek")
    c = make_client(vault.create_token(["enc-only"]))
    assert c.transit_encrypt(b"kek").startswith("vault:v1:")
    with pytest.raises(PolicyDenied, match="denied Transit decrypt on transit/decrypt/ekm") as err:
        c.transit_decrypt(ct)
    assert err.value.exit_code == 4 and "'update' capability" in str(err.value)
