"""Write the known-answer vectors (``*.json`` beside this file) from fixed inputs.

    python3 tests/vectors/generate.py

Every input is derived from the vector's name with SHA-256, so a rerun writes the same
bytes, except for ML-KEM ciphertexts: cryptography has no seeded encapsulation, so a KEM
vector keeps the ciphertext and shared secret already stored in its file (a new vector
gets fresh ones). Inputs and outputs are hex; ``expected`` is the whole ciphertext or
signature document.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import reference  # noqa: E402  (this folder, not the ekm package)

HEX_FIELDS = (
    "key", "dek", "wrap_nonce", "nonce", "salt", "plaintext", "aad", "recipient_key",
    "ephemeral_key", "kem_ciphertext", "kem_shared_secret", "expected",
)  # fmt: skip


def _det(label: str, n: int) -> bytes:
    """``n`` bytes that depend only on ``label`` (reproducible stand-ins for randomness)."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"ekm vectors|{label}|{counter}".encode()).digest()
        counter += 1
    return out[:n]


def _symmetric(name: str, fmt: str, key_type: str, **kw: Any) -> dict[str, Any]:
    key_len = 16 if key_type == "aes-128-gcm" else 32
    v: dict[str, Any] = {
        "name": name,
        "format": fmt,
        "key_type": key_type,
        "key_name": kw.pop("key_name", "database_encryption"),
        "key_version": kw.pop("key_version", 1),
        "key": _det(name + "/key", key_len),
        "dek": _det(name + "/dek", 32),
        "wrap_nonce": _det(name + "/wrap_nonce", 12),
    }
    if fmt == "record-v1":
        v["nonce"] = _det(name + "/nonce", 12)
    else:
        v["salt"] = _det(name + "/salt", 32)
    v.update(kw)
    return v


def _vectors(previous: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    pt150 = bytes(range(150))
    vs = [
        _symmetric("record-aes256-empty", "record-v1", "aes-256-gcm", plaintext=b"", aad=b""),
        _symmetric(
            "record-aes256-aad",
            "record-v1",
            "aes-256-gcm",
            key_version=7,
            plaintext=b"4111 1111 1111 1111",
            aad=b"customers.card_number",
        ),
        _symmetric(
            "record-chacha-wrap",
            "record-v1",
            "chacha20-poly1305",
            key_name="session",
            key_version=4294967295,
            plaintext=b"session-state",
            aad=b"",
        ),
        _symmetric(
            "record-aes128-wrap",
            "record-v1",
            "aes-128-gcm",
            key_name="a.b-c_d",
            plaintext=b"x" * 100,
            aad=b"\x00\xff",
        ),
        _symmetric(
            "stream-empty", "stream-v1", "aes-256-gcm", segment_size=64, plaintext=b"", aad=b""
        ),
        _symmetric(
            "stream-three-segments",
            "stream-v1",
            "aes-256-gcm",
            segment_size=64,
            key_version=3,
            plaintext=pt150,
            aad=b"",
        ),
        _symmetric(
            "stream-exact-segments-aad",
            "stream-v1",
            "aes-256-gcm",
            segment_size=64,
            plaintext=pt150[:128],
            aad=b"backups/db.ekm",
        ),
        _symmetric(
            "stream-default-segment",
            "stream-v1",
            "chacha20-poly1305",
            segment_size=65536,
            key_name="backup",
            plaintext=b"hello, ekm\n",
            aad=b"",
        ),
    ]
    x = {
        "name": "stream-recipient-x25519", "format": "stream-v1", "recipient_type": "x25519",
        "recipient_id": "inbox:v2", "recipient_key": _det("x/recipient", 32),
        "ephemeral_key": _det("x/ephemeral", 32), "dek": _det("x/dek", 32),
        "salt": _det("x/salt", 32), "segment_size": 64, "plaintext": pt150[:70], "aad": b"",
    }  # fmt: skip
    vs.append(x)
    for kem in ("ml-kem-768", "ml-kem-1024"):
        name = f"stream-recipient-{kem}"
        v = {
            "name": name,
            "format": "stream-v1",
            "recipient_type": kem,
            "recipient_id": f"backup-kem:v{3 if kem.endswith('768') else 1}",
            "recipient_key": _det(name + "/seed", 64),
            "dek": _det(name + "/dek", 32),
            "salt": _det(name + "/salt", 32),
            "segment_size": 1024,
            "plaintext": b"sealed to a post-quantum recipient",
            "aad": b"",
        }
        old = previous.get(name)
        if old is not None and old["recipient_key"] == v["recipient_key"]:
            v["kem_ciphertext"], v["kem_shared_secret"] = (
                old["kem_ciphertext"],
                old["kem_shared_secret"],
            )
        else:
            pk = reference.mlkem_private(kem, v["recipient_key"]).public_key()
            v["kem_shared_secret"], v["kem_ciphertext"] = pk.encapsulate()
        vs.append(v)
    vs.append(
        {
            "name": "signature-ed25519",
            "format": "signature-v1",
            "key_type": "ed25519",
            "key_name": "release_signing",
            "key_version": 2,
            "key": _det("sig/ed25519", 32),
            "plaintext": b"dist/app.tar.gz contents\n",
        }
    )
    for v in vs:
        v["expected"] = reference.encode(v)
    return vs


def to_json(v: dict[str, Any]) -> dict[str, Any]:
    return {k: (val.hex() if k in HEX_FIELDS else val) for k, val in v.items()}


def from_json(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (bytes.fromhex(val) if k in HEX_FIELDS else val) for k, val in d.items()}


def load_all() -> list[dict[str, Any]]:
    """Every stored vector, bytes decoded."""
    out = []
    for path in sorted(HERE.glob("*.json")):
        out.extend(from_json(d) for d in json.loads(path.read_text())["vectors"])
    return out


def main() -> None:
    previous = {v["name"]: v for v in load_all()}
    by_format: dict[str, list[dict[str, Any]]] = {}
    for v in _vectors(previous):
        by_format.setdefault(v["format"], []).append(to_json(v))
    for fmt, vs in by_format.items():
        doc = {
            "spec": "docs/FORMAT.md" if fmt != "signature-v1" else "docs/FORMAT-recipients.md",
            "generator": "tests/vectors/generate.py",
            "vectors": vs,
        }
        (HERE / f"{fmt}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{fmt}: {len(vs)} vectors")


if __name__ == "__main__":
    main()
