"""Fixtures for the HSM wired into ekm: a real SoftHSM2 token per test module.

Every test here drives the real ``ekm`` command (or, for the Python API that ``ekm encrypt`` /
``ekm sign`` build on, :mod:`tests.hsm_integration.api_runner`) in a subprocess whose
``SOFTHSM2_CONF`` points at the module's own token. SoftHSM reads that file once per process,
so a subprocess is the only way to give each module a clean token while the in-process tests
of ``tests/hsm`` share theirs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests import softhsm
from tests.conftest import Result, clean_environ

if not softhsm.available():  # pragma: no cover - the CI image installs softhsm2
    pytest.skip("SoftHSM2 is not installed", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
PIN_ENV = "EKM_TEST_HSM_PIN"
WRONG_PIN = "0000-wrong-pin"


#: A small key set (deploy stays fast): one file signing key, one file AES key, and one
#: configured key whose material deploy creates in the token.
KEY_SET = {
    "app_signing": {"type": "ed25519", "usage": "signing", "rotate_every": "90d"},
    "app_data": {"type": "aes-256-gcm", "usage": "encryption", "rotate_every": "90d"},
    "hsm_configured": {"type": "ec-p256", "usage": "signing", "backend": "pkcs11"},
}


def hsm_toml(token: softhsm.SoftHsmToken, **overrides: object) -> str:
    """ekm.toml with the ``[hsm]`` table for ``token`` (PIN from EKM_TEST_HSM_PIN), KEY_SET."""
    import tomli_w

    return tomli_w.dumps({"hsm": token.hsm_table(**overrides), "keys": KEY_SET})


def write_config(home: Path, text: str) -> Path:
    """Write ``home``/ekm.toml (0600) in a 0700 home, as an operator would before deploy."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / "ekm.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def set_hsm_table(home: Path, token: softhsm.SoftHsmToken, **overrides: object) -> None:
    """Replace (or add) the ``[hsm]`` table of a deployed home's ekm.toml."""
    import tomli_w
    import tomllib

    path = home / "ekm.toml"
    doc = tomllib.loads(path.read_text())
    doc["hsm"] = token.hsm_table(**overrides)
    path.write_text(tomli_w.dumps(doc))
    path.chmod(0o600)


class Hsm(NamedTuple):
    """A module's token and a home deployed on it (master key in the token)."""

    token: softhsm.SoftHsmToken
    home: Path

    def env(self, pin: str | None = None, **extra: str) -> dict[str, str]:
        env = self.token.env(clean_environ(EKM_HOME=str(self.home)))
        env[PIN_ENV] = self.token.pin if pin is None else pin
        env.update(extra)
        return env


def ekm(env: dict[str, str], *args: str) -> Result:
    """Run the real ``ekm`` console script, stdin closed, as a user (or cron) would."""
    proc = subprocess.run(
        ["ekm", *args], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=120,
    )  # fmt: skip
    return Result(proc.returncode, proc.stdout, proc.stderr)


def api(env: dict[str, str], scenario: str, *args: str) -> dict[str, Any]:
    """Run one :mod:`api_runner` scenario; its JSON answer (it always exits 0)."""
    env = {**env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.hsm_integration.api_runner", scenario, *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def assert_no_secret(token: softhsm.SoftHsmToken, *outputs: str) -> None:
    """Neither PIN (user, SO or the wrong one a test used) appears in any output."""
    for out in outputs:
        for secret in (token.pin, token.so_pin, WRONG_PIN):
            assert secret not in out


def deploy_on_token(token: softhsm.SoftHsmToken, home: Path) -> Hsm:
    """``[hsm]`` written into ekm.toml, then ``ekm deploy --master-key pkcs11``."""
    write_config(home, hsm_toml(token))
    hsm = Hsm(token, home)
    ekm(hsm.env(), "deploy", "--master-key", "pkcs11").expect_ok()
    return hsm


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Hsm:
    """A fresh token and a home deployed on it, shared by the tests of one module."""
    base = tmp_path_factory.mktemp("hsm-int")
    token = softhsm.make_token(base / "softhsm", label="ekm-int")
    return deploy_on_token(token, base / "home")


@pytest.fixture
def run_ekm(hsm: Hsm) -> Callable[..., Result]:
    """``run_ekm(*args, pin=None)``: ``ekm ARGS`` on the module's home and token."""

    def _run(*args: str, pin: str | None = None, **extra: str) -> Result:
        res = ekm(hsm.env(pin, **extra), *args)
        assert_no_secret(hsm.token, res.stdout, res.stderr)
        return res

    return _run


def objects(token: softhsm.SoftHsmToken) -> dict[str, list[dict[str, str]]]:
    """``pkcs11-tool --list-objects`` parsed: label -> [{"class", "usage", "access"}]."""
    out: dict[str, list[dict[str, str]]] = {}
    current: dict[str, str] | None = None
    for line in softhsm.list_objects(token).splitlines():
        if line and not line.startswith(" "):
            current = {"class": line.split(";")[0].strip()}
            continue
        if current is None or ":" not in line:
            continue
        field, _, value = line.strip().partition(":")
        current[field.strip().lower()] = value.strip()
        if field.strip() == "label":
            out.setdefault(value.strip(), []).append(current)
    return out


def env_without(env: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in env.items() if k not in names}
