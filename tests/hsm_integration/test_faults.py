"""Faults through the ``ekm`` command with an HSM in the picture: one stderr line, the exit code
of CLI.md, no traceback, and never the PIN, whatever went wrong."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests import softhsm
from tests.hsm_integration.conftest import (
    WRONG_PIN,
    Hsm,
    assert_no_secret,
    deploy_on_token,
    ekm,
    objects,
    set_hsm_table,
    write_config,
)


@pytest.fixture
def fault_hsm(tmp_path: Path) -> Hsm:
    """A token of its own and a home deployed on it, for faults that break the token."""
    token = softhsm.make_token(tmp_path / "softhsm", label="ekm-fault")
    return deploy_on_token(token, tmp_path / "home")


def check(hsm: Hsm, res, code: int, *fragments: str) -> str:
    assert_no_secret(hsm.token, res.stdout, res.stderr)
    return res.expect_error(code, *fragments)


def test_wrong_library_path(hsm: Hsm, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, "")
    cfg = Hsm(hsm.token, home)
    set_hsm_table(home, hsm.token, library_path="/nonexistent/libvendor-pkcs11.so")
    res = ekm(cfg.env(), "deploy", "--master-key", "pkcs11")
    check(cfg, res, 5, "PKCS#11 module /nonexistent/libvendor-pkcs11.so does not exist",
          "fix [hsm] library_path")  # fmt: skip
    assert not (home / "master.json").exists()  # nothing half-deployed


@pytest.mark.parametrize("kind", ["text", "shared-object"])
def test_not_a_pkcs11_module(hsm: Hsm, tmp_path: Path, kind: str) -> None:
    if kind == "text":
        library = tmp_path / "libfake.so"
        library.write_text("not a shared object\n")
        detail = "(file too short)"
    else:
        library = Path("/usr/lib/x86_64-linux-gnu/libz.so.1")
        if not library.exists():
            pytest.skip("libz.so.1 is not at the Debian path on this system")
        detail = "(undefined symbol: C_GetFunctionList)"
    home = tmp_path / "home"
    write_config(home, "")
    set_hsm_table(home, hsm.token, library_path=str(library))
    res = ekm(Hsm(hsm.token, home).env(), "deploy", "--master-key", "pkcs11")
    check(hsm, res, 5, f"{library} is not a usable PKCS#11 module {detail}",
          "fix [hsm] library_path")  # fmt: skip


def test_missing_token(hsm: Hsm, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, "")
    set_hsm_table(home, hsm.token, token_label="no-such-token")
    res = ekm(Hsm(hsm.token, home).env(), "deploy", "--master-key", "pkcs11")
    check(hsm, res, 5, "no token labelled 'no-such-token'", "fix [hsm] token_label")


def test_deploy_pkcs11_without_hsm_section(hsm: Hsm, tmp_path: Path) -> None:
    home = tmp_path / "home"
    res = ekm(Hsm(hsm.token, home).env(), "deploy", "--master-key", "pkcs11")
    check(hsm, res, 3, "the [hsm] section is missing")


def test_wrong_pin_is_exit_4_and_never_printed(fault_hsm: Hsm) -> None:
    for args in (("generate", "k", "--type", "ec-p256", "--backend", "pkcs11"),
                 ("keys", "export", "app_signing", "--public"),
                 ("--debug", "keys", "export", "app_signing", "--public")):  # fmt: skip
        res = ekm(fault_hsm.env(pin=WRONG_PIN), *args)
        assert_no_secret(fault_hsm.token, res.stdout, res.stderr)
        assert res.code == 4, res.stderr
        if "--debug" not in args:
            res.expect_error(4, "token 'ekm-fault' refused the PIN from environment variable "
                                "EKM_TEST_HSM_PIN", "fix [hsm] pin_env")  # fmt: skip
    # Three wrong attempts, one per process, did not lock the token (SoftHSM locks at 10).
    ekm(fault_hsm.env(), "keys", "export", "app_signing", "--public").expect_ok()


def test_token_removed_between_operations(fault_hsm: Hsm) -> None:
    env = fault_hsm.env()
    ekm(env, "generate", "signer", "--type", "ed25519", "--backend", "pkcs11").expect_ok()
    ekm(env, "keys", "export", "signer", "--public").expect_ok()
    subprocess.run(
        ["softhsm2-util", "--delete-token", "--token", fault_hsm.token.label],
        env=env, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    for args in (("keys", "export", "signer", "--public"), ("rotate", "signer", "--force")):
        res = ekm(env, *args)
        check(fault_hsm, res, 5, "no token labelled 'ekm-fault'", "fix [hsm] token_label")
    res = ekm(env, "--json", "status", "--hsm")
    assert res.code == 5
    assert json.loads(res.stdout)["backends"]["hsm"]["connected"] is False


def test_token_reinitialised_under_ekm(fault_hsm: Hsm) -> None:
    """Same label, objects gone: the master key is missing, which is not a wrong PIN."""
    env = fault_hsm.env()
    softhsm.reinit_token(fault_hsm.token)
    res = ekm(env, "keys", "export", "app_signing", "--public")
    check(fault_hsm, res, 3, "no key labelled 'ekm-master' in HSM token 'ekm-fault'")


def test_a_mechanism_the_token_lacks(fault_hsm: Hsm) -> None:
    conf = fault_hsm.token.conf_path
    conf.write_text(
        conf.read_text() + "slots.mechanisms = CKM_AES_KEY_GEN,CKM_AES_GCM,"
        "CKM_RSA_PKCS_KEY_PAIR_GEN,CKM_SHA256_RSA_PKCS_PSS\n"
    )
    res = ekm(fault_hsm.env(), "generate", "ecsigner", "--type", "ec-p256", "--backend", "pkcs11")
    check(fault_hsm, res, 5, "SoftHSM (token 'ekm-fault') lacks CKM_EC_KEY_PAIR_GEN, CKM_ECDSA",
          "needed for ec-p256 keys")  # fmt: skip
    assert not any(label.startswith("ekm/ecsigner/") for label in objects(fault_hsm.token))
    status = ekm(fault_hsm.env(), "--json", "status", "--hsm")
    d = json.loads(status.stdout)["backends"]["hsm"]
    assert d["connected"] is True
    assert d["missing_mechanisms"] == ["CKM_ECDSA", "CKM_EC_KEY_PAIR_GEN"]
    assert d["supported_types"] == ["aes-256-gcm", "rsa-3072", "rsa-4096"]
    table = ekm(fault_hsm.env(), "status", "--hsm")
    assert "the token lacks mechanisms ekm uses" in table.stderr
    # Keys of the types it still supports work.
    res = ekm(fault_hsm.env(), "generate", "rsasigner", "--type", "rsa-3072", "--backend", "pkcs11")
    res.expect_ok()


def test_hostile_hsm_table(hsm: Hsm, tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home, "")
    env = Hsm(hsm.token, home).env()
    for overrides, fragment in [
        ({"pin": "1234", "pin_env": "X"}, "[hsm] pin_env and pin are all set"),
        ({"slot_id": -1}, "[hsm] slot_id in"),
        ({"key_label_prefix": "a/b"}, "[hsm] key_label_prefix in"),
        ({"colour": "red"}, "unknown key [hsm] colour"),
    ]:
        set_hsm_table(home, hsm.token, **overrides)
        res = ekm(env, "deploy", "--master-key", "pkcs11")
        line = check(hsm, res, 3, fragment)
        assert "1234" not in line
