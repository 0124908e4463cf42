"""Compatibility path: the Vault client lives in :mod:`ekm.backends.vault` now.

Kept because callers (and operators' scripts) import ``ekm.backends.vault_client``; it loads
no hvac or requests.
"""

from __future__ import annotations

from ekm.backends.vault.client import PolicyDenied, VaultClient
from ekm.backends.vault.settings import (
    AUTH_METHODS,
    K8S_TOKEN_PATH,
    KNOWN_KEYS,
    VaultSettings,
)
from ekm.backends.vault.util import (
    CAS_MISMATCH,
    MAX_CREDENTIAL_BYTES,
    MAX_RESPONSE_BYTES,
    CasConflict,
)

__all__ = [
    "AUTH_METHODS",
    "CAS_MISMATCH",
    "K8S_TOKEN_PATH",
    "KNOWN_KEYS",
    "MAX_CREDENTIAL_BYTES",
    "MAX_RESPONSE_BYTES",
    "CasConflict",
    "PolicyDenied",
    "VaultClient",
    "VaultSettings",
]
