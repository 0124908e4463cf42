"""``ekm encrypt`` / ``ekm decrypt`` / ``ekm rewrap`` through the real command."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from ekm.crypto import stream

AUTH = "ciphertext is not authentic"


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    p = tmp_path / "plain.bin"
    p.write_bytes(os.urandom(200_000))
    return p


def _enc(run, plain: Path, out: Path, *extra: str) -> None:
    run("encrypt", "--key", "session", "-o", str(out), *extra, str(plain)).expect_ok()


def test_file_round_trip_mode_and_audit(run, plain, tmp_path, home):
    enc, dec = tmp_path / "p.ekm", tmp_path / "p.out"
    _enc(run, plain, enc, "--aad", "row-7")
    assert enc.read_bytes()[:4] == stream.MAGIC
    assert oct(enc.stat().st_mode & 0o777) == "0o600"
    run("decrypt", "--aad", "row-7", "-o", str(dec), str(enc)).expect_ok()
    assert dec.read_bytes() == plain.read_bytes()
    log = (home / "audit.log").read_text()
    assert '"op":"encrypt"' in log and '"op":"decrypt"' in log


def test_stdin_stdout_pipe(run, script_runner, plain, ekm_env, tmp_path):
    enc = tmp_path / "p.ekm"
    with open(plain, "rb") as fh:
        r = subprocess.run(["ekm", "encrypt", "--key", "session"], stdin=fh, capture_output=True,
                           env=ekm_env, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    enc.write_bytes(r.stdout)
    r2 = subprocess.run(["ekm", "decrypt"], input=r.stdout, capture_output=True, env=ekm_env,
                        check=False)  # fmt: skip
    assert r2.returncode == 0 and r2.stdout == plain.read_bytes()


def test_empty_input_encrypts_and_zero_byte_ciphertext_is_refused(run, tmp_path, ekm_env):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    enc, dec = tmp_path / "e.ekm", tmp_path / "e.out"
    _enc(run, empty, enc)
    run("decrypt", "-o", str(dec), str(enc)).expect_ok()
    assert dec.read_bytes() == b""
    r = subprocess.run(["ekm", "encrypt", "--key", "session"], input=b"", capture_output=True,
                       env=ekm_env, check=False)  # fmt: skip
    assert r.returncode == 0 and r.stdout[:4] == stream.MAGIC  # 0-byte stdin works
    run("decrypt", stdin="").expect_error(4, AUTH)  # 0-byte ciphertext does not
    run("decrypt", "-o", str(tmp_path / "x"), str(empty)).expect_error(4, AUTH)
    assert not (tmp_path / "x").exists()


def test_existing_output_is_refused_without_force(run, plain, tmp_path):
    enc, dec = tmp_path / "p.ekm", tmp_path / "p.out"
    _enc(run, plain, enc)
    dec.write_bytes(b"keep me")
    run("decrypt", "-o", str(dec), str(enc)).expect_error(3, "already exists", "--force")
    assert dec.read_bytes() == b"keep me"
    run("encrypt", "--key", "session", "-o", str(dec), str(plain)).expect_error(3, "--force")
    run("decrypt", "--force", "-o", str(dec), str(enc)).expect_ok()
    assert dec.read_bytes() == plain.read_bytes()
    run("decrypt", "-o", str(enc), str(enc)).expect_error(2, "output file is the input")


@pytest.mark.parametrize(
    "damage",
    ["flip_payload", "flip_header", "truncate", "drop_last_byte", "append", "garbage"],
)
def test_damaged_ciphertext_exits_4_and_leaves_no_output(run, plain, tmp_path, damage, home):
    enc, dec = tmp_path / "p.ekm", tmp_path / "p.out"
    _enc(run, plain, enc)
    data = bytearray(enc.read_bytes())
    if damage == "flip_payload":
        data[-70_000] ^= 1
    elif damage == "flip_header":
        data[20] ^= 1
    elif damage == "truncate":
        data = data[: 70_000 + 200]
    elif damage == "drop_last_byte":
        data = data[:-1]
    elif damage == "append":
        data += b"\0" * 17
    else:
        data = bytearray(os.urandom(5000))
    enc.write_bytes(bytes(data))
    run("decrypt", "-o", str(dec), str(enc)).expect_error(4, AUTH)
    assert not dec.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".p.out")] == []
    assert '"result":"denied"' in (home / "audit.log").read_text()


def test_wrong_aad_exits_4(run, plain, tmp_path):
    enc = tmp_path / "p.ekm"
    _enc(run, plain, enc, "--aad", "a")
    run("decrypt", "--aad", "b", "-o", str(tmp_path / "o"), str(enc)).expect_error(4, AUTH)
    run("decrypt", "-o", str(tmp_path / "o"), str(enc)).expect_error(4, AUTH)
    assert not (tmp_path / "o").exists()


def test_missing_input_unknown_key_and_wrong_key_type(run, plain, tmp_path):
    run("decrypt", str(tmp_path / "nope")).expect_error(3, "does not exist")
    run("encrypt", "--key", "nope", str(plain)).expect_error(3, "no key named 'nope'")
    run("encrypt", "--key", "jwt_signing", "-o", str(tmp_path / "o"), str(plain)).expect_error(
        2, "hmac-sha256", "data encryption needs"
    )
    run("encrypt", str(plain)).expect_error(2, "--key NAME or --recipient")
    assert not (tmp_path / "o").exists()


def test_ciphertext_of_another_home_key_is_refused(run, plain, tmp_path, other_home, base_env):
    """Same key name, other material: the wrap does not authenticate (exit 4)."""
    enc = tmp_path / "p.ekm"
    env = {**base_env, "EKM_HOME": str(other_home)}
    run("encrypt", "--key", "session", "-o", str(enc), str(plain), env=env).expect_ok()
    run("decrypt", "-o", str(tmp_path / "o"), str(enc)).expect_error(4, AUTH)


def test_unknown_key_in_ciphertext_exits_3(run, plain, tmp_path, other_home, base_env):
    from ekm.manager import KeyManager

    KeyManager(other_home, env={}).generate("only_there", type="aes-256-gcm")
    enc = tmp_path / "p.ekm"
    env = {**base_env, "EKM_HOME": str(other_home)}
    run("encrypt", "--key", "only_there", "-o", str(enc), str(plain), env=env).expect_ok()
    run("decrypt", "-o", str(tmp_path / "o"), str(enc)).expect_error(3, "only_there")


def test_rotation_rewrap_and_destroyed_version(run, plain, tmp_path, home):
    from ekm.manager import KeyManager

    enc, enc2 = tmp_path / "p.ekm", tmp_path / "q.ekm"
    _enc(run, plain, enc)
    _enc(run, plain, enc2)
    payload = enc.read_bytes()[-1000:]
    run("rotate", "session", "--force").expect_ok()
    run("decrypt", "-o", str(tmp_path / "a"), str(enc)).expect_ok()  # v1 still active
    res = run("--json", "rewrap", str(enc)).expect_ok()
    assert '"from_version": 1' in res.stdout and '"version": 2' in res.stdout
    assert enc.read_bytes()[-1000:] == payload  # payload untouched
    again = run("rewrap", str(enc)).expect_ok()
    assert "already current" in again.stderr
    KeyManager(home, env={}).destroy_version("session", 1)
    run("decrypt", "-o", str(tmp_path / "b"), str(enc)).expect_ok()
    assert (tmp_path / "b").read_bytes() == plain.read_bytes()
    run("decrypt", "-o", str(tmp_path / "c"), str(enc2)).expect_error(
        3, "version 1 of key 'session' is destroyed"
    )
    assert not (tmp_path / "c").exists()


def test_disk_full_mid_write_leaves_no_partial_plaintext(plain, tmp_path, ekm_env, run):
    """RLIMIT_FSIZE makes the kernel fail the write (EFBIG) part-way, as a full disk would."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    enc = tmp_path / "big.ekm"
    _enc(run, big, enc)
    out_dir = tmp_path / "out"
    out_dir.mkdir(mode=0o700)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))

    for args in (["decrypt", "-o", str(out_dir / "plain"), str(enc)],
                 ["encrypt", "--key", "session", "-o", str(out_dir / "c"), str(big)]):  # fmt: skip
        r = subprocess.run(["ekm", *args], env=ekm_env, capture_output=True, text=True,
                           preexec_fn=limit, check=False)  # fmt: skip
        assert r.returncode == 4, r.stderr
        assert r.stderr.startswith("ekm: error: could not write") and "Traceback" not in r.stderr
        assert list(out_dir.iterdir()) == []
