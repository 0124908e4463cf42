"""Fixtures: a Vault-compatible server on 127.0.0.1 and ekm homes configured against it.

The server (``tests/vaultlike``) runs in the pytest process; ``ekm`` runs as a subprocess
through ``run`` (root conftest), so every request crosses real HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.vaultlike.server import VaultLike

KEYS_TOML = """
[keys.alpha]
type = "aes-256-gcm"
usage = "encryption"
rotate_every = "30d"
backup = false
keep_versions = 1000

[keys.beta]
type = "hmac-sha256"
usage = "mac"
rotate_every = "30d"
backup = false
keep_versions = 1000
"""


class ConflictingVault(VaultLike):
    """VaultLike plus a second writer: before a chosen KV write lands, someone else writes.

    ``interfere(path, n)``: the next ``n`` writes to ``<mount>/data/<path>`` are each preceded
    by a rewrite of that secret's current data (as another host saving the same key would),
    so the client's ``cas`` no longer matches and Vault answers with a real CAS conflict.
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._interfere: dict[str, int] = {}
        self.interfered = 0

    def interfere(self, path: str, n: int) -> None:
        with self._lock:
            self._interfere[path] = n

    def dispatch(self, method: str, path: str, query: Any, headers: Any, body: Any) -> Any:
        with self._lock:
            left = self._interfere.get(path, 0)
            if method in ("POST", "PUT") and left:
                self._interfere[path] = left - 1
                root = {"X-Vault-Token": self.root_token}
                status, current = super().dispatch("GET", path, {}, root, None)
                assert status == 200, current
                data = current["data"]
                rewrite = {"data": data["data"], "options": {"cas": data["metadata"]["version"]}}
                assert super().dispatch("POST", path, {}, root, rewrite)[0] == 200
                self.interfered += 1
        return super().dispatch(method, path, query, headers, body)


@pytest.fixture
def vault() -> Iterator[ConflictingVault]:
    server = ConflictingVault()
    server.start()
    server.enable_transit()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def venv(base_env: dict[str, str], vault: VaultLike) -> dict[str, str]:
    """An operator's environment holding the root token of the test server."""
    return {**base_env, "VAULT_TOKEN": vault.root_token}


def write_config(home: Path, vault_table: str, *, source: str = "vault-transit") -> Path:
    home.mkdir(mode=0o700, exist_ok=True)
    path = home / "ekm.toml"
    text = (
        f'[storage]\nbackend = "vault"\n\n[master_key]\nsource = "{source}"\n'
        "argon2_memory_kib = 19456\nargon2_iterations = 2\nargon2_parallelism = 1\n\n"
        f"[vault]\n{vault_table}\n{KEYS_TOML}"
    )
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def make_home(tmp_path: Path, vault: VaultLike) -> Callable[..., Path]:
    """``make_home(name, source=..., vault_table=...)``: a home with an ekm.toml, not deployed."""

    def make(name: str, *, source: str = "vault-transit", vault_table: str | None = None) -> Path:
        home = tmp_path / name
        write_config(home, vault_table or f'endpoint = "{vault.url}"', source=source)
        return home

    return make


@pytest.fixture
def pair(make_home: Callable[..., Path], run: Callable[..., Any], venv: dict[str, str]):
    """Two homes deployed against the same Vault: ``a`` created the keystore, ``b`` joined."""
    a, b = make_home("a"), make_home("b")
    run("--home", str(a), "deploy", env=venv).expect_ok()
    run("--home", str(b), "deploy", env=venv).expect_ok()
    return a, b
