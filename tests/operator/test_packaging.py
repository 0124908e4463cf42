"""The wheel and sdist carry completions, man pages, rule sets and config.example.toml, and a
wheel installed into a fresh venv gives a working ``ekm``.

Built offline from a copy of the source tree (``--no-build-isolation``: setuptools comes from
the test extra), so the checkout never gets build/ or egg-info debris.
"""

from __future__ import annotations

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
def dist(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in SOURCES:
        path = repo_root / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
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


def test_installed_wheel_runs_in_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         str(_one(dist, "*.whl"))],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    ekm = venv / "bin" / "ekm"
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(tmp_path)}
    version = subprocess.run([str(ekm), "--version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == "ekm 0.1.0"
    helped = subprocess.run([str(ekm), "--help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and "rotate" in helped.stdout
    # the installed package is the wheel's, not the checkout's
    where = subprocess.run(
        [str(py), "-c", "import ekm; print(ekm.__file__)"], env=env, capture_output=True,
        text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert str(venv) in where.stdout
    assert (venv / "share" / "man" / "man1" / "ekm-monitor.1").is_file()
