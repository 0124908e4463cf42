"""A passphrase-derived master key (Argon2id), deployed and used through the ``ekm`` command.

The Argon2id cost is set to the schema's minimum in ekm.toml *before* deploy (19 MiB, one
pass) so the suite stays fast; the parameters are recorded in master.json, so every later
unlock uses them too.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import clean_environ, copy_home
from tests.foundation.helpers import key_path, snapshot

PASSPHRASE = "correct horse battery staple"
FAST_CONFIG = """\
[master_key]
source = "passphrase"
argon2_memory_kib = 19456
argon2_iterations = 2
argon2_parallelism = 1

[keys.db]
type = "aes-256-gcm"
usage = "encryption"
"""


def _prepare(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "ekm.toml").write_text(FAST_CONFIG)
    (home / "ekm.toml").chmod(0o600)


@pytest.fixture(scope="module")
def pass_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("pass") / "home"
    _prepare(home)
    env = clean_environ(EKM_HOME=str(home), EKM_PASSPHRASE=PASSPHRASE)
    proc = subprocess.run(
        ["ekm", "deploy", "--master-key", "passphrase"],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return home


@pytest.fixture
def phome(pass_template: Path, tmp_path: Path) -> Path:
    return copy_home(pass_template, tmp_path / "phome")


def _env(base_env: dict[str, str], home: Path, passphrase: str | None) -> dict[str, str]:
    env = {**base_env, "EKM_HOME": str(home)}
    if passphrase is not None:
        env["EKM_PASSPHRASE"] = passphrase
    return env


def test_deploy_records_argon2id_and_stores_no_passphrase(pass_template):
    meta = json.loads((pass_template / "master.json").read_text())
    assert meta["source"] == "passphrase"
    assert meta["kdf"]["name"] == "argon2id"
    assert (meta["kdf"]["memory_kib"], meta["kdf"]["iterations"]) == (19456, 2)
    assert not (pass_template / "master.key").exists()
    for path in pass_template.rglob("*"):
        if path.is_file():
            assert PASSPHRASE.encode() not in path.read_bytes(), path


def test_right_passphrase_unlocks(phome, run, base_env):
    env = _env(base_env, phome, PASSPHRASE)
    res = run("keys", "export", "db", "--reveal", "--format", "jwk", env=env).expect_ok()
    jwk = json.loads(res.stdout)
    assert jwk["kty"] == "oct"
    assert len(base64.urlsafe_b64decode(jwk["k"] + "==")) == 32


def test_wrong_passphrase_is_exit_4_and_audited(phome, run, base_env):
    wrong = "incorrect horse battery staple"
    res = run("keys", "export", "db", "--reveal", env=_env(base_env, phome, wrong))
    line = res.expect_error(4, "wrong passphrase", "EKM_PASSPHRASE")
    assert wrong not in line and PASSPHRASE not in line
    assert res.stdout == ""
    last = json.loads((phome / "audit.log").read_bytes().splitlines()[-1])
    assert (last["op"], last["result"]) == ("unlock", "denied")
    assert wrong.encode() not in (phome / "audit.log").read_bytes()


def test_wrong_passphrase_refuses_generate_and_changes_no_key(phome, run, base_env):
    env = _env(base_env, phome, "not the passphrase at all")
    run("generate", "other", "--type", "hmac-sha256", env=env).expect_error(4, "wrong passphrase")
    assert not key_path(phome, "other").exists()


def test_missing_passphrase_without_a_terminal_is_exit_3(phome, run, base_env):
    before = snapshot(phome)
    res = run("keys", "export", "db", "--reveal", env=_env(base_env, phome, None))
    res.expect_error(3, "EKM_PASSPHRASE")
    assert snapshot(phome) == before


def test_status_needs_no_passphrase(phome, run, base_env):
    doc = json.loads(run("--json", "status", env=_env(base_env, phome, None)).expect_ok().stdout)
    assert [k["name"] for k in doc["keys"]] == ["db"]
    assert doc["backends"]["master_key"]["source"] == "passphrase"


def test_short_passphrase_is_refused_at_deploy(tmp_path, run, base_env):
    home = tmp_path / "short"
    _prepare(home)
    env = _env(base_env, home, "tooshort")
    run("deploy", "--master-key", "passphrase", env=env).expect_error(3, "at least 12 characters")
    assert not (home / "master.json").exists()


def test_deploy_without_passphrase_and_without_terminal_is_exit_3(tmp_path, run, base_env):
    home = tmp_path / "nopass"
    _prepare(home)
    run("deploy", "--master-key", "passphrase", env=_env(base_env, home, None)).expect_error(
        3, "EKM_PASSPHRASE"
    )
    assert not (home / "master.json").exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [("memory_kib", 1), ("iterations", 0), ("iterations", "many"), ("salt", "c2hvcnQ=")],
)
def test_tampered_argon2_parameters_are_exit_4(phome, run, base_env, field, value):
    path = phome / "master.json"
    meta = json.loads(path.read_text())
    meta["kdf"][field] = value
    path.write_text(json.dumps(meta))
    res = run("keys", "export", "db", "--reveal", env=_env(base_env, phome, PASSPHRASE))
    res.expect_error(4, "Argon2id parameters")
