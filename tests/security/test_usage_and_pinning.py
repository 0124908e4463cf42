"""Issue 17 item 5: every operation checks the key's usage, passphrase rules hold for every
source, and ``ekm verify --key NAME`` pins the signer.

The attacker here hands ekm a signature made by another key of the same home (a key they
could get signed with, or a test key), or feeds a short passphrase through a path the prompt
does not guard.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ekm.errors import InvalidError, UsageError
from ekm.manager import KeyManager
from tests.rotation.helpers import audit


# ---- ekm verify --key pins the signer ------------------------------------------------------
def test_verify_key_pins_the_signer(run, home: Path, tmp_path: Path) -> None:
    data = tmp_path / "app.tar.gz"
    data.write_bytes(b"release 1.0\n")
    run("sign", "--key", "rsa", str(data)).expect_ok()
    run("verify", "--key", "rsa", str(data)).expect_ok()
    mark = len(audit(home))
    res = run("verify", "--key", "jwt_signing", str(data))
    assert res.code == 4, res
    assert "signed by key 'rsa', not the expected 'jwt_signing'" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    records = audit(home)[mark:]
    assert [r.get("op") for r in records][-1] == "verify"
    assert records[-1].get("result") != "ok"


def test_verify_key_of_an_unknown_key_is_not_found(run, home: Path, tmp_path: Path) -> None:
    data = tmp_path / "a.txt"
    data.write_bytes(b"x")
    run("sign", "--key", "rsa", str(data)).expect_ok()
    run("verify", "--key", "nosuchkey", str(data)).expect_error(3, "nosuchkey")


def test_verify_key_in_the_python_api(home: Path) -> None:
    from ekm.errors import IntegrityError

    km = KeyManager(home, env={})
    sig = km.sign("rsa", b"data")
    assert km.verify(sig, b"data", key="rsa").key_name == "rsa"
    with pytest.raises(IntegrityError, match="signed by key 'rsa', not the expected 'jwt_signing'"):
        km.verify(sig, b"data", key="jwt_signing")


# ---- JWT sign/verify check usage -------------------------------------------------------------
@pytest.mark.parametrize("name", ["api_master", "hmac", "session"])
def test_jwt_refuses_keys_that_are_not_for_signing(home: Path, name: str) -> None:
    km = KeyManager(home, env={})
    with pytest.raises(UsageError, match=f"key '{name}' is for .*, not signing"):
        km.sign_jwt({"sub": "mallory"}, key=name)
    with pytest.raises(UsageError, match=f"key '{name}' is for .*, not signing"):
        km.verify_jwt("e30.e30.x", key=name)


def test_jwt_with_the_signing_key_still_works(home: Path) -> None:
    km = KeyManager(home, env={})
    token = km.sign_jwt({"sub": "alice"})
    assert km.verify_jwt(token)["sub"] == "alice"


# ---- passphrase rules for every source ---------------------------------------------------
def test_backup_passphrase_from_the_environment_is_held_to_the_minimum(
    run, ekm_env: dict[str, str], home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "b.ekmbak"
    env = {**ekm_env, "EKM_BACKUP_PASSPHRASE": "short"}
    res = run("backup", "create", "-o", str(out), env=env)
    res.expect_error(3, "the backup passphrase must have at least 12 characters")
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_backup_passphrase_from_the_python_api_is_held_to_the_minimum(
    home: Path, tmp_path: Path
) -> None:
    km = KeyManager(home, env={})
    out = tmp_path / "b.ekmbak"
    with pytest.raises(InvalidError, match="at least 12 characters"):
        km.backup_create(["session"], passphrase="elevenchars", path=out)
    assert not out.exists()
    km.backup_create(["session"], passphrase="twelve chars", path=out)
    assert out.exists()
