"""Fixtures: a VaultLike server on 127.0.0.1 and clients pointed at it (no real sleeping)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ekm.backends.vault_client import VaultClient, VaultSettings
from tests.vaultlike.server import VaultLike


class SleepRecorder:
    """An injectable ``sleep`` that records delays instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def vault() -> Iterator[VaultLike]:
    server = VaultLike()
    server.start()
    server.enable_transit()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(vault: VaultLike, sleeps: SleepRecorder) -> Iterator[Callable[..., VaultClient]]:
    """``make_client(token=..., **vault_table_overrides)`` -> a VaultClient for the server."""
    made: list[VaultClient] = []

    def make(token: str | None = None, *, max_retries: int = 3, **table: Any) -> VaultClient:
        table.setdefault("endpoint", vault.url)
        env = {"VAULT_TOKEN": token or vault.root_token}
        settings = VaultSettings.from_mapping(table, env=env, source="test.toml")
        client = VaultClient(settings, sleep=sleeps, max_retries=max_retries)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., VaultClient]) -> VaultClient:
    return make_client()
