"""VaultSettings.from_mapping: every bad value is a ConfigError naming the key and the file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ekm.backends.vault_client import VaultSettings
from ekm.errors import ConfigError

ENV = {"VAULT_TOKEN": "hvs.very-secret"}
BASE = {"endpoint": "https://vault.example:8200"}


def test_defaults_and_env_fallbacks() -> None:
    s = VaultSettings.from_mapping(
        {}, env={**ENV, "VAULT_ADDR": "https://v:8200/", "VAULT_NAMESPACE": "ns1/"}
    )
    assert (s.endpoint, s.namespace, s.mount_path, s.transit_mount, s.transit_key) == (
        "https://v:8200",
        "ns1",
        "secret",
        "transit",
        "ekm",
    )
    assert s.token == "hvs.very-secret" and "very-secret" not in repr(s)
    assert s.verify_arg is True and s.cert_arg is None


def test_config_wins_over_vault_addr() -> None:
    s = VaultSettings.from_mapping(BASE, env={**ENV, "VAULT_ADDR": "http://127.0.0.1:8200"})
    assert s.endpoint == "https://vault.example:8200"


def test_tls_paths(tmp_path: Path) -> None:
    for name in ("ca.pem", "c.pem", "k.pem"):
        (tmp_path / name).write_text("x")
    s = VaultSettings.from_mapping(
        {
            **BASE,
            "ca_cert": str(tmp_path / "ca.pem"),
            "client_cert": str(tmp_path / "c.pem"),
            "client_key": str(tmp_path / "k.pem"),
            "timeout": 3,
            "token_warn_before": "12h",
        },
        env=ENV,
    )
    assert s.verify_arg == str(tmp_path / "ca.pem")
    assert s.cert_arg == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    assert s.timeout == 3.0 and s.token_warn_before.total_seconds() == 43200
    assert VaultSettings.from_mapping({**BASE, "verify": False}, env=ENV).verify_arg is False


@pytest.mark.parametrize(
    ("table", "env", "message"),
    [
        ({**BASE, "tokne": "x"}, ENV, "test.toml: unknown key vault.tokne; known keys: "),
        ({**BASE, "token": "hvs.x"}, ENV, "vault.token is not allowed"),
        ({}, ENV, "test.toml: vault.endpoint is not set (nor VAULT_ADDR)"),
        ({"endpoint": "ftp://v"}, ENV, "vault.endpoint 'ftp://v' must be an http(s):// URL"),
        ({"endpoint": "https://u:p@v"}, ENV, "without credentials, query or fragment"),
        ({"endpoint": "https://v/v1"}, ENV, "vault.endpoint must not have a path"),
        ({"endpoint": "https://v:99999"}, ENV, "vault.endpoint has an invalid port"),
        ({"endpoint": "http://vault.example"}, ENV, "plain http to a remote host"),
        ({**BASE, "timeout": 0}, ENV, "vault.timeout must be a number of seconds"),
        ({**BASE, "timeout": True}, ENV, "vault.timeout must be a number of seconds"),
        ({**BASE, "verify": "yes"}, ENV, "vault.verify must be true or false"),
        ({**BASE, "mount_path": 5}, ENV, "vault.mount_path must be a non-empty string"),
        ({**BASE, "mount_path": "a/../b"}, ENV, "vault.mount_path 'a/../b' is not a valid"),
        ({**BASE, "transit_key": "a/b"}, ENV, "vault.transit_key must be one path segment"),
        ({**BASE, "token_warn_before": "soon"}, ENV, "vault.token_warn_before: 'soon' is not"),
        ({**BASE, "auth_method": "ldap"}, ENV, "vault.auth_method must be one of token, approle"),
        (BASE, {}, "neither VAULT_TOKEN nor vault.token_file is set"),
        ({**BASE, "auth_method": "approle"}, {}, "auth_method is approle; set vault.role_id"),
        ({**BASE, "auth_method": "kubernetes"}, {}, "auth_method is kubernetes; set vault.role"),
        ({**BASE, "ca_cert": "/nonexistent/ca.pem"}, ENV, "vault.ca_cert: /nonexistent/ca.pem"),
        ({**BASE, "client_key": "/k"}, ENV, "vault.client_key is set without vault.client_cert"),
        ({**BASE, "token_file": ""}, ENV, "vault.token_file must be a file path"),
    ],
)
def test_bad_settings(table: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        VaultSettings.from_mapping(table, env=env, source="test.toml")
    assert message in str(err.value)
    assert err.value.exit_code == 3
    assert str(err.value).startswith("test.toml: ")
    assert "very-secret" not in str(err.value) and "hvs.x" not in str(err.value)


def test_plain_http_allowed_on_loopback_or_when_asked() -> None:
    assert VaultSettings.from_mapping({"endpoint": "http://[::1]:8200"}, env=ENV).endpoint
    assert VaultSettings.from_mapping({"endpoint": "http://localhost:8200"}, env=ENV).endpoint
    s = VaultSettings.from_mapping(
        {"endpoint": "http://vault.lan", "allow_plaintext_http": True}, env=ENV
    )
    assert s.endpoint == "http://vault.lan"


def test_not_a_table() -> None:
    with pytest.raises(ConfigError, match=r"ekm.toml: \[vault\] must be a table"):
        VaultSettings.from_mapping(["endpoint"], env=ENV)  # type: ignore[arg-type]


def test_importing_the_client_does_not_import_hvac() -> None:
    code = (
        "import sys, ekm.backends.vault_client; "
        "print('hvac' in sys.modules, 'requests' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
