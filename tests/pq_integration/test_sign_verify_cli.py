"""``ekm sign`` / ``ekm verify`` through the real command, every signing type.

What a user relies on: a signature made by any signing key verifies with nothing but the file
and FILE.sig; any change to the data, the signature, or either half of a composite signature
fails with exit 4; unknown, disabled and destroyed key versions are exit 3 (as for
``ekm decrypt``); every sign and verify is on the audit log, failures included.
"""

from __future__ import annotations

import json
import struct
import subprocess

import pytest

from ekm.crypto import signatures
from tests.pq_integration.conftest import SIGNERS, audit_records

VERIFY_FAILED = "signature verification failed"


@pytest.mark.parametrize("name", ["s_ed25519", "s_p384", "s_mldsa87", "s_hybrid"])
def test_sign_then_verify_through_the_command(prun, tmp_path, name):
    """A classic, an ECDSA, a pure ML-DSA and the composite type (every type: test_api.py)."""
    data = tmp_path / "release.tar"
    data.write_bytes(b"release bytes " * 1000)
    res = prun("sign", "--key", name, str(data)).expect_ok()
    sig = tmp_path / "release.tar.sig"
    assert f"signed {data} with {name}: {sig}" in res.stderr
    header = signatures.parse(sig.read_bytes())
    assert (header.key_name, header.version) == (name, 1)
    out = prun("--json", "verify", str(data)).expect_ok()
    doc = json.loads(out.stdout)
    assert doc["valid"] is True
    assert (doc["key"], doc["version"], doc["type"]) == (name, 1, SIGNERS[name])
    assert doc["algorithm"] == signatures.algorithm_of(SIGNERS[name])
    # one changed byte of data: exit 4, one line, the same message whatever the algorithm
    data.write_bytes(b"Release bytes " * 1000)
    prun("verify", str(data)).expect_error(4, VERIFY_FAILED)


def test_stdin_stdout_and_explicit_paths(prun, pq_env, tmp_path):
    data = b"piped data\n" * 50
    sig = tmp_path / "out.sig"
    prun("sign", "-k", "s_hybrid", "-", "-o", str(sig), stdin=data.decode()).expect_ok()
    prun("verify", "-", "--sig", str(sig), stdin=data.decode()).expect_ok()
    prun("verify", "-", "--sig", str(sig), stdin="other").expect_error(4, VERIFY_FAILED)
    # -o - writes the binary document to stdout (a pipe here), nothing else
    f = tmp_path / "f"
    f.write_bytes(data)
    proc = subprocess.run(
        ["ekm", "sign", "-k", "s_mldsa65", str(f), "-o", "-"],
        env=pq_env, capture_output=True, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert signatures.parse(proc.stdout).key_name == "s_mldsa65"
    (tmp_path / "piped.sig").write_bytes(proc.stdout)
    prun("verify", str(f), "--sig", str(tmp_path / "piped.sig")).expect_ok()
    # usage errors
    prun("sign", "-k", "s_mldsa65", "-").expect_error(2, "signing stdin needs -o")
    prun("verify", "-").expect_error(2, "verifying stdin needs --sig")


def test_existing_signature_is_kept_unless_force(prun, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    prun("sign", "-k", "s_ed25519", str(f)).expect_ok()
    first = (tmp_path / "f.sig").read_bytes()
    prun("sign", "-k", "s_mldsa44", str(f)).expect_error(3, "f.sig already exists", "--force")
    assert (tmp_path / "f.sig").read_bytes() == first
    prun("sign", "-k", "s_mldsa44", "--force", str(f)).expect_ok()
    assert signatures.parse((tmp_path / "f.sig").read_bytes()).key_name == "s_mldsa44"


def _split(doc: bytes) -> tuple[bytes, bytes]:
    h = signatures.parse(doc)
    return h.header, h.signature


def _join(header: bytes, sig: bytes) -> bytes:
    return header + struct.pack(">I", len(sig)) + sig


def test_composite_fails_when_only_one_half_verifies(prun, tmp_path):
    """Both halves must verify: a valid ML-DSA half with a wrong Ed25519 half fails, and the
    other way round; the message never says which half."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"document A")
    b.write_bytes(b"document B")
    sa, sb = tmp_path / "a.sig", tmp_path / "b.sig"
    prun("sign", "-k", "s_hybrid", str(a)).expect_ok()
    prun("sign", "-k", "s_hybrid", "-o", str(sb), str(b)).expect_ok()
    header, sig_a = _split(sa.read_bytes())
    _, sig_b = _split(sb.read_bytes())
    mldsa_len = 3309
    # ML-DSA half of A (valid for A) + Ed25519 half of B (valid for B only)
    sa.write_bytes(_join(header, sig_a[:mldsa_len] + sig_b[mldsa_len:]))
    line1 = prun("verify", str(a)).expect_error(4, VERIFY_FAILED)
    # Ed25519 half of A + ML-DSA half of B
    sa.write_bytes(_join(header, sig_b[:mldsa_len] + sig_a[mldsa_len:]))
    line2 = prun("verify", str(a)).expect_error(4, VERIFY_FAILED)
    assert line1 == line2
    assert "ed25519" not in line1.lower() and "ml-dsa" not in line1.lower()
    sa.write_bytes(_join(header, sig_a))
    prun("verify", str(a)).expect_ok()


def test_signature_relabelled_to_another_key_fails(prun, tmp_path):
    """The header (key, version, algorithm) is signed: moving a signature to another key of
    the same type is not a valid signature by that key."""
    f = tmp_path / "f"
    f.write_bytes(b"payload")
    prun("sign", "-k", "s_mldsa65", str(f)).expect_ok()
    prun("generate", "other65", "--type", "ml-dsa-65").expect_ok()
    _, sig = _split((tmp_path / "f.sig").read_bytes())
    forged = signatures._header(6, "other65", 1)
    (tmp_path / "f.sig").write_bytes(_join(forged, sig))
    prun("verify", str(f)).expect_error(4, VERIFY_FAILED)


def test_bad_signature_files(prun, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"data")
    prun("verify", str(f)).expect_error(3, "f.sig does not exist")
    (tmp_path / "f.sig").write_bytes(b"-----BEGIN PGP SIGNATURE-----\n")
    prun("verify", str(f)).expect_error(3, "not an ekm detached signature")
    (tmp_path / "f.sig").write_bytes(b"ekmS" + b"\x00" * 20_000)
    prun("verify", str(f)).expect_error(3, "larger than any ekm signature")
    prun("sign", "-k", "s_mldsa65", "--force", str(f)).expect_ok()
    doc = (tmp_path / "f.sig").read_bytes()
    (tmp_path / "f.sig").write_bytes(doc[:-1])  # truncated
    prun("verify", str(f)).expect_error(3, "not an ekm detached signature")
    prun("verify", str(tmp_path / "missing"), "--sig", str(tmp_path / "f.sig")).expect_error(
        3, "not an ekm detached signature"
    )
    (tmp_path / "f.sig").write_bytes(doc)
    prun("verify", str(tmp_path / "missing"), "--sig", str(tmp_path / "f.sig")).expect_error(
        3, "missing does not exist"
    )


def test_keys_that_cannot_sign(prun, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    prun("sign", "-k", "session", str(f)).expect_error(2, "'session' is for encryption")
    prun("sign", "-k", "jwt_signing", str(f)).expect_error(
        3, "hmac-sha256 keys cannot make detached signatures"
    )
    prun("sign", "-k", "nope", str(f)).expect_error(3, "nope")
    prun("sign", "-k", "s_ed25519", str(tmp_path / "absent")).expect_error(3, "does not exist")
    assert not (tmp_path / "absent.sig").exists()


def test_unknown_disabled_and_destroyed_versions(prun, pq_home, tmp_path):
    """A signature naming a version this home does not have is exit 3; a destroyed version
    is exit 3 (StateError), as ``ekm decrypt`` of a ciphertext for a destroyed version."""
    f = tmp_path / "f"
    f.write_bytes(b"signed before rotation")
    prun("sign", "-k", "s_mldsa65", str(f)).expect_ok()
    prun("rotate", "s_mldsa65").expect_ok()
    prun("verify", str(f)).expect_ok()  # v1 is active: still verifies
    prun("keys", "destroy", "--yes", "s_mldsa65", "--version", "1").expect_ok()
    line = prun("verify", str(f)).expect_error(3, "version 1 of key 's_mldsa65' is destroyed")
    # the same exit code and wording as decrypt of a ciphertext for a destroyed version
    enc = tmp_path / "f.ekm"
    prun("encrypt", "-k", "session", "-o", str(enc), str(f)).expect_ok()
    prun("rotate", "session").expect_ok()
    prun("keys", "destroy", "--yes", "session", "--version", "1").expect_ok()
    dline = prun("decrypt", str(enc)).expect_error(3, "version 1 of key 'session' is destroyed")
    assert line.split(";")[0].replace("s_mldsa65", "K") == dline.split(";")[0].replace(
        "session", "K"
    )
    # a version the home never had
    doc = signatures._header(6, "s_mldsa65", 9) + struct.pack(">I", 3309) + b"\x00" * 3309
    (tmp_path / "f.sig").write_bytes(doc)
    prun("verify", str(f)).expect_error(3, "has no version 9")
    failures = [r for r in audit_records(pq_home, "verify") if r["result"] != "ok"]
    assert [r.get("version") for r in failures] == [1, 9]
    assert {r["result"] for r in failures} == {"error"}


def test_audit_records(prun, pq_home, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"audited")
    prun("sign", "-k", "s_hybrid", str(f)).expect_ok()
    prun("verify", str(f)).expect_ok()
    f.write_bytes(b"tampered")
    prun("verify", str(f)).expect_error(4, VERIFY_FAILED)
    signs = audit_records(pq_home, "sign")
    verifies = audit_records(pq_home, "verify")
    assert signs[-1]["key"] == "s_hybrid" and signs[-1]["version"] == 1
    assert signs[-1]["algorithm"] == "ml-dsa-65-ed25519-sha512" and signs[-1]["bytes"] == 7
    assert [r["result"] for r in verifies[-2:]] == ["ok", "denied"]
    assert verifies[-1]["error"] == "IntegrityError" and verifies[-1]["key"] == "s_hybrid"
    prun("audit", "--verify-log").expect_ok()
    # no key material or signature bytes in the log
    raw = (pq_home / "audit.log").read_bytes()
    assert (tmp_path / "f.sig").read_bytes()[-64:].hex() not in raw.decode()


def test_unwritable_audit_log_refuses_sign_and_verify(prun, pq_home, tmp_path):
    """Fail closed: no audit record, no signature (and no verdict)."""
    f = tmp_path / "f"
    f.write_bytes(b"x")
    prun("sign", "-k", "s_ed25519", str(f)).expect_ok()
    log = pq_home / "audit.log"
    log.unlink()
    log.mkdir(mode=0o700)  # as root, chmod would not stop the write
    prun("sign", "-k", "s_ed25519", "-o", str(tmp_path / "g.sig"), str(f)).expect_error(
        4, str(log), "refused"
    )
    assert not (tmp_path / "g.sig").exists()
    res = prun("verify", str(f))
    res.expect_error(4, str(log), "refused")
    assert "good signature" not in res.stderr
