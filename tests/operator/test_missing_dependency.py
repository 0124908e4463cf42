"""A Python that lost one of ekm's dependencies gets one line naming the package, exit 5.

``pip install .`` installs every dependency; these tests stand for the broken environment (a
package removed by hand, a distribution's python with a partial set) by putting a directory on
PYTHONPATH whose module of that name raises ModuleNotFoundError, as a missing one does. The
real ``ekm`` console script runs in a subprocess, stdin closed, as a user or cron runs it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import softhsm
from tests.conftest import Result, clean_environ, copy_home


def _shadow(tmp_path: Path, module: str) -> Path:
    """A PYTHONPATH directory in which ``import module`` fails as if it were not installed."""
    shim = tmp_path / "shim"
    (shim / module).mkdir(parents=True)
    (shim / module / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n"
    )
    return shim


def _ekm(env: dict[str, str], *args: str, cwd: Path) -> Result:
    proc = subprocess.run(
        ["ekm", *args], env=env, cwd=cwd, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _expect_missing(res: Result, package: str) -> None:
    line = res.expect_error(5, f"'{package}' is not installed", f"pip install {package}")
    assert "internal error" not in line and "Traceback" not in res.stderr


def _write_config(home: Path, text: str) -> None:
    home.mkdir(mode=0o700, parents=True)
    (home / "ekm.toml").write_text(text)
    (home / "ekm.toml").chmod(0o600)


@pytest.mark.skipif(not softhsm.available(), reason="SoftHSM2 is not installed")
def test_hsm_deploy_without_python_pkcs11(tmp_path: Path) -> None:
    token = softhsm.make_token(tmp_path / "softhsm")
    home = tmp_path / "home"
    _write_config(
        home,
        f'[hsm]\nlibrary_path = "{token.module_path}"\ntoken_label = "{token.label}"\n'
        'pin_env = "EKM_TEST_HSM_PIN"\n',
    )
    env = token.env(clean_environ(EKM_HOME=str(home), EKM_TEST_HSM_PIN=token.pin))
    env["PYTHONPATH"] = str(_shadow(tmp_path, "pkcs11"))
    res = _ekm(env, "deploy", "--master-key", "pkcs11", cwd=tmp_path)
    _expect_missing(res, "python-pkcs11")
    assert token.pin not in res.stderr + res.stdout


def test_vault_deploy_without_hvac(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _write_config(home, '[vault]\nendpoint = "http://127.0.0.1:9"\n')
    env = clean_environ(EKM_HOME=str(home), VAULT_TOKEN="s.never-shown-token")
    env["PYTHONPATH"] = str(_shadow(tmp_path, "hvac"))
    res = _ekm(env, "deploy", "--master-key", "vault-transit", cwd=tmp_path)
    _expect_missing(res, "hvac")
    assert "never-shown" not in res.stderr + res.stdout


def test_metrics_file_without_prometheus_client(template_home: Path, tmp_path: Path) -> None:
    home = copy_home(template_home, tmp_path / "home")
    env = clean_environ(EKM_HOME=str(home), PYTHONPATH=str(_shadow(tmp_path, "prometheus_client")))
    metrics = tmp_path / "ekm.prom"
    res = _ekm(env, "monitor", "--once", "--metrics-file", str(metrics), cwd=tmp_path)
    _expect_missing(res, "prometheus-client")
    assert not metrics.exists()


def test_pdf_report_without_reportlab(template_home: Path, tmp_path: Path) -> None:
    home = copy_home(template_home, tmp_path / "home")
    env = clean_environ(EKM_HOME=str(home), PYTHONPATH=str(_shadow(tmp_path, "reportlab")))
    out = tmp_path / "report.pdf"
    res = _ekm(env, "report", "--format", "pdf", "-o", str(out), cwd=tmp_path)
    _expect_missing(res, "reportlab")
    assert not out.exists()


def test_the_cli_itself_without_typer(template_home: Path, tmp_path: Path) -> None:
    home = copy_home(template_home, tmp_path / "home")
    env = clean_environ(EKM_HOME=str(home), PYTHONPATH=str(_shadow(tmp_path, "typer")))
    res = _ekm(env, "status", cwd=tmp_path)
    _expect_missing(res, "typer")


def test_the_shadow_really_hides_the_module(tmp_path: Path) -> None:
    """The check above can fail: with the same shim, Python itself cannot import reportlab."""
    import sys

    env = clean_environ(PYTHONPATH=str(_shadow(tmp_path, "reportlab")))
    proc = subprocess.run(
        [sys.executable, "-c", "import reportlab"], env=env, cwd=tmp_path,
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr


def test_a_missing_module_of_ekm_itself_stays_a_bug() -> None:
    from ekm.dependencies import missing_dependency

    assert missing_dependency(ModuleNotFoundError("x", name="ekm.backends.nothing")) is None
    err = missing_dependency(ModuleNotFoundError("x", name="asn1crypto.keys"))
    assert err is not None and err.exit_code == 5
    assert "pip install asn1crypto" in err.message and "HSM" in err.message
