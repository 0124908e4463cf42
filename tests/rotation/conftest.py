"""Fixtures for the rotation tests.

``fast_template`` is deployed once per session with :data:`helpers.FAST_CONFIG` (the default
key set without rsa-4096, plus an x25519 recipient), so ``ekm rotate --force`` costs
milliseconds; ``fhome`` is a private copy per test. ``frun`` runs the real ``ekm`` command on
it. Keys are created at the real current time, so CLI tests move the clock with ``--as-of``
and API tests with ``now=`` relative to :func:`helpers.t0`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Result, copy_home
from tests.rotation.helpers import FAST_CONFIG, make_home


@pytest.fixture(scope="session")
def fast_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ekm.manager import KeyManager

    path = make_home(tmp_path_factory.mktemp("ekm-rotation") / "home", FAST_CONFIG)
    KeyManager(path, env={}).deploy()
    return path


@pytest.fixture
def fhome(fast_template: Path, tmp_path: Path) -> Path:
    return copy_home(fast_template, tmp_path / "home")


@pytest.fixture
def fenv(base_env: dict[str, str], fhome: Path) -> dict[str, str]:
    return {**base_env, "EKM_HOME": str(fhome)}


@pytest.fixture
def frun(run: Callable[..., Result], fenv: dict[str, str]) -> Callable[..., Result]:
    """``ekm ARGS`` on ``fhome`` (``env=`` still overrides)."""

    def _run(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> Result:
        return run(*args, env=env or fenv, stdin=stdin)

    return _run


@pytest.fixture
def mgr(fhome: Path):
    """A KeyManager on ``fhome`` with an empty environment (nothing leaks in)."""
    from ekm.manager import KeyManager

    return KeyManager(fhome, env={})


PASSPHRASE = "rotation tests passphrase"


@pytest.fixture(scope="session")
def pass_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A passphrase-protected home (Argon2id at its cheapest) with the fast key set."""
    from ekm.manager import KeyManager
    from tests.rotation.helpers import FAST_ARGON2

    config = f'[master_key]\nsource = "passphrase"\n{FAST_ARGON2}\n{FAST_CONFIG}'
    path = make_home(tmp_path_factory.mktemp("ekm-rotation-pass") / "home", config)
    KeyManager(path, passphrase=PASSPHRASE, env={}).deploy()
    return path
