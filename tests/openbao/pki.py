"""A CA made in the test and a server certificate for 127.0.0.1 (cryptography, ECDSA P-256).

Why: the TLS tests must prove ekm verifies OpenBao's certificate against the CA the operator
names (``vault.ca_cert``), so the CA cannot be OpenBao's own ``-dev-tls`` one.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path


def _ca(name: str, now: datetime.datetime) -> tuple[object, object]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_pki(base: Path) -> dict[str, Path]:
    """``ca`` (signed the server cert), ``other_ca`` (did not), ``cert``/``key`` for 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    base.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key, ca_cert = _ca("ekm test CA", now)
    _, other_cert = _ca("some other CA", now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openbao")]))
        .issuer_name(ca_cert.subject)  # type: ignore[attr-defined]
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    pem = serialization.Encoding.PEM
    paths = {
        "ca": base / "ca.pem",
        "other_ca": base / "other-ca.pem",
        "cert": base / "server.pem",
        "key": base / "server.key",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(pem))  # type: ignore[attr-defined]
    paths["other_ca"].write_bytes(other_cert.public_bytes(pem))  # type: ignore[attr-defined]
    paths["cert"].write_bytes(cert.public_bytes(pem))
    paths["key"].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths["key"].chmod(0o600)
    return paths
