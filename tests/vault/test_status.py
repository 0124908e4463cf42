"""status(): seal state, version, identity, token TTL, KV version; never the token."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ekm.backends.vault_client import VaultClient
from ekm.errors import BackendAuthError
from tests.vaultlike.server import VaultLike


def test_status_of_a_healthy_vault(vault: VaultLike, client: VaultClient) -> None:
    st = client.status()
    assert st == {
        "endpoint": vault.url,
        "namespace": None,
        "auth_method": "token",
        "sealed": False,
        "version": VaultLike.version,
        "cluster": VaultLike.cluster_name,
        "identity": "root",
        "policies": ["root"],
        "token_ttl": 0,
        "expire_time": None,
        "expires_soon": False,
        "kv_version": 2,
        "renewed": False,
    }
    assert vault.root_token not in json.dumps(st)


@pytest.mark.parametrize(("ttl", "soon"), [(3600, True), (3 * 86400, False)])
def test_token_expiring_within_the_threshold_is_flagged(
    vault: VaultLike, make_client: Callable[..., VaultClient], ttl: int, soon: bool
) -> None:
    token = vault.create_token(["app"], ttl=ttl, display_name="token-ekm-host1")
    st = make_client(token, token_warn_before="1d").status()
    assert st["identity"] == "token-ekm-host1"
    assert st["policies"] == ["app", "default"]
    assert 0 < st["token_ttl"] <= ttl
    assert st["expire_time"].endswith("Z")
    assert st["expires_soon"] is soon
    assert st["kv_version"] is None  # the "app" policy cannot see the mount
    assert token not in json.dumps(st)


def test_status_reports_a_sealed_vault_instead_of_failing(
    vault: VaultLike, client: VaultClient
) -> None:
    vault.seal()
    st = client.status()
    assert st["sealed"] is True and st["identity"] is None and st["version"] == VaultLike.version


def test_status_reports_kv_v1(vault: VaultLike, make_client: Callable[..., VaultClient]) -> None:
    vault.enable_kv("old", 1)
    assert make_client(mount_path="old").status()["kv_version"] == 1


def test_status_with_a_revoked_token(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    token = vault.create_token(["root"])
    vault.revoke(token)
    with pytest.raises(BackendAuthError, match="rejected the token"):
        make_client(token).status()
