"""The key types ekm knows and what each one is.

This module is data plus enums; it imports nothing heavy, so the CLI can validate ``--type``
and ``rotate --check`` can read metadata without loading any cryptography backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class KeyType(str, Enum):
    """Algorithm of a key (the ``type`` field of a key)."""

    AES_256_GCM = "aes-256-gcm"
    AES_128_GCM = "aes-128-gcm"
    CHACHA20_POLY1305 = "chacha20-poly1305"
    HMAC_SHA256 = "hmac-sha256"
    HMAC_SHA384 = "hmac-sha384"
    HMAC_SHA512 = "hmac-sha512"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"
    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    ED25519 = "ed25519"
    X25519 = "x25519"
    ML_KEM_768 = "ml-kem-768"
    ML_KEM_1024 = "ml-kem-1024"
    ML_DSA_44 = "ml-dsa-44"
    ML_DSA_65 = "ml-dsa-65"
    ML_DSA_87 = "ml-dsa-87"
    HYBRID_X25519_ML_KEM_768 = "x25519-ml-kem-768"
    HYBRID_ED25519_ML_DSA_65 = "ed25519-ml-dsa-65"

    def __str__(self) -> str:
        return self.value


class KeyUsage(str, Enum):
    """What a key is for; one key, one purpose (SP 800-57 Part 1, 5.2)."""

    ENCRYPTION = "encryption"
    SIGNING = "signing"
    MAC = "mac"
    KEY_WRAPPING = "key-wrapping"
    API_AUTH = "api-auth"
    KEY_AGREEMENT = "key-agreement"

    def __str__(self) -> str:
        return self.value


class KeyState(str, Enum):
    """State of one key version (DESIGN.md, as Vault Transit and Tink)."""

    PENDING = "pending"
    PRIMARY = "primary"
    ACTIVE = "active"
    DISABLED = "disabled"
    DESTROYED = "destroyed"

    def __str__(self) -> str:
        return self.value


class SecurityLevel(int, Enum):
    """How much harm the compromise of a key does; orders monitor events too."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    def __str__(self) -> str:
        return self.name


class KeyRole(str, Enum):
    """The keys of the default key set, by the names the old system's callers used."""

    DATABASE_ENCRYPTION = "database_encryption"
    JWT_SIGNING = "jwt_signing"
    API_MASTER = "api_master"
    API_INTERNAL = "api_internal"
    SESSION = "session"
    HMAC = "hmac"
    RSA = "rsa"

    def __str__(self) -> str:
        return self.value


# Callers of the old system wrote ``generate_api_key(KeyType.API_MASTER)``: those role names
# stay reachable on KeyType without becoming algorithms.
for _role in KeyRole:
    type.__setattr__(KeyType, _role.name, _role)


@dataclass(frozen=True)
class KeyTypeSpec:
    """Facts about one key type: family, sizes and SP 800-57 security strength."""

    type: KeyType
    family: str  # aead | mac | rsa | ec | eddsa | ecdh | ml-kem | ml-dsa | hybrid-kem | hybrid-sig
    key_bits: int  # symmetric key length, RSA modulus, curve order size
    strength: int  # security strength in bits (SP 800-57 Part 1 Table 2)
    usages: frozenset[KeyUsage]
    asymmetric: bool
    jose_alg: str | None = None  # JWS "alg" when the key signs JWTs
    post_quantum: bool = False

    @property
    def symmetric(self) -> bool:
        return not self.asymmetric


_E = KeyUsage.ENCRYPTION
_S = KeyUsage.SIGNING
_M = KeyUsage.MAC
_W = KeyUsage.KEY_WRAPPING
_A = KeyUsage.API_AUTH
_K = KeyUsage.KEY_AGREEMENT


def _spec(t: KeyType, family: str, bits: int, strength: int, usages: set[KeyUsage], **kw) -> None:
    SPECS[t] = KeyTypeSpec(t, family, bits, strength, frozenset(usages), **kw)


SPECS: dict[KeyType, KeyTypeSpec] = {}
_spec(KeyType.AES_256_GCM, "aead", 256, 256, {_E, _W}, asymmetric=False)
_spec(KeyType.AES_128_GCM, "aead", 128, 128, {_E, _W}, asymmetric=False)
_spec(KeyType.CHACHA20_POLY1305, "aead", 256, 256, {_E, _W}, asymmetric=False)
_spec(KeyType.HMAC_SHA256, "mac", 256, 256, {_M, _S, _A}, asymmetric=False, jose_alg="HS256")
_spec(KeyType.HMAC_SHA384, "mac", 384, 384, {_M, _S, _A}, asymmetric=False, jose_alg="HS384")
_spec(KeyType.HMAC_SHA512, "mac", 512, 512, {_M, _S, _A}, asymmetric=False, jose_alg="HS512")
_spec(KeyType.RSA_2048, "rsa", 2048, 112, {_S, _E, _W}, asymmetric=True, jose_alg="PS256")
_spec(KeyType.RSA_3072, "rsa", 3072, 128, {_S, _E, _W}, asymmetric=True, jose_alg="PS256")
_spec(KeyType.RSA_4096, "rsa", 4096, 128, {_S, _E, _W}, asymmetric=True, jose_alg="PS256")
_spec(KeyType.EC_P256, "ec", 256, 128, {_S, _K}, asymmetric=True, jose_alg="ES256")
_spec(KeyType.EC_P384, "ec", 384, 192, {_S, _K}, asymmetric=True, jose_alg="ES384")
_spec(KeyType.ED25519, "eddsa", 255, 128, {_S}, asymmetric=True, jose_alg="EdDSA")
_spec(KeyType.X25519, "ecdh", 255, 128, {_E, _K}, asymmetric=True)
_spec(KeyType.ML_KEM_768, "ml-kem", 768, 192, {_E, _K}, asymmetric=True, post_quantum=True)
_spec(KeyType.ML_KEM_1024, "ml-kem", 1024, 256, {_E, _K}, asymmetric=True, post_quantum=True)
_spec(KeyType.ML_DSA_44, "ml-dsa", 44, 128, {_S}, asymmetric=True, post_quantum=True)
_spec(KeyType.ML_DSA_65, "ml-dsa", 65, 192, {_S}, asymmetric=True, post_quantum=True)
_spec(KeyType.ML_DSA_87, "ml-dsa", 87, 256, {_S}, asymmetric=True, post_quantum=True)
_spec(
    KeyType.HYBRID_X25519_ML_KEM_768, "hybrid-kem", 768, 192, {_E, _K},
    asymmetric=True, post_quantum=True,
)  # fmt: skip
_spec(
    KeyType.HYBRID_ED25519_ML_DSA_65, "hybrid-sig", 65, 128, {_S},
    asymmetric=True, post_quantum=True,
)  # fmt: skip

TYPE_NAMES = tuple(t.value for t in KeyType)
USAGE_NAMES = tuple(u.value for u in KeyUsage)


def parse_type(value: str | KeyType) -> KeyType:
    """``KeyType`` from its name; ValueError listing the valid names."""
    try:
        return KeyType(str(value).lower())
    except ValueError:
        raise ValueError(
            f"unknown key type {value!r}; expected one of: {', '.join(TYPE_NAMES)}"
        ) from None


def parse_usage(value: str | KeyUsage) -> KeyUsage:
    """``KeyUsage`` from its name; ValueError listing the valid names."""
    try:
        return KeyUsage(str(value).lower())
    except ValueError:
        raise ValueError(
            f"unknown key usage {value!r}; expected one of: {', '.join(USAGE_NAMES)}"
        ) from None


def spec(t: KeyType | str) -> KeyTypeSpec:
    """The :class:`KeyTypeSpec` of a type (accepts its name)."""
    return SPECS[parse_type(t)]
