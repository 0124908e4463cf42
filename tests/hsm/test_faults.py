"""Faults, each in a fresh process against its own SoftHSM2 token: one-line EkmErrors naming
the config key to fix, no traceback, and never the PIN in any output."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import softhsm

ROOT = Path(__file__).resolve().parents[2]
WRONG_PIN = "9999-wrong-pin"


@pytest.fixture(scope="module")
def fault_token(tmp_path_factory: pytest.TempPathFactory) -> softhsm.SoftHsmToken:
    return softhsm.make_token(tmp_path_factory.mktemp("fault-hsm"), label="fault-tok")


def run(token: softhsm.SoftHsmToken, scenario: str, table: dict, pin: str, *extra: str) -> Any:
    env = token.env()
    env["EKM_TEST_HSM_PIN"] = pin
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.hsm.fault_runner", scenario, json.dumps(table), *extra],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for secret in (token.pin, token.so_pin, WRONG_PIN):
        assert secret not in proc.stdout and secret not in proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def diagnosis(token: softhsm.SoftHsmToken, pin: str | None = None, **table: Any) -> dict:
    out, _ = run(token, "diagnose", token.hsm_table(**table), pin or token.pin)
    return out["diagnosis"]


def opened(token: softhsm.SoftHsmToken, pin: str | None = None, **table: Any) -> list[dict]:
    out, _ = run(token, "open-twice", token.hsm_table(**table), pin or token.pin)
    return out["steps"]


def test_a_good_token_in_a_fresh_process(fault_token: softhsm.SoftHsmToken) -> None:
    d = diagnosis(fault_token)
    assert d["connected"] and d["token"]["label"] == "fault-tok"
    assert opened(fault_token) == [{"step": "open1", "ok": True}, {"step": "open2", "ok": True}]


@pytest.mark.parametrize(
    ("library", "expected"),
    [
        ("/nonexistent/libvendor.so", r"^PKCS#11 module /nonexistent/libvendor.so does not exist; "
                                      r"install .* or fix \[hsm\] library_path$"),
        ("/bin/ls", r"^/bin/ls is not a usable PKCS#11 module \(cannot dynamically load "
                    r"position-independent executable\); fix \[hsm\] library_path$"),
        ("TEXTFILE", r"is not a usable PKCS#11 module \(file too short\); "
                     r"fix \[hsm\] library_path$"),
        ("/usr/lib/x86_64-linux-gnu/libz.so.1", r"\(undefined symbol: C_GetFunctionList\); fix "
                                                r"\[hsm\] library_path$"),
        ("/usr/lib", r"^PKCS#11 module /usr/lib is not a file; fix \[hsm\] library_path$"),
    ],
)  # fmt: skip
def test_not_a_pkcs11_module(
    fault_token: softhsm.SoftHsmToken, tmp_path: Path, library: str, expected: str
) -> None:
    if library == "TEXTFILE":
        library = str(tmp_path / "libtext.so")
        Path(library).write_text("this is not a shared object\n")
    if not Path(library).exists() and "nonexistent" not in library:
        pytest.skip(f"{library} is not on this system")
    d = diagnosis(fault_token, library_path=library)
    assert not d["connected"]
    assert d["error_message"] and "\n" not in d["error_message"]
    assert re.search(expected, d["error_message"]), d["error_message"]
    steps = opened(fault_token, library_path=library)
    assert steps[0]["error"] == "BackendError" and steps[0]["exit_code"] == 5


def test_missing_token_label(fault_token: softhsm.SoftHsmToken) -> None:
    steps = opened(fault_token, token_label="no-such-token")
    assert steps[0] == {
        "step": "open1",
        "error": "BackendError",
        "exit_code": 5,
        "message": "no token labelled 'no-such-token' in /usr/lib/softhsm/libsofthsm2.so; "
        "fix [hsm] token_label (pkcs11-tool --list-slots shows them)",
    }


def test_slot_id_right_and_wrong(fault_token: softhsm.SoftHsmToken) -> None:
    slot = diagnosis(fault_token)["slot_id"]
    assert diagnosis(fault_token, token_label=None, slot_id=slot)["token"]["label"] == "fault-tok"
    table = {k: v for k, v in fault_token.hsm_table().items() if k != "token_label"}
    out, _ = run(fault_token, "open-twice", {**table, "slot_id": 424242}, fault_token.pin)
    step = out["steps"][0]
    assert step["error"] == "BackendError" and step["exit_code"] == 5
    assert step["message"].startswith("no token in slot 424242 of ")
    assert step["message"].endswith("fix [hsm] slot_id (pkcs11-tool --list-slots shows them)")


def test_wrong_pin_is_tried_once_and_never_shown(fault_token: softhsm.SoftHsmToken) -> None:
    steps = opened(fault_token, pin=WRONG_PIN)
    assert steps[0] == {
        "step": "open1",
        "error": "BackendAuthError",
        "exit_code": 4,
        "message": "token 'fault-tok' refused the PIN from environment variable EKM_TEST_HSM_PIN "
        "([hsm] pin_env); fix [hsm] pin_env (ekm tried once and will not retry, to keep the "
        "token from locking)",
    }
    # The second open in the same process does not reach the token at all.
    assert steps[1]["error"] == "BackendAuthError"
    assert steps[1]["message"].startswith(
        "the PIN from environment variable EKM_TEST_HSM_PIN ([hsm] pin_env) was already refused"
    )
    # ... and the right PIN still works afterwards: the token was not locked.
    assert diagnosis(fault_token)["connected"]


def test_wrong_pin_in_diagnosis(fault_token: softhsm.SoftHsmToken) -> None:
    d = diagnosis(fault_token, pin=WRONG_PIN)
    assert not d["connected"] and "refused the PIN" in d["error_message"]


def test_missing_pin_env_is_a_config_error(fault_token: softhsm.SoftHsmToken) -> None:
    steps = opened(fault_token, pin_env="EKM_TEST_NO_SUCH_VAR")
    assert steps[0]["error"] == "ConfigError" and steps[0]["exit_code"] == 3
    assert "EKM_TEST_NO_SUCH_VAR, which is not set" in steps[0]["message"]


def test_pin_file_works(fault_token: softhsm.SoftHsmToken, tmp_path: Path) -> None:
    pin_file = tmp_path / "hsm.pin"
    pin_file.write_text(fault_token.pin + "\n")
    os.chmod(pin_file, 0o600)
    d = diagnosis(fault_token, pin_env=None, pin_file=str(pin_file), pin=None)
    assert d["connected"], d
    assert d["pin_source"] == f"file {pin_file} ([hsm] pin_file)"


def test_pin_in_config_warns_once_without_the_pin(fault_token: softhsm.SoftHsmToken) -> None:
    table = {**fault_token.hsm_table(), "pin": fault_token.pin}
    del table["pin_env"]
    out, stderr = run(fault_token, "open-twice", table, "unused")
    assert out["steps"] == [{"step": "open1", "ok": True}, {"step": "open2", "ok": True}]
    warnings = [line for line in stderr.splitlines() if line.startswith("WARNING:ekm.hsm")]
    assert warnings == [
        "WARNING:ekm.hsm:the HSM PIN is written in fault.toml ([hsm] pin); "
        "move it to [hsm] pin_env or [hsm] pin_file"
    ]


def test_token_removed_between_operations(tmp_path: Path) -> None:
    token = softhsm.make_token(tmp_path, label="removed-tok")
    out, _ = run(token, "remove", token.hsm_table(), token.pin, str(token.token_dir))
    steps = {s["step"]: s for s in out["steps"]}
    for name in ("encrypt", "encrypt-again", "generate"):
        assert steps[name]["error"] == "BackendError", steps
        assert steps[name]["exit_code"] == 5
        assert "HSM token 'removed-tok' is not reachable" in steps[name]["message"]
        assert steps[name]["message"].endswith("check the device and [hsm] token_label")
    assert steps["diagnose"]["connected"] is False
    assert "not reachable" in steps["diagnose"]["message"]


def test_token_reinitialised_from_outside(tmp_path: Path) -> None:
    token = softhsm.make_token(tmp_path, label="reinit-tok")
    out, _ = run(
        token, "reinit", token.hsm_table(), token.pin, str(token.token_dir), json.dumps(
            [str(token.conf_path), token.label, token.pin, token.so_pin, token.module_path]
        ),
    )  # fmt: skip
    steps = {s["step"]: s for s in out["steps"]}
    # The cached handle is gone: reported as the token changing under ekm, not as tampering.
    assert steps["encrypt"]["error"] == "BackendError"
    assert "HSM token 'reinit-tok' is not reachable" in steps["encrypt"]["message"]
    # ekm reconnects on the next operation and finds the key gone.
    assert steps["encrypt-again"]["error"] == "NotFoundError", steps
    assert steps["generate"] == {"step": "generate", "ok": True}
    assert steps["diagnose"]["connected"] is True
