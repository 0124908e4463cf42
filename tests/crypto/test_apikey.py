"""API-key tokens: shape, offline typo detection, HMAC-only storage, constant-time verify."""

from __future__ import annotations

import hashlib
import os
import re
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ekm.crypto import apikey
from ekm.errors import InvalidError

MAC_KEY = os.urandom(32)


def test_shape_and_uniqueness():
    tag = apikey.tag_for("api_master")
    assert tag == "apimaster"
    tokens = {apikey.new_token(tag) for _ in range(200)}
    assert len(tokens) == 200
    for t in tokens:
        assert re.fullmatch(r"ekm_apimaster_[0-9A-Za-z]{38}", t)
        assert apikey.check_format(t) == ("apimaster", t[len("ekm_apimaster_") :])


def test_checksum_is_crc32_of_prefix():
    t = apikey.new_token("x")
    value = 0
    for ch in t[-6:]:
        value = value * 62 + apikey._ALPHABET.index(ch)
    assert value == zlib.crc32(t[:-6].encode())


@given(data=st.data())
@settings(max_examples=200)
def test_every_single_character_typo_caught(data):
    t = apikey.new_token("apiinternal")
    start = len("ekm_apiinternal_")
    i = data.draw(st.integers(start, len(t) - 1))
    ch = data.draw(st.sampled_from([c for c in apikey._ALPHABET if c != t[i]]))
    typo = t[:i] + ch + t[i + 1 :]
    with pytest.raises(InvalidError, match="checksum does not match") as exc:
        apikey.check_format(typo)
    assert typo not in str(exc.value)


@pytest.mark.parametrize(
    "bad", ["", "ekm_", "ghp_abc", "ekm_API_" + "a" * 38, "ekm_x_" + "a" * 37, "ekm_x_" + "-" * 38]
)
def test_malformed_tokens(bad):
    with pytest.raises(InvalidError, match="not an ekm API key") as exc:
        apikey.check_format(bad)
    assert exc.value.exit_code == 3


def test_truncated_token_caught():
    t = apikey.new_token("svc")
    with pytest.raises(InvalidError, match="not an ekm API key"):
        apikey.check_format(t[:-1])


@pytest.mark.parametrize("tag", ["", "UPPER", "with_underscore", "x" * 17])
def test_bad_tags(tag):
    with pytest.raises(InvalidError, match=r"tag .* is invalid"):
        apikey.new_token(tag)


def test_tag_for_edge_cases():
    assert apikey.tag_for("___") == "key"
    assert apikey.tag_for("A-Very.Long_Key-Name-For-Service") == "averylongkeyname"


def test_digest_and_verify():
    t = apikey.new_token("svc")
    stored = apikey.digest(MAC_KEY, t)
    assert len(stored) == 32 and t.encode() not in stored
    assert apikey.verify(MAC_KEY, t, stored)
    assert not apikey.verify(os.urandom(32), t, stored)  # other MAC key
    assert not apikey.verify(MAC_KEY, apikey.new_token("svc"), stored)
    assert not apikey.verify(MAC_KEY, "garbage", stored)
    assert not apikey.verify(MAC_KEY, t, stored[:-1])
    assert not apikey.verify(MAC_KEY, None, stored)  # type: ignore[arg-type]


def test_short_mac_key_refused():
    with pytest.raises(InvalidError, match="at least 16 bytes"):
        apikey.digest(b"short", apikey.new_token("svc"))


def test_token_id_is_short_and_not_the_secret():
    t = apikey.new_token("svc")
    tid = apikey.token_id(t)
    assert re.fullmatch(r"svc:[0-9a-f]{12}", tid)
    assert tid.split(":")[1] == hashlib.sha256(t.encode()).hexdigest()[:12]
    assert t[len("ekm_svc_") :][:8] not in tid
