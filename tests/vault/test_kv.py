"""KV v2 through VaultClient over real HTTP against VaultLike."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ekm.backends.vault_client import VaultClient
from ekm.errors import BackendError, InvalidError
from tests.vault import contract
from tests.vaultlike.server import VaultLike


def test_kv_roundtrip_list_and_delete(client: VaultClient) -> None:
    contract.kv_roundtrip(client, "ekm")


def test_two_hosts_rotating_at_once_never_lose_a_version(
    make_client: Callable[..., VaultClient],
) -> None:
    contract.kv_cas_conflict(make_client(), make_client(), "ekm")


def test_every_write_carries_cas(vault: VaultLike, client: VaultClient) -> None:
    client.kv_write("ekm/a", {"k": "v"}, cas=0)
    writes = [r for r in vault.requests if r["method"] == "POST" and "/data/" in r["path"]]
    assert writes and all(w["body"]["options"] == {"cas": 0} for w in writes)


def test_cas_required_mount_accepts_ekm_writes(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    vault.enable_kv("strict", 2, cas_required=True)
    c = make_client(mount_path="strict")
    assert c.kv_write("k", {"a": "b"}, cas=0) == 1


def test_answer_lost_after_write_landed_is_not_a_conflict(
    vault: VaultLike, client: VaultClient
) -> None:
    """A proxy drops the reply of a write that Vault applied; the retry sees its own write."""
    client.kv_write("ekm/k", {"v": "1"}, cas=0)
    vault.lose_next_answers(1)
    assert client.kv_write("ekm/k", {"v": "2"}, cas=1) == 2
    assert client.kv_read("ekm/k") == ({"v": "2"}, 2)


def test_lost_answer_and_a_different_winner_is_still_a_conflict(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    a, b = make_client(), make_client()
    a.kv_write("ekm/k", {"v": "1"}, cas=0)
    b.kv_write("ekm/k", {"v": "from-b"}, cas=1)
    vault.fail_next(1, 502)
    with pytest.raises(BackendError, match="changed since it was read"):
        a.kv_write("ekm/k", {"v": "from-a"}, cas=1)


def test_kv_v1_mount_is_detected_via_mounts(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    vault.enable_kv("old", 1)
    c = make_client(mount_path="old")
    with pytest.raises(BackendError) as err:
        c.kv_write("k", {"a": "b"}, cas=0)
    assert err.value.exit_code == 5
    assert str(err.value) == (
        f"Vault at {vault.url}: mount old/ is KV version 1 but ekm needs KV version 2; "
        "upgrade it (vault kv enable-versioning old/) or set vault.mount_path to a kv-v2 mount"
    )
    assert not any(r["method"] == "POST" for r in vault.requests), "nothing written to v1"


def test_kv_v1_mount_is_detected_by_error_shape_without_mount_access(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    """A policy that can see no mounts: the 204 answer of a v1 write gives it away."""
    vault.enable_kv("old", 1)
    vault.set_policy("ekm", {"old/*": ["create", "read", "update", "list"]})
    vault.set_policy("nomounts", {"sys/internal/ui/mounts/*": ["deny"]})
    token = vault.create_token(["ekm", "nomounts"])
    vault.fail_next(1, 400, "Path 'old' does not match any mount")  # ui/mounts hidden
    c = make_client(token, mount_path="old")
    with pytest.raises(BackendError, match="mount old/ is KV version 1"):
        c.kv_write("k", {"a": "b"}, cas=0)


def test_kv_v1_read_shape_is_detected(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    vault.enable_kv("old", 1)
    root = make_client(mount_path="old")
    root._kv_version = 0  # as if the mount lookup had been denied
    vault_v1 = vault._mounts[""]["old/"]
    vault_v1.secrets["data/k"] = {"data": {"a": "b"}}
    with pytest.raises(BackendError, match="mount old/ is KV version 1"):
        root.kv_read("k")


def test_non_kv_mount_is_refused(vault: VaultLike, make_client: Callable[..., VaultClient]) -> None:
    c = make_client(mount_path="transit")
    with pytest.raises(BackendError, match="mount transit/ is a transit engine, not KV"):
        c.kv_read("k")


def test_soft_deleted_latest_version_is_loud_not_absent(
    vault: VaultLike, client: VaultClient
) -> None:
    client.kv_write("ekm/k", {"v": "1"}, cas=0)
    client._call(
        lambda c: c.adapter.delete("/v1/secret/data/ekm/k"), "test delete", "secret/data/ekm/k"
    )
    with pytest.raises(BackendError, match=r"latest version \(1\) of secret/data/ekm/k is deleted"):
        client.kv_read("ekm/k")


@pytest.mark.parametrize("bad", ["", "/", "a/../b", "a//b", "a/ b", "a/%2e", "x?list=true"])
def test_unsafe_kv_paths_are_refused_before_any_request(
    vault: VaultLike, client: VaultClient, bad: str
) -> None:
    before = len(vault.requests)
    with pytest.raises(InvalidError) as err:
        client.kv_read(bad)
    assert err.value.exit_code == 3
    assert "Vault KV path" in str(err.value)
    assert all("data" not in r["path"] for r in vault.requests[before:])


@pytest.mark.parametrize("cas", [-1, True, None, "1", 1.0])
def test_kv_write_needs_an_integer_cas(client: VaultClient, cas: object) -> None:
    with pytest.raises(InvalidError, match="kv_write needs cas"):
        client.kv_write("ekm/k", {"a": "b"}, cas=cas)  # type: ignore[arg-type]


def test_namespace_header_isolates_secrets(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    vault.enable_kv("secret", 2, namespace="team-a")
    in_ns = make_client(namespace="team-a")
    in_ns.kv_write("ekm/k", {"v": "ns"}, cas=0)
    assert in_ns.kv_read("ekm/k") == ({"v": "ns"}, 1)
    assert make_client().kv_read("ekm/k") is None
    assert {r["namespace"] for r in vault.requests if "data/ekm" in r["path"]} == {"team-a", ""}


def test_token_of_another_namespace_is_rejected(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    vault.enable_kv("secret", 2, namespace="team-b")
    token = vault.create_token(["root"], namespace="team-a")
    from ekm.errors import BackendAuthError

    with pytest.raises(BackendAuthError, match=r"\(namespace team-b\) rejected the token"):
        make_client(token, namespace="team-b").kv_read("ekm/k")
