"""Vault faults through the ekm command: one line naming the endpoint, exit 5 (4 for auth).

Sealed, revoked token, policy denial and TLS against a real server: tests/openbao/.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.vaultlike.server import VaultLike


def test_unreachable_vault(pair, run, venv, vault):
    a, _ = pair
    vault.stop()
    res = run("--home", str(a), "status", env=venv)
    res.expect_error(5, vault.url, "unreachable")


def test_kv_version_1_mount_is_refused_before_writing(make_home, run, venv, vault):
    vault.enable_kv("kv1", version=1)
    home = make_home("a", vault_table=f'endpoint = "{vault.url}"\nmount_path = "kv1"')
    res = run("--home", str(home), "deploy", env=venv)
    res.expect_error(5, vault.url, "KV version 1", "enable-versioning kv1/")
    assert not (home / "master.json").exists()
    assert not [r for r in vault.requests if r["path"].startswith("kv1/") and r["method"] != "GET"]


def test_transit_key_denied_at_deploy_leaves_nothing(make_home, run, venv, vault):
    vault.set_policy(
        "kv-only",
        {
            "secret/data/ekm/*": ["create", "read", "update"],
            "secret/metadata/ekm/*": ["read", "list"],
        },
    )
    home = make_home("a")
    env = {**venv, "VAULT_TOKEN": vault.create_token(["kv-only"])}
    res = run("--home", str(home), "deploy", env=env)
    res.expect_error(4, vault.url, "denied", "transit/keys/ekm")
    assert not (home / "master.json").exists()


@pytest.fixture
def tls_server(tmp_path):
    cert, key = tmp_path / "vault.pem", tmp_path / "vault.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-days", "2", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = VaultLike(tls=(str(cert), str(key)))
    server.start()
    server.enable_transit()
    yield server, cert
    server.stop()


def test_tls_verification_failure_then_ca_cert_fixes_it(tls_server, make_home, run, base_env):
    server, cert = tls_server
    env = {**base_env, "VAULT_TOKEN": server.root_token}
    home = make_home("a", vault_table=f'endpoint = "{server.url}"')
    res = run("--home", str(home), "deploy", env=env)
    res.expect_error(5, server.url, "TLS verification", "vault.ca_cert")
    assert not (home / "master.json").exists()
    home2 = make_home("b", vault_table=f'endpoint = "{server.url}"\nca_cert = "{cert}"')
    run("--home", str(home2), "deploy", env=env).expect_ok()


def test_status_vault_shows_identity_and_warns_before_expiry(pair, run, venv, vault):
    a, _ = pair
    env = {**venv, "VAULT_TOKEN": vault.create_token(["root"], ttl=600, display_name="token-ci")}
    res = run("--home", str(a), "--json", "status", "--vault", env=env).expect_ok()
    doc = json.loads(res.stdout)["backends"]["vault"]
    assert doc["sealed"] is False and doc["identity"] == "token-ci"
    assert 0 < doc["token_ttl"] <= 600 and doc["expires_soon"] is True
    assert env["VAULT_TOKEN"] not in res.stdout + res.stderr
