"""Using keys: data encryption, JWTs, API keys, KDFs (the ``CryptoOps`` mixin of KeyManager).

Split by subject so each file stays small: ``handles`` (key-version resolution, usage
counting, data-key cache), ``data`` (records, streams, files, rewrap, async), ``tokens`` (JWT,
KDF), ``apikey_ops`` (API keys over ``ekm/apikeys.py``), ``usage`` (the wrap-count ledger).
"""

from __future__ import annotations

from ekm.ops.apikey_ops import ApiKeyOps
from ekm.ops.data import DataOps
from ekm.ops.tokens import JwtConfig, TokenOps


class CryptoOps(DataOps, TokenOps, ApiKeyOps):
    """Everything KeyManager does *with* keys (as opposed to managing them)."""


__all__ = ["CryptoOps", "JwtConfig"]
