"""File names that are not UTF-8 work in every output mode: text messages carry the real bytes,
``--json`` escapes them (``\\udcff``) so ``json.loads`` + ``os.fsencode`` give the name back,
and errors name the file in one line. Before: ``--json`` crashed (exit 70) after the work."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

NAME = b"caf\xe9-\xff.txt"  # latin-1 e-acute and a 0xff: not UTF-8


def _ekm(args: list[bytes | str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [b"ekm", *(a if isinstance(a, bytes) else a.encode() for a in args)],
        capture_output=True,
        env=env,
        cwd=cwd,
        check=False,
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / os.fsdecode(NAME)).write_bytes(b"payload\n")
    return tmp_path


def test_json_outputs_escape_and_round_trip(ekm_env, work: Path) -> None:
    sealed = NAME + b".ekm"
    res = _ekm(["--json", "encrypt", "-k", "session", "-o", sealed, NAME], ekm_env, work)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert os.fsencode(doc["input"]) == NAME and os.fsencode(doc["output"]) == sealed
    assert b"\\udcff" in res.stdout  # escaped, so the document is valid UTF-8
    res.stdout.decode("utf-8")

    res = _ekm(["--json", "rewrap", sealed], ekm_env, work)
    assert res.returncode == 0 and os.fsencode(json.loads(res.stdout)["files"][0]["path"]) == sealed
    res = _ekm(["--json", "sign", "-k", "rsa", NAME], ekm_env, work)
    assert res.returncode == 0, res.stderr
    assert os.fsencode(json.loads(res.stdout)["signature"]) == NAME + b".sig"
    res = _ekm(["--json", "verify", NAME], ekm_env, work)
    assert res.returncode == 0 and json.loads(res.stdout)["valid"] is True
    plain = b"out-\xff"
    res = _ekm(["--json", "decrypt", "-o", plain, sealed], ekm_env, work)
    assert res.returncode == 0 and (work / os.fsdecode(plain)).read_bytes() == b"payload\n"


def test_text_messages_carry_the_real_name(ekm_env, work: Path) -> None:
    res = _ekm(["encrypt", "-k", "session", "-o", NAME + b".ekm", NAME], ekm_env, work)
    assert res.returncode == 0 and res.stderr == b"encrypted 8 bytes to " + NAME + b".ekm\n"
    res = _ekm(["sign", "-k", "rsa", NAME], ekm_env, work)
    assert res.returncode == 0 and NAME + b".sig" in res.stderr
    res = _ekm(["verify", NAME], ekm_env, work)
    assert res.returncode == 0 and res.stderr.startswith(b"good signature on " + NAME)


def test_errors_name_the_file_in_one_line(ekm_env, work: Path) -> None:
    missing = b"gone-\xff.ekm"
    for args in (["decrypt", missing], ["--json", "decrypt", missing]):
        res = _ekm(args, ekm_env, work)
        assert res.returncode == 3
        assert res.stderr == b"ekm: error: " + missing + b" does not exist\n"
