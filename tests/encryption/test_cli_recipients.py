"""``ekm encrypt --recipient``: x25519, ML-KEM-768 and the X-Wing hybrid through the command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ekm.crypto import stream
from ekm.manager import KeyManager


@pytest.mark.parametrize("name", ["inbox_x25519", "inbox_mlkem", "inbox_hybrid"])
def test_recipient_round_trip(run, tmp_path, name):
    plain = tmp_path / "p"
    plain.write_bytes(os.urandom(150_000))
    enc, dec = tmp_path / "p.ekm", tmp_path / "p.out"
    run("encrypt", "--recipient", name, "-o", str(enc), str(plain)).expect_ok()
    with open(enc, "rb") as fh:
        assert stream.read_header(fh).slot.kind == 0x02
    run("decrypt", "-o", str(dec), str(enc)).expect_ok()
    assert dec.read_bytes() == plain.read_bytes()
    run("rewrap", str(enc)).expect_error(3, "sealed to recipient public keys")


def test_recipient_string_from_another_home_and_wrong_recipient(run, tmp_path, home, other_home,
                                                                base_env):  # fmt: skip
    plain = tmp_path / "p"
    plain.write_bytes(b"for the other home")
    other_env = {**base_env, "EKM_HOME": str(other_home)}
    other = KeyManager(other_home, env={})
    other.unlock()  # recipient_string does not unlock by itself (reported)
    rcpt = other.recipient_string("inbox_x25519")
    enc = tmp_path / "p.ekm"
    run("encrypt", "--recipient", rcpt, "-o", str(enc), str(plain)).expect_ok()
    run("decrypt", "-o", str(tmp_path / "ok"), str(enc), env=other_env).expect_ok()
    assert (tmp_path / "ok").read_bytes() == plain.read_bytes()
    # this home has a key of the same name, with other material: wrong recipient, exit 4
    run("decrypt", "-o", str(tmp_path / "no"), str(enc)).expect_error(
        4, "cannot open the recipient slot"
    )
    assert not (tmp_path / "no").exists()


def test_recipient_unknown_here_and_bad_recipient(run, tmp_path, other_home, base_env):
    plain = Path(tmp_path / "p")
    plain.write_bytes(b"x")
    enc = tmp_path / "p.ekm"
    run("encrypt", "--recipient", "inbox_mlkem", "-o", str(enc), str(plain)).expect_ok()
    other_env = {**base_env, "EKM_HOME": str(other_home)}
    run("decrypt", str(enc), env=other_env).expect_error(3, "inbox_mlkem")
    run("encrypt", "--recipient", "session", str(plain)).expect_error(2, "cannot be a recipient")
    run("encrypt", "--recipient", "ekm-recipient:junk", str(plain)).expect_error(
        2, "malformed recipient"
    )
    run("encrypt", "--key", "session", "--recipient", "inbox_mlkem", str(plain)).expect_error(
        2, "exactly one"
    )
