"""Encrypted backup bundles of keys (metadata + material of every version).

Format (documented in docs/FORMAT.md, "Backup bundles")::

    EKMBAK1\\n
    <header: one line of JSON>\\n
    <AES-256-GCM ciphertext of the payload JSON; nonce in the header; AAD = magic + header>

The header says how the 256-bit bundle key is protected:

* ``passphrase``: Argon2id (RFC 9106 parameters, salt in the header) derives the bundle key
  from a passphrase: for backups kept off-site by people;
* ``recipient``: the bundle key is sealed to a public key (X25519, ML-KEM or X25519+ML-KEM-768
  hybrid, via :mod:`ekm.crypto.recipients`) whose private half can live on an air-gapped host;
* ``local``: a key derived from this home's root key: the automatic backups written before a
  rotation, which protect against a bad rotation, not against losing the master key.

Parsing treats the file as hostile: size limits, strict JSON shapes, and the payload is only
read after authentication succeeded. Every failure to authenticate is one IntegrityError.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ekm.errors import IntegrityError, InvalidError, StateError
from ekm.model import Key
from ekm.timeutil import iso

MAGIC = b"EKMBAK1\n"
MAX_HEADER = 64 * 1024
MAX_BUNDLE = 512 * 1024 * 1024
_NOT_AUTHENTIC = (
    "the backup is not authentic: wrong passphrase or key, or the file was altered or truncated"
)


@dataclass
class BundleKey:
    """One key in a bundle: its metadata and the material of each version that has some."""

    key: Key
    material: dict[int, bytes] = field(repr=False)  # plaintext key material: never repr'd


@dataclass
class Bundle:
    created: datetime
    source_home: str
    keys: list[BundleKey]
    header: dict[str, Any]


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: Any) -> bytes:
    if not isinstance(s, str):
        raise ValueError("not base64 text")
    return base64.b64decode(s, validate=True)


def _argon2(passphrase: str, salt: bytes, params: dict[str, int]) -> bytes:
    from argon2.low_level import Type, hash_secret_raw

    return hash_secret_raw(
        passphrase.encode(),
        salt,
        time_cost=params["iterations"],
        memory_cost=params["memory_kib"],
        parallelism=params["parallelism"],
        hash_len=32,
        type=Type.ID,
    )


def seal(
    keys: list[BundleKey],
    *,
    created: datetime,
    source_home: str,
    mode: str,
    passphrase: str | None = None,
    argon2: tuple[int, int, int] = (65536, 3, 4),
    recipient: tuple[str, bytes, str] | None = None,
    local_key: bytes | None = None,
) -> bytes:
    """Serialise and encrypt ``keys``. ``recipient`` is (key type, raw public key, id)."""
    bundle_key = os.urandom(32)
    header: dict[str, Any] = {
        "format": 1,
        "created": iso(created),
        "mode": mode,
        "keys": [bk.key.name for bk in keys],
        "source_home": source_home,
    }
    if mode == "passphrase":
        if not passphrase:
            raise InvalidError(
                "a backup passphrase is needed (EKM_BACKUP_PASSPHRASE or the terminal prompt)"
            )
        from ekm.crypto.kdf import check_new_passphrase

        check_new_passphrase(passphrase, "the backup passphrase")
        salt = os.urandom(16)
        params = {"memory_kib": argon2[0], "iterations": argon2[1], "parallelism": argon2[2]}
        header["kdf"] = {"name": "argon2id", "salt": _b64(salt), **params}
        bundle_key = _argon2(passphrase, salt, params)
    elif mode == "recipient":
        if recipient is None:
            raise InvalidError("a recipient public key is needed for a recipient backup")
        from ekm.crypto import recipients

        key_type, public, rid = recipient
        header["recipient"] = {
            "type": key_type,
            "id": rid,
            "slot": _b64(recipients.seal_file_key(key_type, public, bundle_key, recipient_id=rid)),
        }
    elif mode == "local":
        if local_key is None:
            raise InvalidError("local backups need the unlocked master key")
        bundle_key = local_key
    else:
        raise InvalidError(f"unknown backup mode {mode!r}")
    nonce = os.urandom(12)
    header["nonce"] = _b64(nonce)
    header_line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    payload = {
        "keys": [
            {
                "meta": bk.key.to_dict(),
                "material": {str(v): _b64(m) for v, m in bk.material.items()},
            }
            for bk in keys
        ]
    }
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ct = AESGCM(bundle_key).encrypt(nonce, json.dumps(payload).encode(), MAGIC + header_line)
    return MAGIC + header_line + b"\n" + ct


def read_header(data: bytes) -> tuple[dict[str, Any], bytes, bytes]:
    """Parse the magic and header; InvalidError (exit 3) if this is not a bundle at all."""
    if len(data) > MAX_BUNDLE:
        raise InvalidError("the backup file is larger than 512 MiB; refusing to read it")
    if not data.startswith(MAGIC):
        raise InvalidError("not an ekm backup bundle (bad magic)")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    if end < 0:
        raise IntegrityError(_NOT_AUTHENTIC)
    header_line = data[len(MAGIC) : end]
    try:
        header = json.loads(header_line)
        if not isinstance(header, dict) or header.get("format") != 1:
            raise ValueError
        if header.get("mode") not in ("passphrase", "recipient", "local"):
            raise ValueError
        if not isinstance(header.get("keys"), list):
            raise ValueError
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise IntegrityError(_NOT_AUTHENTIC) from None
    return header, header_line, data[end + 1 :]


#: A bundle header is hostile input: it may not ask for more Argon2id work than this.
MAX_ARGON2_MEMORY_KIB = 1024 * 1024
MAX_ARGON2_ITERATIONS = 16


def open_bundle(
    data: bytes,
    *,
    passphrase: str | None = None,
    identity: tuple[str, bytes] | None = None,
    local_key: bytes | None = None,
    max_memory_kib: int = MAX_ARGON2_MEMORY_KIB,
) -> Bundle:
    """Authenticate and decrypt a bundle. ``identity`` is (key type, private material)."""
    header, header_line, ct = read_header(data)
    mode = header["mode"]
    try:
        if mode == "passphrase":
            if passphrase is None:
                raise InvalidError(
                    "this backup is passphrase-protected: set "
                    "EKM_BACKUP_PASSPHRASE or run on a terminal"
                )
            kdf = header["kdf"]
            params = {k: int(kdf[k]) for k in ("memory_kib", "iterations", "parallelism")}
            if not (
                8 <= params["memory_kib"] <= max_memory_kib
                and 1 <= params["iterations"] <= MAX_ARGON2_ITERATIONS
                and 1 <= params["parallelism"] <= 64
            ):
                raise InvalidError(
                    "the backup asks for more Argon2id work than ekm allows (memory <= "
                    f"{max_memory_kib} KiB, <= {MAX_ARGON2_ITERATIONS} passes); refusing it"
                )
            key = _argon2(passphrase, _unb64(kdf["salt"]), params)
        elif mode == "recipient":
            if identity is None:
                raise InvalidError(
                    "this backup is sealed to a recipient key "
                    f"({header['recipient'].get('id')}); pass --identity NAME"
                )
            from ekm.crypto import recipients

            key = recipients.open_file_key(
                identity[0], identity[1], _unb64(header["recipient"]["slot"])
            )
        else:
            if local_key is None:
                raise InvalidError(
                    "this is a local backup: it opens only in the home that "
                    "wrote it, with its master key"
                )
            key = local_key
        nonce = _unb64(header["nonce"])
    except (KeyError, TypeError, ValueError):
        raise IntegrityError(_NOT_AUTHENTIC) from None
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        plain = AESGCM(key).decrypt(nonce, ct, MAGIC + header_line)
    except (InvalidTag, ValueError):
        raise IntegrityError(_NOT_AUTHENTIC) from None
    try:
        payload = json.loads(plain)
        keys = [
            BundleKey(
                Key.from_dict(item["meta"]),
                {int(v): _unb64(m) for v, m in item["material"].items()},
            )
            for item in payload["keys"]
        ]
    except (KeyError, TypeError, ValueError, InvalidError, RecursionError):
        raise IntegrityError("the backup decrypted but its contents are malformed") from None
    from ekm.timeutil import from_iso

    return Bundle(from_iso(header["created"]), str(header.get("source_home", "")), keys, header)


def keep_destroyed(item: BundleKey, local: Any) -> list[int]:
    """Carry this home's destroyed versions into ``item`` (a key about to be restored).

    A bundle made before a version was crypto-shredded still holds its material; restoring
    it as it is would silently undo the destroy (issue 17 item 4). Each version destroyed here
    but not in the bundle takes this home's metadata (state, times) and loses the bundle's
    material, unless the destroy is still inside its recovery window (``destroy_after``), where
    this home keeps the material too. Returns the versions so kept destroyed.
    """
    import dataclasses

    from ekm.crypto.keytypes import KeyState

    mine = {v.version: v for v in local.versions if v.state is KeyState.DESTROYED}
    kept: list[int] = []
    for i, kv in enumerate(item.key.versions):
        here = mine.get(kv.version)
        if here is None or kv.state is KeyState.DESTROYED:
            continue
        if kv.state is KeyState.PRIMARY:
            raise StateError(
                f"the backup's primary version {kv.version} of key {item.key.name!r} was "
                "destroyed here; pass --resurrect-destroyed to bring it back on purpose"
            )
        item.key.versions[i] = dataclasses.replace(here)
        if here.destroy_after is None:
            item.material.pop(kv.version, None)
        kept.append(kv.version)
    return kept
