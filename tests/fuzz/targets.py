"""Every parser of untrusted input, as ``target(data: bytes) -> None`` (the fuzzing table).

Shared by the hypothesis properties (tests/fuzz/test_parsers.py) and the atheris harnesses
(tests/fuzz/atheris_*.py), so both exercise exactly the same entry points. A target may raise
only an ``EkmError`` subclass: anything else (a traceback, exit 70 in the CLI) is a bug.
Each target builds what the parser needs (a home in a temp dir, a root key, a resolver) once,
lazily, and keeps it: fuzzers call a target millions of times.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

Target = Callable[[bytes], None]

_ROOT = bytes(range(32))  # a known root key: targets need an unlocked keystore, not secrecy


@functools.cache
def _workdir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="ekm-fuzz-"))
    os.chmod(d, 0o700)
    (d / "keys").mkdir(mode=0o700)
    return d


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def config_toml(data: bytes) -> None:
    from ekm import config

    config.parse(data, Path("fuzz.toml"))


def keystore_document(data: bytes) -> None:
    """``Keystore._doc`` and ``Key.from_dict`` on a hostile keys/NAME.json, locked and not."""
    from ekm.backends.filestore import FileDocumentStore
    from ekm.keystore import Keystore
    from ekm.masterkey import RootKey

    d = _workdir()
    _write(d / "keys" / "fuzz.json", data)
    store = FileDocumentStore(d / "keys", d / ".lock")
    Keystore(store).load("fuzz")  # metadata-only path: no MAC to stop hostile meta
    Keystore(store, RootKey(bytearray(_ROOT))).load("fuzz")


def master_json(data: bytes) -> None:
    from ekm import masterkey

    d = _workdir()
    _write(d / "master.json", data)
    masterkey.read_meta(d)


def backup_bundle(data: bytes) -> None:
    """``read_header`` then ``open_bundle`` with a local key (no Argon2 work per input)."""
    from ekm.rotation import backup

    header, _, _ = backup.read_header(data)
    if header.get("mode") == "local":
        backup.open_bundle(data, local_key=_ROOT)


def audit_log(data: bytes) -> None:
    """``AuditLog.verify`` over hostile lines: it must report, never raise."""
    from ekm.auditlog import AuditLog

    d = _workdir()
    _write(d / "audit.log", data)
    result = AuditLog(d / "audit.log", mac_key=_ROOT).verify()
    assert isinstance(result.ok, bool)


@functools.cache
def _wrapper() -> Any:
    from ekm.crypto.wrapping import AeadWrapper

    return AeadWrapper("fuzz", 1, "aes-256-gcm", _ROOT)


def _resolve(name: str, version: int) -> Any:
    from ekm.errors import NotFoundError

    if (name, version) != ("fuzz", 1):
        raise NotFoundError(f"no key {name!r} v{version}")
    return _wrapper()


def envelope_record(data: bytes) -> None:
    from ekm.crypto import envelope

    envelope.decrypt(data, b"", resolve=_resolve)


def stream_ciphertext(data: bytes) -> None:
    from ekm.crypto import stream

    stream.decrypt_stream(io.BytesIO(data), io.BytesIO(), _resolve)


def compliance_rules(data: bytes) -> None:
    from ekm.compliance import ruleset
    from ekm.errors import InvalidError

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidError("not UTF-8") from None  # read_rule_file's own first check
    ruleset.parse_rule_set(text, "fuzz.toml", custom=True)


def api_key(data: bytes) -> None:
    from ekm.crypto import apikey

    apikey.check_format(data.decode("utf-8", "replace"))


def jwt(data: bytes) -> None:
    from ekm.crypto import jwt_tokens

    jwt_tokens.verify(
        data.decode("utf-8", "replace"),
        keys={"fuzz:v1": ("hmac-sha256", _ROOT)},
        audience="fuzz",
        issuer="fuzz",
    )


TARGETS: dict[str, Target] = {
    "config_toml": config_toml,
    "keystore_document": keystore_document,
    "master_json": master_json,
    "backup_bundle": backup_bundle,
    "audit_log": audit_log,
    "envelope_record": envelope_record,
    "stream_ciphertext": stream_ciphertext,
    "compliance_rules": compliance_rules,
    "api_key": api_key,
    "jwt": jwt,
}


def run_one(name: str, data: bytes) -> None:
    """Call a target; EkmError is a correct refusal and is swallowed."""
    from ekm.errors import EkmError

    try:
        TARGETS[name](data)
    except EkmError as exc:
        assert exc.message and "\n" not in exc.message
