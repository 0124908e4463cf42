"""Tokens, AppRole and policies against a real OpenBao dev server.

The token must never appear in what ekm prints (with or without --debug), in its audit log
or in an exception; an expired or revoked token is exit 4 saying so; a read-only policy
allows ``ekm status`` and ``ekm rotate --check`` and refuses ``ekm rotate`` naming the path
and the missing capability.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.openbao.conftest import Space, write_home


def _deployed(make_home: Callable[..., Path], run: Callable[..., Any], env: dict) -> Path:
    home = make_home("a")
    run("--home", str(home), "deploy", env=env).expect_ok()
    return home


def _token(server: Any, **body: Any) -> str:
    return server.call("POST", "auth/token/create", json=body)["auth"]["client_token"]


def _no_token_anywhere(token: str, home: Path, *results: Any) -> None:
    texts = [r.stdout + r.stderr for r in results]
    texts.append((home / "audit.log").read_text())
    for text in texts:
        assert token not in text


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_a_dead_token_is_exit_4_and_never_shown(
    how: str,
    make_home: Callable[..., Path],
    run: Callable[..., Any],
    bao_env: dict[str, str],
    openbao_dev: Any,
) -> None:
    home = _deployed(make_home, run, bao_env)
    token = _token(openbao_dev, policies=["root"], ttl="2s" if how == "expired" else "1h")
    env = {**bao_env, "VAULT_TOKEN": token}
    ok = run("--home", str(home), "keys", "list", env=env).expect_ok()
    if how == "revoked":
        openbao_dev.call("POST", "auth/token/revoke", json={"token": token})
    else:
        time.sleep(3)
    res = run("--home", str(home), "rotate", "alpha", "--force", env=env)
    res.expect_error(4, openbao_dev.url, "rejected the token (expired or revoked)", "VAULT_TOKEN")
    debug = run("--home", str(home), "--debug", "rotate", "alpha", "--force", env=env)
    assert debug.code == 4
    _no_token_anywhere(token, home, ok, res, debug)


def test_approle_login_rotates_and_the_token_is_renewed(
    space: Space,
    run: Callable[..., Any],
    bao_env: dict[str, str],
    openbao_dev: Any,
    tmp_path: Path,
) -> None:
    server = openbao_dev
    mount = "approle-" + space.mount
    server.call("POST", f"sys/auth/{mount}", json={"type": "approle"})
    everything = 'path "*" { capabilities = ["create", "read", "update", "delete", "list"] }'
    server.call("POST", f"sys/policies/acl/all-{mount}", json={"policy": everything})
    server.call(
        "POST",
        f"auth/{mount}/role/ekm",
        json={"token_policies": [f"all-{mount}"], "token_ttl": "60s", "token_max_ttl": "2h"},
    )
    role_id = server.call("GET", f"auth/{mount}/role/ekm/role-id")["data"]["role_id"]
    secret_id = server.call("POST", f"auth/{mount}/role/ekm/secret-id")["data"]["secret_id"]
    sid = tmp_path / "secret-id"
    sid.write_text(secret_id + "\n")
    sid.chmod(0o600)
    table = space.table(
        auth_method='"approle"',
        approle_mount=f'"{mount}"',
        role_id=f'"{role_id}"',
        secret_id_file=f'"{sid}"',
        token_warn_before='"30m"',
    )
    home = write_home(tmp_path / "a", table)
    env = {k: v for k, v in bao_env.items() if k != "VAULT_TOKEN"}
    results = [run("--home", str(home), "deploy", env=env).expect_ok()]
    results.append(run("--home", str(home), "rotate", "alpha", "--force", env=env).expect_ok())
    res = run("--home", str(home), "--json", "status", "--vault", env=env).expect_ok()
    results.append(res)
    vault = json.loads(res.stdout)["backends"]["vault"]
    assert vault["auth_method"] == "approle"
    # the 60 s token expired within token_warn_before, so ekm renewed it (capped at 2 h)
    assert vault["renewed"] is True and vault["token_ttl"] > 60
    assert vault["expires_soon"] is False
    _no_token_anywhere(secret_id, home, *results)
    # a revoked secret ID: the login is refused, exit 4, the secret ID is not shown
    server.call("POST", f"auth/{mount}/role/ekm/secret-id/destroy", json={"secret_id": secret_id})
    res = run("--home", str(home), "rotate", "alpha", "--force", env=env)
    res.expect_error(4, "rejected the AppRole login", "secret ID")
    _no_token_anywhere(secret_id, home, res)


def test_a_read_only_token_checks_but_cannot_rotate(
    space: Space,
    make_home: Callable[..., Path],
    run: Callable[..., Any],
    bao_env: dict[str, str],
    openbao_dev: Any,
) -> None:
    home = _deployed(make_home, run, bao_env)
    m, key = space.mount, space.transit_key
    policy = (
        f'path "{m}/data/ekm/*" {{ capabilities = ["read"] }}\n'
        f'path "{m}/metadata/ekm/*" {{ capabilities = ["read", "list"] }}\n'
        f'path "{m}/metadata/ekm" {{ capabilities = ["list"] }}\n'
        f'path "transit/decrypt/{key}" {{ capabilities = ["update"] }}\n'
    )
    openbao_dev.call("POST", f"sys/policies/acl/ro-{m}", json={"policy": policy})
    env = {**bao_env, "VAULT_TOKEN": _token(openbao_dev, policies=[f"ro-{m}"])}
    check = run("--home", str(home), "rotate", "--check", env=env)
    assert check.code == 0, check.stderr
    run("--home", str(home), "status", env=env).expect_ok()
    before = (home / "audit.log").read_text()
    res = run("--home", str(home), "rotate", "alpha", "--force", env=env)
    res.expect_error(
        4, openbao_dev.url, "denied KV write", f"{m}/data/ekm/keys/alpha", "'update' capability"
    )
    _no_token_anywhere(env["VAULT_TOKEN"], home, check, res)
    after = (home / "audit.log").read_text()[len(before) :].splitlines()
    # the audit log says what happened: a rotation attempted and refused, not done
    assert [json.loads(e)["result"] for e in after] == ["error"]
