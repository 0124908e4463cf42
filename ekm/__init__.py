"""ekm: enterprise cryptographic key management.

``from ekm import KeyManager`` is the whole API. The package import is deliberately light:
names are resolved lazily (PEP 562) so ``import ekm`` and ``ekm --version`` load no
cryptography backend, no rich and no typer.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not ``from typing import``: typing alone costs more than ``--version``

__version__ = "0.1.0"

_LAZY = {
    "KeyManager": ("ekm.manager", "KeyManager"),
    "EnterpriseKeyManager": ("ekm.manager", "KeyManager"),
    "KeyType": ("ekm.crypto.keytypes", "KeyType"),
    "KeyUsage": ("ekm.crypto.keytypes", "KeyUsage"),
    "KeyState": ("ekm.crypto.keytypes", "KeyState"),
    "KeyRole": ("ekm.crypto.keytypes", "KeyRole"),
    "SecurityLevel": ("ekm.crypto.keytypes", "SecurityLevel"),
    "EkmError": ("ekm.errors", "EkmError"),
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from ekm.crypto.keytypes import KeyRole, KeyState, KeyType, KeyUsage, SecurityLevel
    from ekm.errors import EkmError
    from ekm.manager import KeyManager

    EnterpriseKeyManager = KeyManager


def __getattr__(name: str) -> object:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ekm' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
