"""JWT signing/verification and key derivation through KeyManager.

JWT ``kid`` is ``name:vN``. Verification accepts any readable version (pending, primary,
active), so a rotation never logs anyone out; once a version is disabled or destroyed, its
tokens fail. Audit policy: every signing/verification *failure* is recorded; successes are
recorded once per key version and process (``jwt.sign`` / ``jwt.verify`` with ``first_use``),
so a service verifying thousands of tokens a second does not fsync the log per token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ekm.crypto.keytypes import KeyRole, KeyUsage, spec
from ekm.errors import EkmError, NotFoundError, UsageError


@dataclass(frozen=True)
class JwtConfig:
    """The current JWT signing key: ``kid``, ``algorithm``, ``key_name``, ``version``.

    ``access_secret`` is **legacy** (old callers did ``jwt.encode(p, cfg.access_secret)``): it
    is the raw HMAC secret of the primary version, only for hmac keys, None for asymmetric ones.
    New code should call :meth:`KeyManager.sign_jwt`, which never exposes the secret.
    """

    kid: str
    algorithm: str
    key_name: str
    version: int
    access_secret: bytes | None = field(default=None, repr=False)


def _name(key: Any) -> str:
    return key.value if isinstance(key, KeyRole) else str(key)


class TokenOps:
    """Mixin for KeyManager: JWTs and KDFs."""

    def _audit_first(self, op: str, name: str, version: int) -> None:
        seen = self.__dict__.setdefault("_first_use_audited", set())
        if (op, name, version) in seen:
            return
        self.audit_log.append(op, key=name, version=version, first_use=True)
        seen.add((op, name, version))

    def _jwt_usage(self, name: str) -> Any:
        """The key, refused unless its usage is signing: an api-auth or mac HMAC key must not
        mint or accept tokens (one key, one purpose)."""
        key = self.keystore.load(name)
        if key.usage is not KeyUsage.SIGNING:
            raise UsageError(
                f"key {name!r} is for {key.usage.value}, not signing (one key, one purpose)"
            )
        return key

    def _jwt_key(self, name: str) -> Any:
        key = self._jwt_usage(name)
        if key.backend != "file":
            raise UsageError(f"key {name!r} lives in the HSM; JWT signing needs a file-backed key")
        from ekm.crypto import jwt_tokens

        alg = jwt_tokens.algorithm(key.type)
        return key, alg

    def get_jwt_config(self, key: str = "jwt_signing") -> JwtConfig:
        """The signing key id and algorithm (and, for hmac keys, the legacy ``access_secret``)."""
        name = _name(key)
        k, alg = self._jwt_key(name)
        kv = k.version()
        secret = None
        if not spec(k.type_of(kv)).asymmetric:
            secret = self.get_key(name, version=kv.version)  # audit-logged as key.read
        return JwtConfig(f"{name}:v{kv.version}", alg, name, kv.version, secret)

    def sign_jwt(
        self,
        claims: dict[str, Any],
        key: str = "jwt_signing",
        *,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """A compact JWS signed by the primary version; ``kid`` names that version."""
        from ekm.crypto import jwt_tokens

        name = _name(key)
        try:
            k, _alg = self._jwt_key(name)
            kv = k.version()
            self.unlock()
            token = jwt_tokens.sign(
                claims, kid=jwt_tokens.make_kid(name, kv.version), key_type=k.type_of(kv),
                material=self.keystore.material(name, kv.version), headers=headers,
            )  # fmt: skip
        except EkmError as exc:
            self._audit_failure("jwt.sign", name, None, exc)
            raise
        self._audit_first("jwt.sign", name, kv.version)
        return token

    def verify_jwt(
        self,
        token: str,
        key: str = "jwt_signing",
        *,
        audience: str | list[str] | None = None,
        issuer: str | None = None,
        leeway: int = 0,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The claims of a valid token signed by any readable version of ``key``.

        IntegrityError (4) for a bad signature, expiry or malformed token; NotFoundError (3)
        for a ``kid`` of another key or an unknown version; StateError (3) for a disabled or
        destroyed version.
        """
        import jwt

        from ekm.crypto import jwt_tokens

        name = _name(key)
        version = None
        try:
            self._jwt_usage(name)
            try:
                kid = (
                    jwt.get_unverified_header(token).get("kid") if isinstance(token, str) else None
                )
            except jwt.PyJWTError:
                kid = None
            keys: dict[str, Any] = {}
            if isinstance(kid, str):
                kid_name, version = jwt_tokens.parse_kid(kid)
                if kid_name != name:
                    raise NotFoundError(f"the token was signed by key {kid_name!r}, not {name!r}")
                k, kv = self._usable(name, version)
                self.unlock()
                keys[kid] = (k.type_of(kv), self.keystore.material(name, kv.version))
            claims = jwt_tokens.verify(
                token, keys=keys, audience=audience, issuer=issuer, leeway=leeway, now=now
            )
        except EkmError as exc:
            self._audit_failure("jwt.verify", name, version, exc)
            raise
        self._audit_first("jwt.verify", name, version)
        return claims

    # ---- KDFs ----------------------------------------------------------------------------------
    def derive_key(
        self, secret: str | bytes, *, kdf: str = "argon2id", salt: bytes | None = None,
        length: int = 32, **params: int,
    ) -> Any:  # fmt: skip
        """``ekm.crypto.kdf.derive_key``: a ``DerivedKey`` (key, salt, params, phc)."""
        from ekm.crypto import kdf as kdfmod

        return kdfmod.derive_key(secret, kdf=kdf, salt=salt, length=length, **params)

    def hash_password(self, password: str | bytes, kdf: str = "argon2id", **params: int) -> str:
        """A PHC string (Argon2id by default, RFC 9106 parameters)."""
        from ekm.crypto import kdf as kdfmod

        return kdfmod.hash_password(password, kdf, **params)

    def verify_password(self, password: str | bytes, phc: str) -> bool:
        """True if ``password`` matches the PHC string (constant time); False otherwise."""
        from ekm.crypto import kdf as kdfmod

        return kdfmod.verify_password(password, phc)
