"""X-Wing (draft-connolly-cfrg-xwing-kem-10): known answers, round trips and bad input."""

from __future__ import annotations

import os

import pytest

from ekm.crypto import pq, xwing
from ekm.errors import IntegrityError, InvalidError
from tests.pq.vectors import XWING_1, XWING_X509_PRIVATE_PEM, XWING_X509_PUBLIC_PEM, unhex


def test_keygen_matches_draft_vector() -> None:
    sk, pk = xwing.generate(unhex(XWING_1["seed"]))
    assert sk == unhex(XWING_1["seed"])
    assert pk == unhex(XWING_1["pk"])


def test_decapsulation_matches_draft_vector() -> None:
    assert xwing.decapsulate(unhex(XWING_1["seed"]), unhex(XWING_1["ct"])) == unhex(XWING_1["ss"])


def test_vector_x25519_half_is_eseed_upper_half() -> None:
    # The draft's ct_X is X25519(eseed[32:64], base): checks our split of ct and eseed.
    from cryptography.hazmat.primitives.asymmetric import x25519

    ek = x25519.X25519PrivateKey.from_private_bytes(unhex(XWING_1["eseed"])[32:])
    assert unhex(XWING_1["ct"])[1088:] == ek.public_key().public_bytes_raw()


def test_combiner_is_sha3_over_draft_order() -> None:
    import hashlib

    parts = [os.urandom(32) for _ in range(4)]
    want = hashlib.sha3_256(b"".join(parts) + b"\\./" + b"/^\\").digest()
    assert xwing.combiner(*parts) == want
    assert xwing.XWING_LABEL == b"\\.//^\\"


def test_x509_example_from_draft_appendix_d() -> None:
    seed = bytes(range(32))
    assert pq.export_public("x25519-ml-kem-768", seed, "pem").decode() == XWING_X509_PUBLIC_PEM
    assert pq.export_private("x25519-ml-kem-768", seed, "pem").decode() == XWING_X509_PRIVATE_PEM


def test_round_trip_and_other_key_gives_other_secret() -> None:
    sk, pk = xwing.generate()
    ss, ct = xwing.encapsulate(pk)
    assert len(ct) == xwing.CT_LEN and len(ss) == 32
    assert xwing.decapsulate(sk, ct) == ss
    other, _ = xwing.generate()
    # ML-KEM rejects implicitly: a wrong key gives a different secret, not an error.
    assert xwing.decapsulate(other, ct) != ss


@pytest.mark.parametrize("cut", [0, 1, 1088, 1119])
def test_truncated_ciphertext_is_integrity_error(cut: int) -> None:
    sk, pk = xwing.generate()
    _, ct = xwing.encapsulate(pk)
    with pytest.raises(IntegrityError, match="X-Wing decapsulation failed"):
        xwing.decapsulate(sk, ct[:cut])


def test_low_order_x25519_ciphertext_is_integrity_error() -> None:
    sk, pk = xwing.generate()
    _, ct = xwing.encapsulate(pk)
    with pytest.raises(IntegrityError, match="not for this key"):
        xwing.decapsulate(sk, ct[:1088] + bytes(32))


def test_eseed_is_refused_with_reason() -> None:
    _, pk = xwing.generate()
    with pytest.raises(InvalidError, match="derandomized X-Wing encapsulation"):
        xwing.encapsulate(pk, eseed=bytes(64))


def test_public_key_wrong_length() -> None:
    with pytest.raises(InvalidError, match="X-Wing public key is 1216 bytes, got 1215"):
        xwing.encapsulate(bytes(1215))


def test_public_key_failing_modulus_check_is_refused() -> None:
    _, pk = xwing.generate()
    bad = b"\xff\xff" + pk[2:]  # first coefficient 0xfff >= q = 3329
    with pytest.raises(InvalidError, match="encapsulation key check"):
        xwing.encapsulate(bad)


def test_seed_wrong_length() -> None:
    with pytest.raises(InvalidError, match="32-byte seed, got 31"):
        xwing.generate(bytes(31))
