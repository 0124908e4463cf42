"""``KeyManager.sign`` / ``verify`` and their stream and file variants, in process.

Every signing type (the command-line tests cover a representative few), the error types and
messages a Python caller sees, and the audit records.
"""

from __future__ import annotations

import io

import pytest

from ekm.crypto import signatures
from ekm.errors import IntegrityError, InvalidError, NotFoundError, StateError, UsageError
from ekm.manager import KeyManager
from tests.pq_integration.conftest import SIGNERS, audit_records


@pytest.fixture
def km(pq_home):
    return KeyManager(pq_home, env={})


def test_every_signing_type_signs_and_verifies(km):
    data = b"x" * 100
    for name, key_type in SIGNERS.items():
        doc = km.sign(name, data)
        info = km.verify(doc, data)
        assert (info.key_name, info.version, info.key_type.value) == (name, 1, key_type)
        with pytest.raises(IntegrityError, match=r"^signature verification failed"):
            km.verify(doc, data + b"!")
    # a second manager (no cached key objects) verifies the first one's documents
    other = KeyManager(km.home, env={})
    assert other.verify(km.sign("s_hybrid", data), data).algorithm == "ml-dsa-65-ed25519-sha512"


def test_stream_and_file_variants_agree(km, tmp_path):
    data = bytes(range(256)) * 10_000  # 2.5 MB: several prehash chunks
    doc = km.sign_stream("s_mldsa44", io.BytesIO(data))
    assert km.verify(doc, data).key_name == "s_mldsa44"
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    sig = km.sign_file("s_mldsa44", f)
    assert sig == tmp_path / "big.bin.sig"
    assert (sig.stat().st_mode & 0o777) == 0o600
    assert km.verify_file(f).version == 1
    assert km.verify_stream(sig.read_bytes(), io.BytesIO(data)).key_name == "s_mldsa44"
    with pytest.raises(InvalidError, match="already exists; pass --force"):
        km.sign_file("s_mldsa44", f)
    km.sign_file("s_ed25519", f, force=True)
    assert km.verify_file(f).key_name == "s_ed25519"


def test_errors_a_caller_sees(km):
    with pytest.raises(InvalidError, match="data to sign must be bytes"):
        km.sign("s_ed25519", "text")
    with pytest.raises(UsageError, match="'r_xwing' is for encryption, not signing"):
        km.sign("r_xwing", b"x")
    with pytest.raises(NotFoundError, match="nope"):
        km.sign("nope", b"x")
    with pytest.raises(InvalidError, match="not an ekm detached signature"):
        km.verify(b"garbage", b"x")
    # a signature naming a non-signing key of this home: not a signing key
    doc = km.sign("s_ed25519", b"x")
    h = signatures.parse(doc)
    relabelled = signatures._header(1, "session", 1) + doc[len(h.header) :]
    with pytest.raises(UsageError, match=r"'session' .* is not a signing key"):
        km.verify(relabelled, b"x")


def test_disabled_version_is_refused_until_re_enabled(km):
    """Destroyed-then-recovered versions come back ``disabled``: verification is refused
    (StateError, exit 3, as decrypt) until ``ekm keys enable``; a soft-deleted version is
    ``destroyed`` for verification even while its material is still recoverable."""
    doc = km.sign("s_mldsa65", b"x")
    km.rotate("s_mldsa65")
    km.destroy_version("s_mldsa65", 1, recovery_window="7d")
    with pytest.raises(StateError, match="version 1 of key 's_mldsa65' is destroyed"):
        KeyManager(km.home, env={}).verify(doc, b"x")
    km.recover_version("s_mldsa65", 1)
    with pytest.raises(StateError, match="version 1 of key 's_mldsa65' is disabled; re-enable"):
        KeyManager(km.home, env={}).verify(doc, b"x")
    km.enable_version("s_mldsa65", 1)
    assert KeyManager(km.home, env={}).verify(doc, b"x").version == 1


def test_audit_records_per_call(km, pq_home):
    before = len(audit_records(pq_home))
    doc = km.sign("s_p256", b"abc")
    km.verify(doc, b"abc")
    with pytest.raises(IntegrityError):
        km.verify(doc, b"abd")
    recs = audit_records(pq_home)[before:]
    assert [(r["op"], r["result"]) for r in recs] == [
        ("sign", "ok"),
        ("verify", "ok"),
        ("verify", "denied"),
    ]
    assert recs[0]["algorithm"] == "ecdsa-p256-sha256" and recs[0]["backend"] == "file"
    assert all(r["key"] == "s_p256" and r["version"] == 1 for r in recs)
