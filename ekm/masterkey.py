"""The master key: where the keystore's root key comes from.

A random 256-bit *root key* protects the keystore; it is never written to disk in the clear.
``master.json`` in the home holds the root key wrapped by one *source*:

* ``file``: a random 256-bit key in ``master.key`` (0600) wraps it with AES-256-GCM;
* ``passphrase``: Argon2id (RFC 9106, salt and parameters stored) derives the wrapping key;
* ``pkcs11``: a non-extractable AES key in an HSM wraps it (CKM_AES_KEY_WRAP_PAD);
* ``vault-transit``: Vault's Transit engine encrypts it (the auto-unseal pattern).

The extra level means changing the passphrase or moving the master key into an HSM re-wraps
32 bytes instead of re-encrypting every key. Everything else is derived from the root key with
HKDF-SHA256 and a distinct label per purpose (material wrapping, metadata MAC, audit MAC).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ekm.errors import ConfigError, IntegrityError, InvalidError, NotFoundError
from ekm.fsutil import atomic_write, read_private

MASTER_META = "master.json"
FORMAT = 1
_ROOT_AAD = b"ekm/v1/root-key"
_KEYFILE_MAGIC = b"EKM-MASTER-KEY-V1\n"


def hkdf(root: bytes, label: str, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) without salt; ``label`` (the info) separates purposes."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(
        root
    )


@dataclass
class RootKey:
    """The unwrapped root key and its derived subkeys; lives only in memory.

    ``repr`` leaves the key out: a RootKey in a traceback, a log line or a debugger's
    ``repr()`` must not print the secret every other key is protected by.
    """

    key: bytearray = field(repr=False)

    def derive(self, label: str) -> bytes:
        return hkdf(bytes(self.key), f"ekm/v1/{label}")

    @property
    def key_id(self) -> str:
        """A public fingerprint of the root key (names it in status; reveals nothing)."""
        return self.derive("key-id")[:8].hex()

    def wipe(self) -> None:
        for i in range(len(self.key)):
            self.key[i] = 0


def _aead_wrap(kek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return nonce + AESGCM(kek).encrypt(nonce, plaintext, aad)


def _aead_unwrap(kek: bytes, blob: bytes, aad: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(blob) < 12 + 16:
        raise InvalidTag
    return AESGCM(kek).decrypt(blob[:12], blob[12:], aad)


# ----------------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------------
PassphraseProvider = Callable[[bool], str]  # argument: True when asking for a new passphrase


@dataclass
class MasterKeyOptions:
    """What opening or creating the master key needs besides the home."""

    source: str = "file"
    key_file: str = "master.key"
    passphrase: PassphraseProvider | None = None
    argon2: tuple[int, int, int] = (65536, 3, 4)  # memory KiB, iterations, lanes
    hsm: Any = None  # a Token-like object with wrap_with/unwrap_with, for source = pkcs11
    hsm_key_label: str = "ekm-master"
    vault: Any = None  # a VaultClient-like object with transit_encrypt/decrypt


def _argon2_kek(passphrase: str, salt: bytes, memory: int, iterations: int, lanes: int) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        passphrase.encode("utf-8"), salt, time_cost=iterations, memory_cost=memory,
        parallelism=lanes, hash_len=32, type=Type.ID,
    )  # fmt: skip


CREATED_LABEL = "master-created"


def created_mac(root: RootKey, created: str) -> str:
    """HMAC-SHA256 of ``master.json``'s creation time under a key derived from the root key.

    The home is writable by an attacker without the master key: an unauthenticated date
    could make an old master key look young to the cryptoperiod rule. With the MAC, the
    date counts only when the root key confirms it.
    """
    return hmac.new(root.derive(CREATED_LABEL), created.encode(), "sha256").hexdigest()


def create(home: Path, opts: MasterKeyOptions, *, now: Any = None) -> RootKey:
    """Make a fresh root key, wrap it with the chosen source and write ``master.json``.

    ``created`` (UTC, with its MAC) is recorded so the master key's cryptoperiod can be
    audited (SP 800-57 Part 1 Table 1, symmetric key-wrapping key).
    """
    root = bytearray(os.urandom(32))
    meta: dict[str, Any] = {"format": FORMAT, "source": opts.source}
    if opts.source == "file":
        kek = os.urandom(32)
        atomic_write(
            home / opts.key_file, _KEYFILE_MAGIC + base64.b64encode(kek) + b"\n", home=home
        )
        meta["key_file"] = opts.key_file
        meta["wrapped_root"] = _b64(_aead_wrap(kek, bytes(root), _ROOT_AAD))
    elif opts.source == "passphrase":
        if opts.passphrase is None:
            raise ConfigError(
                "the master key is passphrase-derived: set EKM_PASSPHRASE or run "
                "ekm on a terminal to be asked"
            )
        passphrase = opts.passphrase(True)
        from ekm.crypto.kdf import check_new_passphrase

        check_new_passphrase(passphrase)
        salt = os.urandom(16)
        memory, iterations, lanes = opts.argon2
        from ekm.config import ARGON2_MIN_WORK

        if memory * iterations < ARGON2_MIN_WORK:
            raise InvalidError(
                f"Argon2id {memory} KiB x {iterations} passes is below the floor of "
                f"{ARGON2_MIN_WORK} (RFC 9106 / OWASP minimums)"
            )
        kek = _argon2_kek(passphrase, salt, memory, iterations, lanes)
        meta["kdf"] = {
            "name": "argon2id",
            "salt": _b64(salt),
            "memory_kib": memory,
            "iterations": iterations,
            "parallelism": lanes,
            "version": 19,
        }
        meta["wrapped_root"] = _b64(_aead_wrap(kek, bytes(root), _ROOT_AAD))
    elif opts.source == "pkcs11":
        token = _need(opts.hsm, "pkcs11", "[hsm]")
        if not token.has_key(opts.hsm_key_label):
            token.generate_master_key(opts.hsm_key_label)
        meta["hsm_key_label"] = opts.hsm_key_label
        meta["wrapped_root"] = _b64(token.wrap_with(opts.hsm_key_label, bytes(root)))
    elif opts.source == "vault-transit":
        client = _need(opts.vault, "vault-transit", "[vault]")
        client.transit_ensure_key()
        meta["wrapped_root"] = client.transit_encrypt(bytes(root), context=_ROOT_AAD)
    else:
        raise ConfigError(f"unknown master key source {opts.source!r}")
    rk = RootKey(root)
    meta["key_id"] = rk.key_id
    from ekm.timeutil import instant, iso

    meta["created"] = iso(instant(now))
    meta["created_mac"] = created_mac(rk, meta["created"])
    atomic_write(home / MASTER_META, json.dumps(meta, indent=1).encode(), home=home)
    return rk


def _need(obj: Any, source: str, section: str) -> Any:
    if obj is None:
        raise ConfigError(f"master key source {source} needs the {section} section in ekm.toml")
    return obj


def read_meta(home: Path) -> dict[str, Any]:
    """Parse ``master.json`` (hostile input: every field is checked)."""
    path = home / MASTER_META
    if not path.exists():
        raise NotFoundError(f"{path} is missing: this home has no master key (run `ekm deploy`)")
    try:
        meta = json.loads(read_private(path, limit=1024 * 1024, home=home))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError
        _check_meta_fields(meta)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise IntegrityError(
            f"{path} is not a valid ekm master key record (tampered or "
            "truncated); restore it from a backup"
        ) from None
    return meta


#: The fields master.json has for each source; anything else (a renamed field) is refused.
_META_FIELDS = {
    "file": {"key_file"},
    "passphrase": {"kdf"},
    "pkcs11": {"hsm_key_label"},
    "vault-transit": set(),
}
_COMMON_FIELDS = {"format", "source", "wrapped_root", "key_id"}
_OPTIONAL_FIELDS = {"created", "created_mac"}


def _check_meta_fields(meta: dict[str, Any]) -> None:
    source = meta.get("source")
    if source not in _META_FIELDS:
        raise ValueError
    # created/created_mac are absent from homes deployed before they were recorded
    if set(meta) - _OPTIONAL_FIELDS != _COMMON_FIELDS | _META_FIELDS[source]:
        raise ValueError
    if ("created" in meta) != ("created_mac" in meta):
        raise ValueError
    if "created" in meta and not (
        isinstance(meta["created"], str) and isinstance(meta["created_mac"], str)
    ):
        raise ValueError
    if not isinstance(meta["wrapped_root"], str) or not isinstance(meta["key_id"], str):
        raise ValueError
    key_file = meta.get("key_file", "master.key")
    if not isinstance(key_file, str) or not key_file or "/" in key_file or key_file[0] == ".":
        raise ValueError


def open_root(home: Path, opts: MasterKeyOptions) -> RootKey:
    """Unwrap the root key with the source recorded in ``master.json``."""
    meta = read_meta(home)
    source = meta["source"]
    wrapped = meta["wrapped_root"]
    from cryptography.exceptions import InvalidTag

    try:
        if source == "file":
            kek = _read_key_file(home / meta["key_file"], named_in=home / MASTER_META)
            root = _aead_unwrap(kek, _unb64(wrapped), _ROOT_AAD)
        elif source == "passphrase":
            kdf = meta.get("kdf") or {}
            try:
                salt = _unb64(kdf["salt"])
                params = (int(kdf["memory_kib"]), int(kdf["iterations"]), int(kdf["parallelism"]))
                if not (
                    8 <= params[0] <= 4 * 1024 * 1024
                    and 1 <= params[1] <= 64
                    and 1 <= params[2] <= 64
                    and len(salt) >= 16
                ):
                    raise ValueError
            except (KeyError, TypeError, ValueError):
                raise IntegrityError(
                    f"{home / MASTER_META}: Argon2id parameters are invalid (tampered?)"
                ) from None
            if opts.passphrase is None:
                raise ConfigError(
                    "the master key is passphrase-derived: set EKM_PASSPHRASE or "
                    "run ekm on a terminal to be asked"
                )
            kek = _argon2_kek(opts.passphrase(False), salt, *params)
            try:
                root = _aead_unwrap(kek, _unb64(wrapped), _ROOT_AAD)
            except InvalidTag:
                raise IntegrityError(
                    "wrong passphrase: the master key could not be unlocked (check EKM_PASSPHRASE)"
                ) from None
        elif source == "pkcs11":
            token = _need(opts.hsm, "pkcs11", "[hsm]")
            root = token.unwrap_with(
                str(meta.get("hsm_key_label", opts.hsm_key_label)), _unb64(wrapped)
            )
        elif source == "vault-transit":
            client = _need(opts.vault, "vault-transit", "[vault]")
            root = client.transit_decrypt(wrapped, context=_ROOT_AAD)
        else:
            raise IntegrityError(f"{home / MASTER_META}: unknown master key source {source!r}")
    except InvalidTag:
        raise IntegrityError(
            f"{home / MASTER_META}: the wrapped root key failed authentication "
            "(tampered, or the master key file does not belong to it)"
        ) from None
    if len(root) != 32:
        raise IntegrityError(f"{home / MASTER_META}: the root key has the wrong length")
    rk = RootKey(bytearray(root))
    if not hmac.compare_digest(str(meta.get("key_id")), rk.key_id):
        raise IntegrityError(f"{home / MASTER_META}: the root key does not match its key id")
    if "created" in meta and not hmac.compare_digest(
        created_mac(rk, str(meta["created"])), str(meta["created_mac"])
    ):
        raise IntegrityError(
            f"{home / MASTER_META}: the master key's creation time does not authenticate "
            "(tampered); restore master.json from a backup"
        )
    return rk


def _read_key_file(path: Path, *, named_in: Path) -> bytes:
    if not path.exists():
        raise NotFoundError(
            f"{path} is missing (named in {named_in.name}): the master key file is needed to "
            "unlock the keystore (restore it from your backup)"
        )
    data = read_private(path, limit=4096, home=named_in.parent)
    body = data[len(_KEYFILE_MAGIC) :]
    if not data.startswith(_KEYFILE_MAGIC) or len(body) != 45 or not body.endswith(b"\n"):
        raise IntegrityError(f"{path} is not an ekm master key file (tampered or truncated)")
    try:
        kek = base64.b64decode(body[:-1], validate=True)
    except ValueError:
        kek = b""
    if len(kek) != 32 or base64.b64encode(kek) != body[:-1]:  # canonical form only
        raise IntegrityError(f"{path} is not an ekm master key file (tampered or truncated)")
    return kek


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    """Strict base64: the canonical spelling only, so no flipped padding bit goes unseen."""
    try:
        raw = base64.b64decode(text, validate=True)
        if base64.b64encode(raw).decode() != text:
            raise ValueError
        return raw
    except (ValueError, TypeError):
        raise IntegrityError(
            f"{MASTER_META} holds a malformed base64 value (tampered or truncated); restore it "
            "from a backup"
        ) from None
