"""KDFs and password hashes: interop with independent implementations, floors, hostile PHC."""

from __future__ import annotations

import hashlib

import pytest

from ekm.crypto import kdf
from ekm.errors import InvalidError

SALT = b"0123456789abcdef"


def test_defaults_are_current_recommendations():
    assert kdf.DEFAULTS == {
        "argon2id": {"memory_cost": 65536, "time_cost": 3, "parallelism": 4},
        "scrypt": {"n": 2**17, "r": 8, "p": 1},
        "pbkdf2": {"iterations": 600_000},
    }


def test_pbkdf2_default_matches_openssl_via_hashlib():
    d = kdf.derive_key("correct horse", kdf="pbkdf2", salt=SALT)
    assert d.key == hashlib.pbkdf2_hmac("sha256", b"correct horse", SALT, 600_000, 32)
    assert d.phc.startswith("$pbkdf2-sha256$i=600000$")
    assert kdf.verify_password("correct horse", d.phc)


def test_scrypt_matches_hashlib_rfc7914_vector():
    d = kdf.derive_key(
        "password", kdf="scrypt", salt=b"NaCl", length=64, n=1024, r=8, p=16, force=True
    )
    assert d.key.hex().startswith("fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e773")
    assert d.key == hashlib.scrypt(b"password", salt=b"NaCl", n=1024, r=8, p=16, dklen=64)


def test_scrypt_default_round_trip():
    phc = kdf.hash_password("pw", "scrypt")
    assert phc.startswith("$scrypt$ln=17,r=8,p=1$")
    assert kdf.verify_password("pw", phc)
    assert not kdf.verify_password("pW", phc)


def test_argon2id_phc_is_read_by_argon2_cffi_and_back():
    from argon2 import PasswordHasher

    phc = kdf.hash_password("s3cret")
    assert phc.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PasswordHasher().verify(phc, "s3cret")
    theirs = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4).hash("s3cret")
    assert kdf.verify_password("s3cret", theirs)
    assert not kdf.verify_password("s3cre", theirs)
    assert not kdf.needs_rehash(theirs)


def test_derive_is_deterministic_given_salt_and_random_otherwise():
    a = kdf.derive_key(b"k", kdf="argon2id", salt=SALT, memory_cost=1024, time_cost=1, force=True)
    b = kdf.derive_key(b"k", kdf="argon2id", salt=SALT, memory_cost=1024, time_cost=1, force=True)
    c = kdf.derive_key(b"k", kdf="argon2id", memory_cost=1024, time_cost=1, force=True)
    assert a.key == b.key and a.key != c.key and len(c.salt) == 16
    assert a.params == {"kdf": "argon2id", "memory_cost": 1024, "time_cost": 1, "parallelism": 4}
    assert a.key.hex() not in repr(a)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("argon2id", {"memory_cost": 32768}),
        ("argon2id", {"time_cost": 2}),
        ("scrypt", {"n": 2**16}),
        ("scrypt", {"r": 4}),
        ("pbkdf2", {"iterations": 599_999}),
    ],
)
def test_weak_parameters_refused_unless_forced(name, params):
    with pytest.raises(InvalidError, match=r"below the recommended minimum.*force=True") as exc:
        kdf.derive_key("pw", kdf=name, **params)
    assert exc.value.exit_code == 3
    if name != "scrypt" or params.get("n"):
        weaker = {k: max(1, v // 64) if k != "n" else 2**10 for k, v in params.items()}
        assert kdf.derive_key("pw", kdf=name, force=True, **weaker).key


def test_argon2_first_recommended_option_accepted():
    s = kdf._check_params("argon2id", {"memory_cost": 2 * 1024 * 1024, "time_cost": 1}, False)
    assert s["time_cost"] == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kdf": "bcrypt"}, "unknown KDF 'bcrypt'"),
        ({"kdf": "scrypt", "rounds": 3}, "unknown scrypt parameter"),
        ({"kdf": "scrypt", "n": 3 * 2**17}, "must be a power of two"),
        ({"kdf": "pbkdf2", "iterations": 0}, "must be an integer from 1"),
        ({"kdf": "pbkdf2", "iterations": True}, "must be an integer from 1"),
        ({"kdf": "argon2id", "memory_cost": 8, "parallelism": 4, "force": True}, "8 KiB per"),
        ({"kdf": "pbkdf2", "salt": b"short"}, "salt must be at least 16 bytes"),
        ({"kdf": "pbkdf2", "length": 8}, "length must be from 16 to 1024"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(InvalidError, match=message):
        kdf.derive_key("pw", **kwargs)


def test_empty_secret_refused_and_never_verifies():
    with pytest.raises(InvalidError, match="is empty"):
        kdf.derive_key("", kdf="pbkdf2")
    phc = kdf.hash_password("x", "pbkdf2")
    assert kdf.verify_password("", phc) is False


@pytest.mark.parametrize(
    "phc",
    [
        "",
        "plaintext-password",
        "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",  # argon2i, not id
        "$argon2id$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",  # no version
        "$argon2id$v=16$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",  # old version
        "$argon2id$v=19$m=99999999,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g",  # 95 GiB: DoS
        "$scrypt$ln=30,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",  # 2**30: DoS
        "$pbkdf2-sha256$i=999999999$c2FsdHNhbHQ$aGFzaGhhc2g",  # minutes of CPU
        "$pbkdf2-sha256$i=1000,i=2$c2FsdHNhbHQ$aGFzaGhhc2g",  # duplicate parameter
        "$scrypt$ln=17,r=8$c2FsdHNhbHQ$aGFzaGhhc2g",  # missing parameter
        "$pbkdf2-sha256$i=1000$c2Fsd!$aGFzaGhhc2g",  # bad base64
        "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGF",  # 2-byte hash
    ],
)
def test_hostile_phc_refused(phc):
    with pytest.raises(InvalidError, match=r"not a PHC string ekm can verify.*reset the password"):
        kdf.verify_password("pw", phc)


def test_needs_rehash():
    weak = kdf.derive_key("pw", kdf="pbkdf2", iterations=1000, force=True).phc
    assert kdf.verify_password("pw", weak)  # old hashes still verify
    assert kdf.needs_rehash(weak)
    strong = kdf.hash_password("pw", "pbkdf2")
    assert kdf.needs_rehash(strong)  # another KDF than the wanted argon2id
    assert not kdf.needs_rehash(strong, "pbkdf2")
