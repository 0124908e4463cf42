"""Fixtures for the OpenBao tests: a fresh KV mount and Transit key per test, ekm homes on it.

The servers themselves are session fixtures of ``tests/conftest.py`` (started once per run).
Each test gets its own KV v2 mount (``kv-<random>``) and Transit key name, so tests sharing
one server never see each other's keystore.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.vault_integration.conftest import KEYS_TOML


@dataclass
class Space:
    """Where one test's keystore lives on a server."""

    server: Any
    mount: str
    transit_key: str

    def table(self, *, endpoint: str | None = None, **extra: str) -> str:
        """The ``[vault]`` table (TOML lines) for a home in this space."""
        lines = [
            f'endpoint = "{endpoint or self.server.url}"',
            f'mount_path = "{self.mount}"',
            f'transit_key = "{self.transit_key}"',
        ]
        lines += [f"{k} = {v}" for k, v in extra.items()]
        return "\n".join(lines)


def new_space(server: Any, *, token: str | None = None) -> Space:
    mount = "kv-" + secrets.token_hex(4)
    kw = {"token": token} if token else {}
    server.call(
        "POST", f"sys/mounts/{mount}", json={"type": "kv", "options": {"version": "2"}}, **kw
    )
    return Space(server, mount, "ekm-" + secrets.token_hex(4))


@pytest.fixture
def space(openbao_dev: Any) -> Space:
    return new_space(openbao_dev)


def write_home(home: Path, vault_table: str, *, source: str = "vault-transit") -> Path:
    """An ekm home (not deployed) whose keystore is on Vault."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / "ekm.toml"
    path.write_text(
        f'[storage]\nbackend = "vault"\n\n[master_key]\nsource = "{source}"\n\n'
        f"[vault]\n{vault_table}\n{KEYS_TOML}"
    )
    os.chmod(path, 0o600)
    return home


@pytest.fixture
def bao_env(base_env: dict[str, str], openbao_dev: Any) -> dict[str, str]:
    """An operator's environment holding the dev server's root token."""
    return {**base_env, "VAULT_TOKEN": openbao_dev.root_token}


@pytest.fixture
def make_home(tmp_path: Path, space: Space) -> Callable[..., Path]:
    def make(name: str, **extra: str) -> Path:
        return write_home(tmp_path / name, space.table(**extra))

    return make


def secret_free(token: str, *texts: str) -> None:
    """The token appears in none of ``texts`` (output, logs, audit log, exceptions)."""
    for text in texts:
        assert token not in text
