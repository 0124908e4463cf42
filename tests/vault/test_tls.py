"""HTTPS: an untrusted server certificate fails closed; vault.ca_cert makes it work."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from ekm.backends.vault_client import VaultClient, VaultSettings
from ekm.errors import BackendError
from tests.vaultlike.server import VaultLike

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def _issue(tmp: Path, name: str, *, ca: tuple | None, server: bool) -> tuple:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = (ca[0].subject, ca[1]) if ca else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if ca is not None:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert, key, cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca = _issue(tmp_path, "ca", ca=None, server=False)
    srv = _issue(tmp_path, "server", ca=ca[:2], server=True)
    cli = _issue(tmp_path, "client", ca=ca[:2], server=False)
    return {"ca": ca[2], "cert": srv[2], "key": srv[3], "client": cli[2], "client_key": cli[3]}


@pytest.fixture
def tls_vault(pki: dict[str, Path]) -> Iterator[VaultLike]:
    with VaultLike(tls=(str(pki["cert"]), str(pki["key"]))) as v:
        yield v


def _client(v: VaultLike, **table: object) -> VaultClient:
    s = VaultSettings.from_mapping({"endpoint": v.url, **table}, env={"VAULT_TOKEN": v.root_token})
    return VaultClient(s, sleep=lambda _s: None)


def test_untrusted_certificate_fails_closed_without_retry(tls_vault: VaultLike) -> None:
    with pytest.raises(BackendError) as err:
        _client(tls_vault).status()
    assert err.value.exit_code == 5
    assert str(err.value) == (
        f"TLS verification of Vault at {tls_vault.url} failed; set vault.ca_cert to the CA "
        "that signed its certificate and check the host name (or client certificate); "
        "nothing was sent"
    )
    assert tls_vault.requests == []


def test_ca_cert_makes_it_work(tls_vault: VaultLike, pki: dict[str, Path]) -> None:
    c = _client(tls_vault, ca_cert=str(pki["ca"]))
    assert c.status()["sealed"] is False
    assert c.kv_write("ekm/k", {"v": "1"}, cas=0) == 1


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.filterwarnings("ignore::ekm.errors.EkmWarning")  # the warning is tested elsewhere
def test_verify_false_skips_verification(tls_vault: VaultLike) -> None:
    assert _client(tls_vault, verify=False).status()["sealed"] is False


def test_client_certificate_required(pki: dict[str, Path]) -> None:
    with VaultLike(tls=(str(pki["cert"]), str(pki["key"])), client_ca=str(pki["ca"])) as v:
        with pytest.raises(BackendError):
            _client(v, ca_cert=str(pki["ca"])).status()
        c = _client(
            v,
            ca_cert=str(pki["ca"]),
            client_cert=str(pki["client"]),
            client_key=str(pki["client_key"]),
        )
        assert c.status()["identity"] == "root"
