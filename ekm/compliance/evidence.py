"""Evidence bundles: what an audit saw, signed so an auditor can check it with openssl alone.

``ekm audit --evidence DIR`` writes into DIR:

* ``findings.json``: the audit report (findings, unknown and passed results, sources, facts);
* ``inventory.json``: keys, versions and deployment facts (no material, no fingerprints);
* ``audit-log.json``: the audit log's verification result;
* ``rule-sets.json``: every rule set evaluated, its version and the SHA-256 of its rule file;
* ``bundle.json``: ekm's version, the home and its id, the keystore, collection time, as_of;
* ``signing-key.pem``: the home's evidence-signing public key (ECDSA P-384);
* ``README.txt``: how to verify with openssl;
* ``MANIFEST.sha256``: ``<sha256>  <file>`` per file above (sha256sum format);
* ``MANIFEST.sha256.sig``: ECDSA P-384 / SHA-384 signature (DER) over ``MANIFEST.sha256``.

The signing key lives in the home (``evidence-signing.key``): the private key wrapped with
AES-256-GCM under a key derived from the root key, its public key bound as associated data so
neither half can be swapped. It is created on first use and its creation audit-logged with its
fingerprint (SHA-256 of the DER public key), which ``ekm verify DIR`` and the README's openssl
commands compare against.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ekm.errors import IntegrityError, InvalidError, NotFoundError, UsageError
from ekm.timeutil import iso

if TYPE_CHECKING:  # pragma: no cover
    from ekm.compliance.collect import Collected
    from ekm.compliance.engine import AuditResult
    from ekm.manager import KeyManager

KEY_FILE = "evidence-signing.key"
KEY_LABEL = "evidence-signing-key"
KEY_FORMAT = 1
MANIFEST = "MANIFEST.sha256"
SIGNATURE = "MANIFEST.sha256.sig"
PUBLIC_KEY = "signing-key.pem"
MAX_FILE = 512 * 1024 * 1024


@dataclass(frozen=True)
class SigningKey:
    """The home's evidence-signing key pair (private part only in memory)."""

    private: Any  # cryptography EllipticCurvePrivateKey
    public_pem: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_pem)


def fingerprint(public_pem: bytes) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, as ``openssl pkey -pubin -outform DER`` gives."""
    from cryptography.hazmat.primitives import serialization

    try:
        pub = serialization.load_pem_public_key(public_pem)
    except ValueError:
        raise IntegrityError("the evidence signing key is not a PEM public key") from None
    der = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _aad(public_pem: bytes) -> bytes:
    return b"ekm/v1/evidence-signing-key\x00" + public_pem


def home_public_key(home: Path) -> bytes | None:
    """The public half recorded in the home (unauthenticated without the root key)."""
    path = home / KEY_FILE
    if not path.exists():
        return None
    from ekm.fsutil import read_private

    try:
        doc = json.loads(read_private(path, limit=64 * 1024))
        return str(doc["public_key_pem"]).encode()
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{path} is not an ekm evidence signing key; restore it") from None


def load_or_create(mgr: KeyManager, *, now: datetime | None = None) -> SigningKey:
    """The home's signing key, created (and audit-logged) on first use; needs the root key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ekm.fsutil import atomic_write, read_private

    mgr.unlock()
    kek = mgr._root.derive(KEY_LABEL)
    path = Path(mgr.home) / KEY_FILE
    if path.exists():
        try:
            doc = json.loads(read_private(path, limit=64 * 1024))
            if doc.get("format") != KEY_FORMAT:
                raise ValueError
            public_pem = str(doc["public_key_pem"]).encode()
            blob = base64.b64decode(doc["wrapped_private_key"], validate=True)
            der = AESGCM(kek).decrypt(blob[:12], blob[12:], _aad(public_pem))
            private = serialization.load_der_private_key(der, password=None)
        except Exception:
            raise IntegrityError(
                f"{path} does not authenticate under this home's master key (tampered or "
                "from another home); move it aside to create a new signing key"
            ) from None
        return SigningKey(private, public_pem)
    private = ec.generate_private_key(ec.SECP384R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    nonce = os.urandom(12)
    blob = nonce + AESGCM(kek).encrypt(nonce, der, _aad(public_pem))
    del der
    key = SigningKey(private, public_pem)
    mgr.audit_log.append(
        "evidence.key.create",
        algorithm="ecdsa-p384-sha384",
        fingerprint=key.fingerprint,
        now=now,
    )
    doc = {
        "format": KEY_FORMAT,
        "algorithm": "ecdsa-p384-sha384",
        "public_key_pem": public_pem.decode(),
        "wrapped_private_key": base64.b64encode(blob).decode(),
    }
    atomic_write(path, json.dumps(doc, indent=1).encode())
    return key


# --- writing -------------------------------------------------------------------------------


def _inventory(got: Collected) -> dict[str, Any]:
    inv = got.inventory
    d = inv.deployment
    keys = []
    for k in inv.keys:
        keys.append(
            {
                "name": k.name,
                "type": k.type.value,
                "usage": k.usage.value,
                "backend": k.backend,
                "labels": dict(k.labels),
                "rotate_every_days": k.rotate_every.days if k.rotate_every else None,
                "backup_required": k.backup_required,
                "last_backup": iso(k.last_backup) if k.last_backup else None,
                "versions": [
                    {
                        "version": v.version,
                        "state": v.state.value,
                        "created": iso(v.created),
                        "key_type": v.key_type.value if v.key_type else None,
                        "usage_count": v.usage_count,
                        "material_present": v.material_present,
                        "destroy_after": iso(v.destroy_after) if v.destroy_after else None,
                    }
                    for v in k.versions
                ],
            }
        )
    attestations = None
    if d.attestations is not None:
        attestations = [
            {
                "rule": a.rule,
                "by": a.by,
                "evidence": a.evidence,
                "evidence_sha256": a.evidence_sha256,
                "recorded": iso(a.recorded),
                "expires": iso(a.expires),
                "seq": a.seq,
            }
            for a in d.attestations.values()
        ]
    deployment = {
        "master_key_id": d.master_key_id,
        "master_key_source": d.master_key_source,
        "master_key_strength": d.master_key_strength,
        "master_key_created": iso(d.master_key_created) if d.master_key_created else None,
        "master_key_created_authentic": d.master_key_created_authentic,
        "master_key_first_seen": (
            iso(d.master_key_first_seen) if d.master_key_first_seen else None
        ),
        "passphrase_kdf": d.passphrase_kdf,
        "keystore_mac_ok": d.keystore_mac_ok,
        "audit_log_present": d.audit_log_present,
        "audit_chain_ok": d.audit_chain_ok,
        "hsm_pin_in_config": d.hsm_pin_in_config,
        "vault_tls_verify": d.vault_tls_verify,
        "module_validation": d.module_validation,
        "unsafe_paths": list(d.unsafe_paths) if d.unsafe_paths is not None else None,
        "attestations": attestations,
    }
    return {
        "home": inv.home,
        "collected_at": iso(inv.as_of),
        "keys": keys,
        "deployment": deployment,
    }


def _rule_sets(result: AuditResult) -> list[dict[str, Any]]:
    from ekm.compliance import engine

    out = []
    for rs in result.rule_sets:
        if rs.custom:
            try:
                text = Path(rs.path).read_bytes()
            except OSError:
                text = b""
            digest = hashlib.sha256(text).hexdigest() if text else None
            origin = rs.path
        elif rs.path:
            digest = hashlib.sha256(engine.builtin_text(rs.id).encode()).hexdigest()
            origin = rs.path
        else:  # ekm-integrity: defined in code, hashed over its rule ids and severities
            spec = json.dumps([[r.id, r.severity, r.cite] for r in rs.rules]).encode()
            digest = hashlib.sha256(spec).hexdigest()
            origin = "ekm/compliance/integrity.py"
        out.append(
            {
                "id": rs.id,
                "version": rs.version,
                "custom": rs.custom,
                "file": origin,
                "sha256": digest,
                "rules": len(rs.rules),
                "sources": [s.to_dict() for s in rs.sources],
            }
        )
    return out


README = """ekm evidence bundle
===================

Home {home} (home id {home_id}), keystore {keystore}.
Inventory collected {collected_at}; rules judged as of {as_of}; ekm {version}.
Signed with the home's evidence key, ECDSA P-384 / SHA-384,
public key fingerprint (SHA-256 of its DER form):
  {fingerprint}

Verify with openssl alone, in this directory:

1. The public key is the home's: its fingerprint must equal the one above and the one in
   the home's audit log (record "evidence.key.create"):

   openssl pkey -pubin -in {pub} -outform DER | openssl dgst -sha256 -r

2. The manifest is signed by that key (prints "Verified OK"):

   openssl dgst -sha384 -verify {pub} -signature {sig} {manifest}

3. Every file matches the manifest (prints OK for each, nothing else):

   while read -r sum name; do
     got=$(openssl dgst -sha256 -r "$name" | cut -d' ' -f1)
     if [ "$got" = "$sum" ]; then echo "OK $name"; else echo "MISMATCH $name"; fi
   done < {manifest}

Or, where ekm is installed: ekm verify <this directory>

The audit log's "audit.run" record of this audit names the manifest's SHA-256:
  openssl dgst -sha256 -r {manifest}
"""


def write_bundle(
    directory: str | Path,
    *,
    result: AuditResult,
    got: Collected,
    key: SigningKey,
    log_verification: dict[str, Any],
    version: str,
) -> dict[str, Any]:
    """Write the bundle into ``directory`` (created, or existing and empty); returns its
    identity: the manifest's SHA-256 and the signing key's fingerprint."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from ekm.compliance.explain import identity
    from ekm.compliance.formats import to_json
    from ekm.fsutil import atomic_write, ensure_private_dir
    from ekm.jsonout import dumps

    out = Path(directory)
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--evidence {out}: is a file; name a new or empty directory")
        if any(out.iterdir()):
            raise UsageError(f"--evidence {out}: directory is not empty; name a new one")
    else:
        try:
            out.mkdir(mode=0o700, parents=False)
        except FileNotFoundError:
            raise NotFoundError(f"--evidence {out}: its parent directory does not exist") from None
        except OSError as exc:
            raise InvalidError(f"--evidence {out}: cannot create it ({exc.strerror})") from None
    ensure_private_dir(out)
    ident = identity(result)
    meta = {
        "format": 1,
        "ekm_version": version,
        **ident,
        "signing_key_fingerprint": key.fingerprint,
        "signature": "ecdsa-p384-sha384 over MANIFEST.sha256 (DER)",
    }
    files: dict[str, bytes] = {
        "findings.json": dumps(to_json(result)),
        "inventory.json": dumps(_inventory(got)),
        "audit-log.json": dumps(log_verification),
        "rule-sets.json": dumps({"rule_sets": _rule_sets(result)}),
        "bundle.json": dumps(meta),
        PUBLIC_KEY: key.public_pem,
        "README.txt": README.format(
            home=ident["home"],
            home_id=ident["home_id"],
            keystore=ident["keystore"],
            collected_at=ident["collected_at"],
            as_of=ident["as_of"],
            version=version,
            fingerprint=key.fingerprint,
            pub=PUBLIC_KEY,
            sig=SIGNATURE,
            manifest=MANIFEST,
        ).encode(),
    }
    manifest = "".join(
        f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(files.items())
    ).encode()
    signature = key.private.sign(manifest, ec.ECDSA(hashes.SHA384()))
    for name, data in [*files.items(), (MANIFEST, manifest), (SIGNATURE, signature)]:
        atomic_write(out / name, data)
    return {
        "directory": str(out),
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "signing_key_fingerprint": key.fingerprint,
        "files": sorted([*files, MANIFEST, SIGNATURE]),
    }


# --- verifying -----------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise IntegrityError(f"{path.name} is missing from the evidence bundle") from None
    except OSError as exc:
        raise IntegrityError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_FILE:
        raise IntegrityError(f"{path}: larger than any file ekm writes into a bundle")
    return data


def verify_bundle(directory: str | Path, *, expected_fingerprint: str | None = None) -> dict:
    """Check the signature, every file's hash and that no file was added or removed.

    IntegrityError (exit 4) names the first problem. ``expected_fingerprint`` (the home's
    evidence key) is compared when given; without it the bundle is only self-consistent.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    d = Path(directory)
    if not d.is_dir():
        raise NotFoundError(f"{d}: no such evidence bundle directory")
    if not (d / MANIFEST).exists():
        raise InvalidError(f"{d}: not an ekm evidence bundle ({MANIFEST} missing)")
    manifest = _read(d / MANIFEST)
    signature = _read(d / SIGNATURE)
    public_pem = _read(d / PUBLIC_KEY)
    fp = fingerprint(public_pem)
    if expected_fingerprint is not None and fp != expected_fingerprint:
        raise IntegrityError(
            f"{d}: signed by key {fp[:16]}..., not this home's evidence key "
            f"{expected_fingerprint[:16]}..."
        )
    pub = serialization.load_pem_public_key(public_pem)
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp384r1":
        raise IntegrityError(f"{d}: the signing key is not an ECDSA P-384 key")
    try:
        pub.verify(signature, manifest, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise IntegrityError(f"{d}: the manifest's signature does not verify") from None
    listed: dict[str, str] = {}
    for n, line in enumerate(manifest.decode("utf-8", "replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or "/" in name or name in listed:
            raise IntegrityError(f"{d}: {MANIFEST} line {n} is malformed")
        listed[name] = digest
    for name, digest in listed.items():
        if hashlib.sha256(_read(d / name)).hexdigest() != digest:
            raise IntegrityError(f"{d}: {name} does not match the signed manifest")
    extra = sorted(p.name for p in d.iterdir() if p.name not in {*listed, MANIFEST, SIGNATURE})
    if extra:
        raise IntegrityError(f"{d}: {extra[0]} is not in the signed manifest")
    try:
        meta = json.loads(_read(d / "bundle.json"))
    except ValueError:
        meta = {}
    return {
        "ok": True,
        "directory": str(d),
        "files": len(listed),
        "signing_key_fingerprint": fp,
        "key_checked": expected_fingerprint is not None,
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "home": meta.get("home"),
        "home_id": meta.get("home_id"),
        "collected_at": meta.get("collected_at"),
        "as_of": meta.get("as_of"),
    }
