"""Faults: unreachable, sealed, 5xx/429 retries, revoked token, policy denial, logins."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from ekm.backends.vault_client import PolicyDenied, VaultClient, VaultSettings
from ekm.errors import BackendAuthError, BackendError, ConfigError
from tests.vault.conftest import SleepRecorder
from tests.vaultlike.server import VaultLike


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_vault_is_retried_with_bounded_backoff_then_exit_5() -> None:
    """Rounds back off (jittered, doubling, capped) until vault.failover_timeout is spent."""
    sleeps = SleepRecorder()
    url = f"http://127.0.0.1:{_closed_port()}"
    table = {"endpoint": url, "failover_timeout": 10}
    settings = VaultSettings.from_mapping(table, env={"VAULT_TOKEN": "hvs.SECRET"})
    client = VaultClient(settings, sleep=sleeps, max_retries=4, backoff=1.0, max_backoff=4.0)
    with pytest.raises(BackendError) as err:
        client.kv_read("ekm/k")
    assert err.value.exit_code == 5
    msg = str(err.value)
    assert msg.startswith(
        f"Vault at {url} is unreachable (connection refused or timed out); "
        f"gave up on mount lookup after {len(sleeps.calls) + 1} attempts in "
    )
    assert sum(sleeps.calls) == pytest.approx(10.0)  # the budget, not one second more
    for got, cap in zip(sleeps.calls[:-1], [1.0, 2.0, 4.0, 4.0, 4.0, 4.0], strict=False):
        assert cap / 2 <= got <= cap  # exponential, jittered, capped


def test_transient_500_and_429_are_retried_then_succeed(
    vault: VaultLike, client: VaultClient, sleeps: SleepRecorder
) -> None:
    client.kv_write("ekm/k", {"v": "1"}, cas=0)
    vault.fail_next(1, 500)
    vault.fail_next(1, 429)
    assert client.kv_read("ekm/k") == ({"v": "1"}, 1)
    # urllib3's Retry repeats the first failure at once, then waits: Retry-After: 1 honoured
    assert sleeps.calls == [1.0]


def test_persistent_500_gives_up_within_the_failover_budget(
    vault: VaultLike, make_client: Callable[..., VaultClient], sleeps: SleepRecorder
) -> None:
    c = make_client(max_retries=2, failover_timeout=5)
    c.check_kv_v2()
    vault.fail_next(1000, 500)
    with pytest.raises(BackendError, match=r"answered HTTP 500 \(server error\); gave up on KV"):
        c.kv_read("ekm/k")
    assert 5.0 <= sum(sleeps.calls) <= 5.0 + 2 * 8.0  # urllib3's own backoff adds at most 2


def test_sealed_vault_is_named_at_once_and_not_retried(
    vault: VaultLike, client: VaultClient, sleeps: SleepRecorder
) -> None:
    """Waiting cannot unseal a node (an operator must): exit 5 at once, naming the fix."""
    vault.seal()
    with pytest.raises(BackendError) as err:
        client.kv_read("ekm/k")
    assert err.value.exit_code == 5
    assert str(err.value) == (
        f"Vault at {vault.url} is sealed; unseal it (bao/vault operator unseal); "
        "mount lookup was not sent"
    )
    assert sleeps.calls == []


def test_revoked_token_is_an_auth_error_and_not_retried(
    vault: VaultLike, make_client: Callable[..., VaultClient], sleeps: SleepRecorder
) -> None:
    token = vault.create_token(["root"])
    c = make_client(token)
    c.kv_write("ekm/k", {"v": "1"}, cas=0)
    vault.revoke(token)
    with pytest.raises(BackendAuthError) as err:
        c.kv_read("ekm/k")
    assert err.value.exit_code == 4
    assert str(err.value) == (
        f"Vault at {vault.url} rejected the token (expired or revoked); "
        "issue a new token and set VAULT_TOKEN or vault.token_file"
    )
    assert token not in str(err.value)
    assert sleeps.calls == []


def test_expired_token_is_an_auth_error(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    token = vault.create_token(["root"], ttl=1)
    vault._tokens[token].created -= 5  # issued five seconds ago: expired, no waiting
    with pytest.raises(BackendAuthError, match="rejected the token"):
        make_client(token).kv_read("ekm/k")


def test_policy_denial_names_the_path_and_capability_and_is_not_retried(
    vault: VaultLike, make_client: Callable[..., VaultClient], sleeps: SleepRecorder
) -> None:
    vault.set_policy("ro", {"secret/data/ekm/*": ["read"], "secret/metadata/ekm/*": ["read"]})
    c = make_client(vault.create_token(["ro"]))
    assert c.kv_read("ekm/k") is None
    with pytest.raises(PolicyDenied) as err:
        c.kv_write("ekm/k", {"v": "1"}, cas=0)
    assert type(err.value) is PolicyDenied and err.value.exit_code == 4
    assert str(err.value) == (
        f"Vault at {vault.url} denied KV write on secret/data/ekm/k (permission denied): the "
        "token's policy lacks the 'create' capability on secret/data/ekm/k; grant it "
        "(see docs/vault.md)"
    )
    assert sleeps.calls == []


def test_missing_token_is_an_auth_error(vault: VaultLike) -> None:
    settings = VaultSettings(endpoint=vault.url, token="")
    with pytest.raises(BackendAuthError, match="rejected the token"):
        VaultClient(settings).kv_read("ekm/k")


# -- AppRole and Kubernetes -------------------------------------------------------------


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_approle_login_and_relogin_after_token_expiry(
    vault: VaultLike, make_client: Callable[..., VaultClient], tmp_path: Path
) -> None:
    vault.enable_approle("role-1", "s3cr3t-id", ["root"])
    sid = _write(tmp_path / "secret_id", "s3cr3t-id")
    c = make_client(auth_method="approle", role_id="role-1", secret_id_file=str(sid))
    c.kv_write("ekm/k", {"v": "1"}, cas=0)
    vault.revoke(c._hvac.token)  # the AppRole token expired: ekm logs in again by itself
    assert c.kv_read("ekm/k") == ({"v": "1"}, 1)
    logins = [r for r in vault.requests if r["path"] == "auth/approle/login"]
    assert len(logins) == 2


def test_approle_bad_secret_id_is_an_auth_error_without_the_secret(
    vault: VaultLike, make_client: Callable[..., VaultClient], tmp_path: Path
) -> None:
    vault.enable_approle("role-1", "right", ["root"])
    sid = _write(tmp_path / "secret_id", "wrong-secret-id")
    c = make_client(auth_method="approle", role_id="role-1", secret_id_file=str(sid))
    with pytest.raises(BackendAuthError) as err:
        c.kv_read("ekm/k")
    assert str(err.value) == (
        f"Vault at {vault.url} rejected the AppRole login (auth/approle/login); "
        "check vault.role_id and the secret ID file"
    )


def test_approle_secret_id_file_readable_by_others_is_refused(
    vault: VaultLike, make_client: Callable[..., VaultClient], tmp_path: Path
) -> None:
    from ekm.errors import UnsafePermissionsError

    vault.enable_approle("role-1", "s3cr3t-id", ["root"])
    sid = _write(tmp_path / "secret_id", "s3cr3t-id", mode=0o644)
    c = make_client(auth_method="approle", role_id="role-1", secret_id_file=str(sid))
    with pytest.raises(UnsafePermissionsError, match="chmod 0600"):
        c.kv_read("ekm/k")


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "exactly one token"), ("two tokens", "exactly one token"), ("\xe9t\xe9", "not ASCII")],
)
def test_malformed_token_file_is_a_config_error(
    vault: VaultLike, tmp_path: Path, content: str, message: str
) -> None:
    f = tmp_path / "token"
    f.write_bytes(content.encode("latin-1"))
    f.chmod(0o600)
    settings = VaultSettings.from_mapping({"endpoint": vault.url, "token_file": str(f)}, env={})
    with pytest.raises(ConfigError, match=message):
        VaultClient(settings).kv_read("ekm/k")


def test_token_file_is_used(vault: VaultLike, tmp_path: Path) -> None:
    f = _write(tmp_path / "token", vault.root_token)
    settings = VaultSettings.from_mapping({"endpoint": vault.url, "token_file": str(f)}, env={})
    assert VaultClient(settings).kv_read("ekm/k") is None


def test_kubernetes_login(
    vault: VaultLike, make_client: Callable[..., VaultClient], tmp_path: Path
) -> None:
    vault.enable_kubernetes("ekm", "eyJ.sa.jwt", ["root"])
    jwt = _write(tmp_path / "token", "eyJ.sa.jwt", mode=0o644)  # as kubelet mounts it
    c = make_client(auth_method="kubernetes", role="ekm", service_account_token_path=str(jwt))
    assert c.status()["identity"] == "kubernetes-ekm"


def test_kubernetes_wrong_jwt_is_an_auth_error(
    vault: VaultLike, make_client: Callable[..., VaultClient], tmp_path: Path
) -> None:
    vault.enable_kubernetes("ekm", "eyJ.right", ["root"])
    jwt = _write(tmp_path / "token", "eyJ.wrong")
    c = make_client(auth_method="kubernetes", role="ekm", service_account_token_path=str(jwt))
    with pytest.raises(BackendAuthError) as err:
        c.kv_read("ekm/k")
    assert "rejected the Kubernetes login (auth/kubernetes/login) for role 'ekm'" in str(err.value)
    assert "eyJ.wrong" not in str(err.value)


def test_kubernetes_missing_service_account_token(
    vault: VaultLike, make_client: Callable[..., VaultClient], tmp_path: Path
) -> None:
    c = make_client(
        auth_method="kubernetes", role="ekm", service_account_token_path=str(tmp_path / "none")
    )
    with pytest.raises(ConfigError, match=r"vault.service_account_token_path: .* does not exist"):
        c.kv_read("ekm/k")


def test_server_error_text_is_cleaned_of_secrets(
    vault: VaultLike, make_client: Callable[..., VaultClient]
) -> None:
    """A hostile or buggy server echoing the token must not put it in our message."""
    c = make_client()
    c.check_kv_v2()
    vault.fail_next(1, 400, f"bad request for token {vault.root_token}\nsecond line")
    with pytest.raises(BackendError) as err:
        c.kv_read("ekm/k")
    assert vault.root_token not in str(err.value)
    assert "[redacted]" in str(err.value) and "\n" not in str(err.value)


def test_malformed_json_answer_is_a_backend_error(
    vault: VaultLike, client: VaultClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.kv_write("ekm/k", {"v": "1"}, cas=0)
    from tests.vaultlike import kv

    monkeypatch.setattr(kv.KVv2, "_data", lambda *a: (200, {"data": {"data": "x", "metadata": {}}}))
    with pytest.raises(BackendError, match="malformed KV v2 answer for secret/data/ekm/k"):
        client.kv_read("ekm/k")
