"""The same client contract against a real Vault (``vault server -dev``); see docs/vault.md.

Runs only when EKM_TEST_VAULT_ADDR and EKM_TEST_VAULT_TOKEN are set. Each run uses a fresh
KV prefix and Transit key name so it can be repeated against the same dev server.
"""

from __future__ import annotations

import os
import uuid

import pytest

from ekm.backends.vault_client import VaultClient, VaultSettings
from tests.vault import contract

ADDR = os.environ.get("EKM_TEST_VAULT_ADDR", "")
TOKEN = os.environ.get("EKM_TEST_VAULT_TOKEN", "")
pytestmark = pytest.mark.skipif(
    not (ADDR and TOKEN), reason="EKM_TEST_VAULT_ADDR / EKM_TEST_VAULT_TOKEN not set"
)
RUN = uuid.uuid4().hex[:8]


def _client(**table: str) -> VaultClient:
    table = {"endpoint": ADDR, "transit_key": f"ekm-test-{RUN}", **table}
    settings = VaultSettings.from_mapping(table, env={"VAULT_TOKEN": TOKEN}, source="real")
    return VaultClient(settings, max_retries=2)


def test_real_kv_roundtrip() -> None:
    contract.kv_roundtrip(_client(), f"ekm-test-{RUN}/rt")


def test_real_cas_conflict() -> None:
    contract.kv_cas_conflict(_client(), _client(), f"ekm-test-{RUN}/cas")


def test_real_transit() -> None:
    contract.transit_roundtrip(_client())


def test_real_status() -> None:
    st = _client().status()
    assert st["sealed"] is False and st["kv_version"] == 2
    assert TOKEN not in repr(st)
